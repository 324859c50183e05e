//! RDMSR that survives #GP, for MSRs a hypervisor may not implement (SEV_STATUS
//! under a VMM that passes the host's SEV CPUID bit through). One asm site,
//! whose address the #GP handler in `idt.rs` recognises and steps over.
//!
//! Single-CPU by design, like `trap.rs`: the statics describe the one read in
//! flight on the boot CPU.

use super::armed::ArmedSite;
use core::sync::atomic::{AtomicBool, Ordering};

const RDMSR: [u8; 2] = [0x0f, 0x32];

/// The `rdmsr` below; the #GP handler steps over it only while armed.
static RD: ArmedSite = ArmedSite::new(RDMSR);
/// Set by the #GP handler when it stepped over the armed `rdmsr`.
static FAULTED: AtomicBool = AtomicBool::new(false);

/// The read raised #GP: the MSR does not exist here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrFault;

/// Reads MSR `msr`, or reports that RDMSR raised #GP. Never inlined: one copy
/// of the asm means one `rdmsr` address for the handler to match.
///
/// Register contract of the asm: ECX = MSR index in; EDX:EAX = value out
/// (high:low). Both are zeroed before the `rdmsr`; when it faults the
/// handler resumes 2 bytes later (`0f 32`) with EDX:EAX still zero and
/// FAULTED set, which is what tells the two cases apart (an MSR may read 0).
#[inline(never)]
pub fn rdmsr_guarded(msr: u32) -> Result<u64, MsrFault> {
    FAULTED.store(false, Ordering::SeqCst);
    RD.arm();
    let (lo, hi): (u32, u32);
    // SAFETY: stores this asm's own `rdmsr` address into the site's slot, then
    // executes it at CPL 0. RDMSR only reads; if the MSR does not exist it
    // raises #GP, and the #GP handler finds the site armed at RIP and resumes at the
    // next instruction, the end of this block. Only the declared registers
    // change (flags are restored by iretq). The red zone is off on this
    // target, so the exception frame cannot clobber live stack data. No
    // `nomem`: the block writes the slot, and the compiler must not move the
    // arming/FAULTED accesses across it.
    unsafe {
        core::arch::asm!(
            "lea {site}, [rip + 2f]",
            "mov qword ptr [{slot}], {site}",
            "2:",
            "rdmsr",
            site = out(reg) _,
            slot = in(reg) RD.slot(),
            in("ecx") msr,
            inout("eax") 0u32 => lo,
            inout("edx") 0u32 => hi,
        );
    }
    RD.disarm();
    if FAULTED.swap(false, Ordering::SeqCst) {
        return Err(MsrFault);
    }
    Ok(u64::from(hi) << 32 | u64::from(lo))
}

/// Called by the #GP handler: true when this is the armed `rdmsr`, which the
/// handler may then step over (2 bytes). Any other #GP is a real fault.
pub(super) fn claim_gp(rip: u64, error_code: u64) -> bool {
    // RDMSR of an unimplemented MSR raises #GP(0); a non-zero error code names
    // a selector and comes from something else.
    if error_code != 0 || !RD.claim(rip) {
        return false;
    }
    FAULTED.store(true, Ordering::SeqCst);
    true
}
