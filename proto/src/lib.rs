//! The contract between the convtest guest and the `convtest` runner.
//!
//! Everything here is pure logic with no hardware access, so it builds for
//! `*-unknown-none` (inside the guest) and for the host, where `cargo test`
//! checks it. The runner uses the same catalog and plan encoder the guest
//! decodes, so a test name or plan key cannot drift between the two sides.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod arch;
pub mod bench;
pub mod catalog;
pub mod console_read;
pub mod content;
pub mod cpuid;
pub mod crumbs;
pub mod glob;
pub mod hostcheck;
pub mod hostile;
pub mod hypervisor;
pub mod keyword;
pub mod ktap;
pub mod l1;
pub mod ledger;
pub mod map_gpa;
pub mod mmio_guard;
pub mod overlap;
pub mod plan;
pub mod prng;
pub mod range;
pub mod reboot;
pub mod relay;
pub mod size_walk;
pub mod smccc;
pub mod snp;
pub mod storm;
pub mod tdx;
pub mod tracker;
pub mod wire;
pub mod word_console;
