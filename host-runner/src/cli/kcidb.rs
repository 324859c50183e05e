//! `--kcidb PATH` and `--kcidb-origin NAME`, shared by `run`, `matrix` and
//! `mutants`.

use clap::Args;
use std::path::PathBuf;

/// The origin when the user names none: a lab submits under its own.
pub const DEFAULT_ORIGIN: &str = "convtest";
/// Whether `origin` is a KCIDB origin name (`^[a-z0-9_]+$`).
pub fn valid_origin(origin: &str) -> bool {
    !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_kcidb_origins() {
        assert!(valid_origin("convtest") && valid_origin("my_lab2"));
        assert!(!valid_origin("") && !valid_origin("Lab") && !valid_origin("a-b"));
    }
}
