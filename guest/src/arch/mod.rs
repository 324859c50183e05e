//! The architecture layer. Each arch module provides the same free functions;
//! nothing above this layer names an instruction or a device register.
//!
//! Contract every arch module implements:
//! - entry code that builds a [`crate::boot::BootInfo`] and calls
//!   [`crate::kmain::kmain`] (never returns);
//! - `NAME: &str` (`"x86_64"` / `"aarch64"`);
//! - `console_write(&[u8])`: polled, lock-free, callable from exception context;
//! - `console_read_byte() -> Option<u8>`: non-blocking;
//! - `flush_dcache(va, len)`: write back and evict the data cache lines of a
//!   range (arm64 also `clean_dcache`, for the pKVM ledger);
//! - `cycles() -> u64` and `cycle_freq() -> Result<u64, &'static str>` (the
//!   error names what the platform lacks);
//! - `power_off(success: bool) -> !` and `reboot() -> !`;
//! - `trap_roundtrip() -> Result<TrapReport, TrapError>`: raises #UD / BRK on purpose and
//!   returns what the handler saw after resuming;
//! - `fatal_fault() -> !`: touches an unmapped address (plan `inject=fault`);
//! - `probe() -> crate::conv::Probe`: runs the hypervisor discovery instructions;
//! - the conversion trap, one small function per instruction with its register
//!   contract beside it: x86 `vmcall`/`vmmcall` (and `cpuid` for the vendor),
//!   arm64 `smccc_call` (HVC or SMC, from the DTB's PSCI conduit).
//!
//! Unexpected exceptions end the run through [`crate::report::crash`].

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::*;

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

/// What a deliberate trap looked like from inside the handler.
#[derive(Clone, Copy, Debug)]
pub struct TrapReport {
    /// x86 vector number or arm64 ESR_EL1.EC.
    pub kind: u64,
    /// Human name (`#UD`, `BRK`).
    pub name: &'static str,
    /// Address of the trapping instruction.
    pub pc: u64,
}

#[derive(Clone, Copy, Debug)]
pub enum TrapError {
    /// The handler never ran: execution went straight past the instruction.
    NotTaken,
    /// A different exception than the one raised arrived.
    #[cfg_attr(
        target_arch = "x86_64",
        allow(
            dead_code,
            reason = "x86 resumes only over its own ud2; any other vector is a crash"
        )
    )]
    Unexpected { kind: u64, pc: u64 },
}
