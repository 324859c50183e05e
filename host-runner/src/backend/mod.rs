//! Who runs the guest. Every backend boots a prepared payload, streams the
//! guest's first console to the caller and says how the VM ended; the
//! verdict is made above, from the KTAP. QEMU is the only backend so far
//! (an own KVM VMM and a nested lane are planned).

pub mod process;
pub mod qemu;

use crate::accel::Accel;
use crate::cli::{Arch, BackendKind, Boot, Machine};
use crate::error::Error;
use crate::verdict::Ending;
use std::path::Path;
use std::time::Duration;

/// One boot, fully decided.
#[derive(Clone, Copy, Debug)]
pub struct BootSpec<'a> {
    pub arch: Arch,
    pub boot: Boot,
    pub machine: Machine,
    pub accel: Accel,
    pub memory_mib: u32,
    /// Kernel (pvh: ELF, image: arm64 Image) or disk image (bios, uefi).
    pub payload: &'a Path,
    /// The plan, for boots that take a command line (disk images carry it inside).
    pub cmdline: &'a str,
    /// Guest resets the plan expects; with none, a reset ends the VM.
    pub reboots: u32,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct RunEnd {
    pub ending: Ending,
    /// The VMM's exit status (None: killed).
    pub exit_code: Option<i32>,
    pub stderr: String,
    /// The command line that was run, copy-pasteable.
    pub command: String,
}

/// Called with each chunk of console output; returns bytes to type into the
/// guest's console (empty for none).
pub type ConsoleFn<'a> = dyn FnMut(&[u8]) -> Vec<u8> + 'a;

pub trait Backend {
    fn kind(&self) -> BackendKind;

    /// Checks what the backend needs on this host before the (slow) guest
    /// build, so a missing QEMU is reported in a second, not in minutes.
    fn preflight(&self, arch: Arch, boot: Boot) -> Result<(), Error>;

    /// Boots the guest and returns when it powers off or the timeout ends it.
    fn run(&self, spec: &BootSpec<'_>, console: &mut ConsoleFn<'_>) -> Result<RunEnd, Error>;
}

pub fn for_kind(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Qemu => Box::new(qemu::Qemu::default()),
    }
}
