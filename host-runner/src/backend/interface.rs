//! What every backend does: check the host, then boot one guest and stream
//! its first console to the caller.

use super::kind::BackendKind;
use super::run_end::RunEnd;
use super::spec::BootSpec;
use crate::error::Error;
use crate::machine::Boot;
use convtest_proto::arch::Arch;

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
