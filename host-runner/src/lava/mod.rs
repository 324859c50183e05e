//! LAVA: `convtest lava-job` writes a job definition that boots a pKVM
//! kernel with the board kit and records every convtest result as a LAVA
//! test case; `convtest lava-cases` is the board-side step that records
//! them. See docs/lava.md.
//!
//! - job.rs: the job definition (qemu device type and boards);
//! - inputs.rs: the kernel, ramdisk, kit and DTB as the URLs a job names;
//! - cases.rs: a run's JSON report as `lava-test-case` calls;
//! - command.rs: the two subcommands;
//! - local.rs: where scripts/lava-local.sh puts the private LAVA.

pub mod cases;
mod command;
pub mod inputs;
pub mod job;
pub mod local;

pub use command::{cases_main, job_main};
pub use local::{LOCAL_RAMDISK, local_dir};
