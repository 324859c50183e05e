//! `convtest bench`'s arguments.

use super::parsers::keyword;
use clap::Args;
use convtest_vmm::config::ConsoleKind;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Lanes to measure (comma-separated) [default: every lane:
    /// nested-x86-swprot, nested-x86, nested-arm64-pkvm].
    #[arg(long, value_name = "LANE,...", value_delimiter = ',')]
    pub lanes: Vec<String>,

    /// Write every lane's bench lines, break-even, throughput and verdict here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Draw latency against range size (log-log, every lane and op) here.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,

    /// Write the tables and break-even lines as Markdown here.
    #[arg(long, value_name = "PATH")]
    pub md: Option<PathBuf>,

    /// Wall budget in ms for each op and size (the plan's bench_ms=)
    /// [default: the guest's, 100].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..))]
    pub bench_ms: Option<u32>,

    /// Seconds each lane's run may take.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Guest RAM in MiB for each run. 2560 or more gives x86 a 1 GiB-aligned
    /// free GiB, so the 1 GiB hint (share_1g) is measured too; the L1 grows
    /// to the guest's RAM + 1.5 GiB.
    #[arg(long, value_name = "MiB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=65536))]
    pub memory: u32,

    /// Show a report saved before (this command's --json, or a `convtest
    /// run --json` report) instead of running anything.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,

    /// The pKVM lane's console: word (the word console) or uart (refused:
    /// the run prints through the 16550, the fallback path).
    #[arg(long, value_parser = keyword::<ConsoleKind>(), default_value = "word")]
    pub vmm_console: ConsoleKind,

    /// Print only the tables and the verdict line.
    #[arg(long, short)]
    pub quiet: bool,
}
