//! SMCCC calls over the conduit the DTB names (/psci `method`).
//!
//! Register contract (SMCCC v1.x, SMC64/HVC64 fast calls): x0 = function id,
//! x1..x3 = arguments; results come back in x0..x3. SMCCC 1.0 let x4..x17
//! be clobbered, so every caller-saved register (and the FP/SIMD ones the
//! Rust exception handler may use) is declared clobbered.
//!
//! If nothing above EL1 implements the conduit the instruction itself is
//! UNDEFINED (QEMU TCG at EL1 has no EL2 for `hvc`; after we leave EL2,
//! HCR_EL2.HCD makes `hvc` UNDEFINED and there is no EL3 for `smc`). The
//! call is armed, so the handler skips it and the answer is `Undefined`.

use super::exceptions;
use crate::arch::hooks;
use convtest_proto::smccc::{Conduit, SmcccAnswer};
use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

static CONDUIT: AtomicU8 = AtomicU8::new(0);

pub fn set_conduit(c: Conduit) {
    let v = match c {
        Conduit::None => 0,
        Conduit::Hvc => 1,
        Conduit::Smc => 2,
    };
    CONDUIT.store(v, Ordering::SeqCst);
}

pub fn conduit() -> Conduit {
    match CONDUIT.load(Ordering::SeqCst) {
        1 => Conduit::Hvc,
        2 => Conduit::Smc,
        _ => Conduit::None,
    }
}

/// One call over the configured conduit; `None` when the DTB names none.
pub fn call(fid: u32, a1: u64, a2: u64, a3: u64) -> Option<SmcccAnswer<[u64; 4]>> {
    let regs = [u64::from(fid), a1, a2, a3];
    let out = match conduit() {
        Conduit::Hvc => hvc(regs),
        Conduit::Smc => smc(regs),
        Conduit::None => return None,
    };
    Some(match exceptions::disarm() {
        None => SmcccAnswer::Value(out),
        Some(c) if c.ec == exceptions::EC_UNKNOWN => SmcccAnswer::Undefined,
        Some(c) => hooks::fatal(format_args!(
            "SMCCC call {fid:#x} trapped with EC={:#04x} ({}) at {:#x}, expected UNDEFINED or an answer",
            c.ec,
            exceptions::ec_name(c.ec),
            c.pc
        )),
    })
}

/// `hvc #0`: x0..x3 in, x0..x3 out (contract above). Armed: leaves a catch
/// for `exceptions::disarm` if the instruction traps.
fn hvc(r: [u64; 4]) -> [u64; 4] {
    let slot = exceptions::arm();
    let (mut x0, mut x1, mut x2, mut x3) = (r[0], r[1], r[2], r[3]);
    // SAFETY: an SMCCC call touches no memory of ours; if it traps, the
    // handler steps over it with all general registers restored.
    unsafe {
        asm!(
            "adr x16, 2f",
            "str x16, [{slot}]",
            "2: hvc #0",
            slot = in(reg) slot,
            out("x16") _,
            inout("x0") x0,
            inout("x1") x1,
            inout("x2") x2,
            inout("x3") x3,
            clobber_abi("C"),
        )
    };
    [x0, x1, x2, x3]
}

/// `smc #0`: same contract as `hvc`.
fn smc(r: [u64; 4]) -> [u64; 4] {
    let slot = exceptions::arm();
    let (mut x0, mut x1, mut x2, mut x3) = (r[0], r[1], r[2], r[3]);
    // SAFETY: as for `hvc`.
    unsafe {
        asm!(
            "adr x16, 2f",
            "str x16, [{slot}]",
            "2: smc #0",
            slot = in(reg) slot,
            out("x16") _,
            inout("x0") x0,
            inout("x1") x1,
            inout("x2") x2,
            inout("x3") x3,
            clobber_abi("C"),
        )
    };
    [x0, x1, x2, x3]
}
