//! `convtest bundle`'s arguments.

use super::parsers::keyword;
use super::run::L1Options;
use clap::{Args, ValueEnum};
use convtest_proto::arch::Arch;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The board's architecture [default: aarch64].
    #[arg(long, value_parser = keyword::<Arch>())]
    pub arch: Option<Arch>,

    /// The archive to write (a .tar.gz holding one directory,
    /// convtest-kit-<arch>/).
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,

    /// After writing it, try the kit as a board would: `nested` boots the
    /// nested lane's L1 (arm64: pKVM) with the archive in it, unpacks it
    /// there and runs the README's commands, judging the JSON each wrote.
    #[arg(long, value_enum, value_name = "WHERE")]
    pub check: Option<CheckArg>,

    #[command(flatten)]
    pub l1: L1Options,

    /// Write the check's report here: per command its exit status and the
    /// JSON the kit wrote.
    #[arg(long, value_name = "PATH", requires = "check")]
    pub json: Option<PathBuf>,

    /// Seconds each of the check's commands may take.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Build from this convtest checkout [default: the one this binary was
    /// built in].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Print only errors and the verdict lines.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckArg {
    /// In the nested lane's L1 (QEMU TCG, Debian's kernel with KVM / pKVM).
    Nested,
}
