//! The architecture layer, the lowest: boot entry, console, exceptions,
//! counter, power, secondary CPUs and the trap instructions. Each arch
//! module implements [`Platform`] for one zero-sized type, and the layers
//! above name it only as [`Current`]; nothing above names an instruction or
//! a device register. The arch files reach nothing above them: the kernel
//! is entered and the run is ended through [`hooks`].

mod hooks;
mod platform;
mod probe;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub(crate) use hooks::kernel_main;
pub use platform::{Platform, StartError, TrapError};
pub use probe::{Finding, Probe};

/// The platform this kernel was built for.
#[cfg(target_arch = "aarch64")]
pub type Current = self::aarch64::Aarch64;
/// The platform this kernel was built for.
#[cfg(target_arch = "x86_64")]
pub type Current = self::x86_64::X86_64;
