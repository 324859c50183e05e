//! Data-cache flush by address (`clflush` per 64-byte line, then `mfence`):
//! the bench's cold-cache runs start from memory. `wbinvd` would do all
//! caches at once but traps to the hypervisor in a VM.

const LINE: u64 = 64;

/// Writes back and evicts the lines of `[va, va+len)`.
pub fn flush_dcache(va: u64, len: u64) {
    let mut a = va & !(LINE - 1);
    while a < va + len {
        // SAFETY: clflush of a mapped address the caller owns only moves the
        // line out of the caches (written back first); memory is unchanged.
        unsafe {
            core::arch::asm!("clflush [{a}]", a = in(reg) a, options(nostack, preserves_flags))
        };
        a += LINE;
    }
    // SAFETY: a fence only.
    unsafe { core::arch::asm!("mfence", options(nostack, preserves_flags)) };
}

/// Nothing to do on x86: caches stay coherent with memory across a reset
/// (the next boot reads through the same caches), so what was written is
/// what the next boot reads.
pub fn clean_dcache(_va: u64, _len: u64) {}
