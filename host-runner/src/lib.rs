//! The `convtest` runner as a library: the binary is a thin `main` over it.

pub mod accel;
pub mod backend;
pub mod bench;
pub mod boot_progress;
pub mod bundle;
pub mod cleanup;
pub mod cli;
pub mod command_output;
pub mod config;
pub mod error;
pub mod guest_build;
pub mod kit;
pub mod ktap;
pub mod lava;
pub mod list;
pub mod machine;
pub mod matrix;
pub mod mutants;
pub mod progress;
pub mod report;
pub mod run;
pub mod step;
pub mod verdict;
