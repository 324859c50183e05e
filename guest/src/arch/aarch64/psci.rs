//! PSCI power control over the SMCCC conduit. Neither SYSTEM_OFF nor
//! SYSTEM_RESET carries a status: QEMU exits 0 after SYSTEM_OFF, so the
//! verdict comes from the KTAP stream. CPU_ON starts secondary CPUs (smp.rs).

use super::smccc;
use convtest_proto::range::MemRange;
use convtest_proto::smccc::{Conduit, SmcccAnswer};
use core::arch::asm;

const SYSTEM_OFF: u32 = 0x8400_0008;
const SYSTEM_RESET: u32 = 0x8400_0009;
/// SMC64 CPU_ON: x1 = target MPIDR affinity, x2 = entry point (physical),
/// x3 = context id (the entry point's x0).
const CPU_ON: u32 = 0xC400_0003;

/// PSCI CPU_ON; the answer is the signed 32-bit PSCI status (0 = started,
/// -2 INVALID_PARAMETERS, -4 ALREADY_ON, -5 ON_PENDING, …). `None` when the
/// DTB names no conduit.
pub fn cpu_on(target: u64, entry: u64, context: u64) -> Option<SmcccAnswer<i64>> {
    Some(match smccc::call(CPU_ON, target, entry, context)? {
        SmcccAnswer::Undefined => SmcccAnswer::Undefined,
        // The status is an int32 in w0; the upper half is not specified.
        SmcccAnswer::Value([x0, ..]) => SmcccAnswer::Value(i64::from(x0 as u32 as i32)),
    })
}

/// Asks firmware to power off; returns only if it refused or no conduit exists.
pub fn system_off() {
    let _ = smccc::call(SYSTEM_OFF, 0, 0, 0);
}

/// Asks firmware to reset; returns only if it refused or no conduit exists.
///
/// The next boot starts with the MMU and caches off and reads `keep` (the
/// Image and the DTB) straight from memory, so first every cache line of
/// `keep` is cleaned and invalidated to the point of coherency. That loop
/// and the call are one asm block that stores nothing: a line dirtied after
/// the clean (a stack slot, the armed-call slot smccc::call writes) could be
/// evicted during the next boot, over what that boot wrote with caches off.
/// The call is not armed: a conduit the DTB names but nothing implements
/// traps as UNDEFINED and ends in the crash report.
pub fn system_reset(keep: [MemRange; 2]) {
    let line = super::cache::line();
    let [a, b] = keep.map(|r| (r.start & !(line - 1), r.end));
    macro_rules! reset_over {
        ($insn:literal) => {
            // SAFETY: clean+invalidate by VA keeps memory's contents (dirty
            // lines are written back first) on mapped ranges the caller
            // names; the PSCI call touches no memory of ours and, if it
            // returns, returns x0 only (SMCCC: the rest is clobbered).
            unsafe {
                asm!(
                    "1: cmp x9, x10",
                    "b.hs 2f",
                    "dc civac, x9",
                    "add x9, x9, x13",
                    "b 1b",
                    "2: cmp x11, x12",
                    "b.hs 3f",
                    "dc civac, x11",
                    "add x11, x11, x13",
                    "b 2b",
                    "3: dsb sy",
                    "isb",
                    $insn,
                    in("x9") a.0,
                    in("x10") a.1,
                    in("x11") b.0,
                    in("x12") b.1,
                    in("x13") line,
                    inout("x0") u64::from(SYSTEM_RESET) => _,
                    in("x1") 0u64,
                    in("x2") 0u64,
                    in("x3") 0u64,
                    clobber_abi("C"),
                )
            }
        };
    }
    match smccc::conduit() {
        Conduit::Hvc => reset_over!("hvc #0"),
        Conduit::Smc => reset_over!("smc #0"),
        Conduit::None => {}
    }
}

/// Where power control failed: stop the CPU for good.
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}
