//! LAVA: `convtest lava-job` writes a job definition that boots a pKVM
//! kernel with the board kit and records every convtest result as a LAVA
//! test case; `convtest lava-cases` is the board-side step that records
//! them. See docs/lava.md.
//!
//! - job.rs: the job definition (qemu device type and boards);
//! - inputs.rs: the kernel, ramdisk, kit and DTB as the URLs a job names;
//! - cases.rs: a run's JSON report as `lava-test-case` calls;
//! - command.rs: the two subcommands.

pub mod cases;
mod command;
pub mod inputs;
pub mod job;

pub use command::{cases_main, job_main};

/// Where scripts/lava-local.sh installs the private LAVA dispatcher
/// (`$CONVTEST_LAVA_DIR` overrides).
pub const LOCAL_DIR_ENV: &str = "CONVTEST_LAVA_DIR";
pub const LOCAL_DIR: &str = "/var/cache/convtest/lava";
/// The busybox ramdisk the script builds there.
pub const LOCAL_RAMDISK: &str = "rootfs-arm64.cpio.gz";

/// The private LAVA's directory.
pub fn local_dir() -> std::path::PathBuf {
    std::env::var_os(LOCAL_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(|| LOCAL_DIR.into(), Into::into)
}
