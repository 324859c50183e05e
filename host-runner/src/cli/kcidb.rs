//! `--kcidb PATH` and `--kcidb-origin NAME`, shared by `run`, `matrix` and
//! `mutants`.

use crate::report::kcidb::{DEFAULT_ORIGIN, valid_origin};
use clap::Args;
use std::path::PathBuf;

#[derive(Clone, Debug, Args)]
pub struct KcidbFlags {
    /// Write the results as KCIDB JSON (KernelCI's schema v5.3) here: a
    /// build per lane run, a test per convtest test (path = its dotted
    /// name, status PASS/FAIL/SKIP/ERROR), the lane, evidence and kernels
    /// in misc/environment.
    #[arg(long, value_name = "PATH")]
    pub kcidb: Option<PathBuf>,

    /// The KCIDB origin (the CI system submitting): lowercase letters,
    /// digits and `_`. A lab reporting to KernelCI uses its own.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_ORIGIN, value_parser = origin)]
    pub kcidb_origin: String,
}

fn origin(name: &str) -> Result<String, String> {
    if valid_origin(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} is not a KCIDB origin: use lowercase letters, digits and _"
        ))
    }
}
