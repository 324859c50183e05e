//! The deliberate exception round trip: raise `ud2`, let the #UD handler
//! record where it hit and step over it, and report what the handler saw.

use crate::arch::{TrapError, TrapReport};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const UD_VECTOR: u64 = 6;
const UD2: [u8; 2] = [0x0f, 0x0b];

/// Set just before the `ud2`; the handler clears it when it claims the trap.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Address of the `ud2` about to run, stored by the asm block itself.
static SITE: AtomicU64 = AtomicU64::new(0);
/// RIP the handler saw (0 = the handler did not run).
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Never inlined: one copy of the asm means one `ud2` address, so repeated
/// calls must report the same pc.
#[inline(never)]
pub fn trap_roundtrip() -> Result<TrapReport, TrapError> {
    SEEN.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    // SAFETY: stores this asm's own `ud2` address into SITE, then executes
    // it. The #UD handler sees ARMED, finds RIP == SITE and resumes at the
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
            slot = in(reg) SITE.as_ptr(),
        );
    }
    let still_armed = ARMED.swap(false, Ordering::SeqCst);
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

/// Called by the #UD handler: true when this is the armed `ud2`, which the
/// handler may then step over. Any other #UD is a real fault.
pub(super) fn claim_ud(rip: u64) -> bool {
    if !ARMED.load(Ordering::SeqCst) || rip != SITE.load(Ordering::SeqCst) {
        return false;
    }
    // SAFETY: the CPU just fetched an instruction at `rip`, so its first two
    // bytes are mapped and readable.
    let bytes = unsafe { core::ptr::read_volatile(rip as *const [u8; 2]) };
    if bytes != UD2 {
        return false;
    }
    ARMED.store(false, Ordering::SeqCst);
    SEEN.store(rip, Ordering::SeqCst);
    true
}
