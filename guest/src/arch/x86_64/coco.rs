//! Whether this CPU runs in a TDX trust domain, found before the console is
//! first used (a TD's port I/O would take a #VE; the IDT is loaded first,
//! so even that one would be served). In a TD the console goes through
//! `TDG.VP.VMCALL<Instruction.IO>` (td_io.rs) and the TD's shared GPA bit
//! comes from `TDG.VP.INFO` (the `tdx-guest` crate's `init_tdx`).
//!
//! An SEV-ES/SNP guest needs nothing here: its first CPUID or port access
//! raises #VC, which vc.rs serves.

use core::sync::atomic::{AtomicU64, Ordering};

/// The TD's shared bit, or 0 outside a TD (or before `init`).
static TD_SHARED_BIT: AtomicU64 = AtomicU64::new(0);

/// Detects a TD (CPUID 0x21 "IntelTDX    ", answered by the TDX module
/// itself, not a #VE) and reads its GPA width.
pub fn init() {
    if !tdx_guest::is_tdx_guest_early() {
        return;
    }
    // GPAW is 48 or 52 (TDX Module ABI spec, TDG.VP.INFO); the crate stores
    // the shared mask 1 << (GPAW - 1) it derives from it.
    if tdx_guest::init_tdx().is_ok() {
        TD_SHARED_BIT.store(tdx_guest::shared_mask(), Ordering::Relaxed);
    }
}

/// The TD's shared GPA bit; `None` outside a TD.
pub fn td_shared_bit() -> Option<u64> {
    match TD_SHARED_BIT.load(Ordering::Relaxed) {
        0 => None,
        bit => Some(bit),
    }
}

pub fn in_td() -> bool {
    td_shared_bit().is_some()
}
