//! Deliberate exceptions: the round trip (raise `ud2`, let the #UD handler
//! record where it hit and step over it, and report what the handler saw)
//! and the fatal fault for `inject=fault`.

use super::armed::ArmedSite;
use crate::arch::hooks;
use crate::arch::platform::{TrapError, TrapReport};
use core::sync::atomic::{AtomicU64, Ordering};

const UD_VECTOR: u64 = 6;
const UD2: [u8; 2] = [0x0f, 0x0b];

/// The `ud2` below; the handler steps over it only while armed.
static UD: ArmedSite = ArmedSite::new(UD2);
/// RIP the handler saw (0 = the handler did not run).
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Never inlined: one copy of the asm means one `ud2` address, so repeated
/// calls must report the same pc.
#[inline(never)]
pub fn trap_roundtrip() -> Result<TrapReport, TrapError> {
    SEEN.store(0, Ordering::SeqCst);
    UD.arm();
    // SAFETY: stores this asm's own `ud2` address into the site's slot, then
    // executes it. The #UD handler finds the site armed at RIP and resumes at the
    // next instruction, the end of this block; no registers other than the
    // declared scratch one change. The red zone is off on this target, so
    // the exception frame cannot clobber live stack data.
    unsafe {
        core::arch::asm!(
            "lea {site}, [rip + 2f]",
            "mov qword ptr [{slot}], {site}",
            "2:",
            "ud2",
            site = out(reg) _,
            slot = in(reg) UD.slot(),
        );
    }
    let still_armed = UD.disarm();
    let seen = SEEN.load(Ordering::SeqCst);
    if still_armed || seen == 0 {
        return Err(TrapError::NotTaken);
    }
    Ok(TrapReport {
        kind: UD_VECTOR,
        name: "#UD",
        pc: seen,
    })
}

pub fn fatal_fault() -> ! {
    // Non-canonical addresses fault (#GP) under any page tables: the fallback
    // if every lower-half PML4 slot were somehow mapped.
    let addr = super::paging::unmapped_address().unwrap_or(0x8000_0000_0000);
    // SAFETY: not safe by design: the read faults and the handler ends the
    // run. Volatile so the load cannot be optimised away.
    let value = unsafe { core::ptr::read_volatile(addr as *const u64) };
    hooks::fatal(format_args!(
        "reading unmapped address {addr:#x} returned {value:#x} instead of faulting"
    ))
}

/// Called by the #UD handler: true when this is the armed `ud2`, which the
/// handler may then step over. Any other #UD is a real fault.
pub(super) fn claim_ud(rip: u64) -> bool {
    if !UD.claim(rip) {
        return false;
    }
    SEEN.store(rip, Ordering::SeqCst);
    true
}
