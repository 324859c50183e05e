//! Deliberate exceptions: the BRK round trip and the fatal fault for
//! `inject=fault`.

use super::exceptions::{self, EC_BRK};
use super::mmu;
use crate::arch::hooks;
use crate::arch::platform::{TrapError, TrapReport};
use core::arch::asm;

/// `brk #0x1234`, armed so the handler records it and resumes after it.
/// Contract: no registers in or out; the handler restores all general
/// registers, and `clobber_abi("C")` covers the FP/SIMD registers the Rust
/// handler may use. Never inlined: callers expect one trapping instruction,
/// at one address, however often the round trip runs.
#[inline(never)]
fn brk() {
    let slot = exceptions::arm();
    // SAFETY: the handler recognises the armed address, steps over the BRK
    // and returns here with every general register restored.
    unsafe {
        asm!(
            "adr x16, 2f",
            "str x16, [{slot}]",
            "2: brk #0x1234",
            slot = in(reg) slot,
            out("x16") _,
            clobber_abi("C"),
        )
    };
}

pub fn trap_roundtrip() -> Result<TrapReport, TrapError> {
    brk();
    match exceptions::disarm() {
        None => Err(TrapError::NotTaken),
        Some(c) if c.ec == EC_BRK && (c.esr & 0xffff) == 0x1234 => Ok(TrapReport {
            kind: c.ec,
            name: "BRK",
            pc: c.pc,
        }),
        Some(c) => Err(TrapError::Unexpected {
            kind: c.ec,
            pc: c.pc,
        }),
    }
}

/// A VA no RAM or device sits at: inside the 48-bit TTBR0 range, far above
/// the 512 GiB device window mmu.rs maps, so the walk stops at level 0.
const UNMAPPED: u64 = 0x0000_dead_0000_0000;

pub fn fatal_fault() -> ! {
    if mmu::is_mapped(UNMAPPED) {
        hooks::fatal(format_args!(
            "fatal_fault: {UNMAPPED:#x} is mapped (RAM up there?)"
        ));
    }
    // SAFETY: deliberately faults: the address is unmapped (checked above),
    // the data abort goes to the crash path, which does not return.
    unsafe { (UNMAPPED as *const u64).read_volatile() };
    hooks::fatal(format_args!(
        "load from unmapped {UNMAPPED:#x} did not fault"
    ))
}
