//! `convtest matrix`'s arguments.

use super::parsers::keyword;
use clap::Args;
use convtest_proto::arch::Arch;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// L1 kernels (`--l1` names, comma-separated) [default: every kernel
    /// the nested backend knows for the arch].
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub kernels: Vec<String>,

    /// Guest architecture [default: x86_64].
    #[arg(long, value_parser = keyword::<Arch>())]
    pub arch: Option<Arch>,

    /// Write the table (one object per kernel) here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    #[command(flatten)]
    pub kcidb: super::kcidb::KcidbFlags,

    /// Seconds each kernel's run may take.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Print only the table and the verdict line.
    #[arg(long, short)]
    pub quiet: bool,
}
