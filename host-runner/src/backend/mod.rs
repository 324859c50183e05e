//! Who runs the guest. Every backend boots a prepared payload, streams the
//! guest's first console to the caller and says how the VM ended; the
//! verdict is made above, from the KTAP: QEMU, convtest's own KVM VMM (run
//! as a child process, so a wedged vCPU is killed like a wedged QEMU), and
//! nested (QEMU TCG → Linux L1 with real KVM → the own VMM).
//!
//! What a backend is asked (spec.rs), what it does (interface.rs), how its
//! VM ended (run_end.rs); the kinds (kind.rs) and the backend of each
//! (select.rs). `--tee` (tee/) is QEMU on hardware KVM as a TDX or SEV-SNP
//! guest.

pub mod interface;
pub mod kind;
pub mod nested;
pub mod process;
pub mod qemu;
pub mod run_end;
pub mod select;
pub mod spec;
pub mod tee;
pub mod vmm;

pub use interface::{Backend, ConsoleFn};
pub use run_end::{RunEnd, run_end};
pub use spec::BootSpec;
