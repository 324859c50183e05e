//! `convtest mutants`' arguments.

use super::parsers::{keyword, parse_u64};
use clap::Args;
use convtest_vmm::config::ConsoleKind;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct MutantsArgs {
    /// Lanes to break (comma-separated) [default: every lane but
    /// nested-arm64-pkvm-16k].
    #[arg(long, value_name = "LANE,...", value_delimiter = ',')]
    pub lanes: Vec<String>,

    /// Write the whole kill table (every run, every test) here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    #[command(flatten)]
    pub kcidb: super::kcidb::KcidbFlags,

    /// Repetitions for conv.flipflop and conv.cost in each run.
    #[arg(long, default_value_t = 100)]
    pub iters: u32,

    /// Operations of stress.storm in each conv run (its checkpoints come
    /// every 1000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub storm_ops: u64,

    /// Seed for every run [default: the guest's, 0x5eed].
    #[arg(long, value_parser = parse_u64)]
    pub seed: Option<u64>,

    /// Seconds one run (one guest inside the L1) may take before the L1's
    /// /init kills it; the lane's whole budget is the L1 boot plus every
    /// run's limit.
    #[arg(long, value_name = "SECS", default_value_t = 240, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// The convtest workspace to build the guest from [default: the one
    /// this runner was built in].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// The pKVM lane's console: word (the word console) or uart (refused:
    /// every run prints through the 16550, the fallback path).
    #[arg(long, value_parser = keyword::<ConsoleKind>(), default_value = "word")]
    pub vmm_console: ConsoleKind,

    /// Print only the tables and the verdict line.
    #[arg(long, short)]
    pub quiet: bool,
}
