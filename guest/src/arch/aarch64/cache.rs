//! Data-cache maintenance by virtual address, to the point of coherency:
//! `clean` (the ledger's writes must reach memory before a reboot that
//! starts with caches off) and `flush` (clean + invalidate: the bench's
//! cold-cache runs start from memory). Both end with `dsb sy`.

/// The smallest data cache line, from CTR_EL0.DminLine (log2 of words).
pub fn line() -> u64 {
    let ctr: u64;
    // SAFETY: reads CTR_EL0, which EL1 may always read.
    unsafe { core::arch::asm!("mrs {c}, ctr_el0", c = out(reg) ctr, options(nomem, nostack)) };
    4u64 << ((ctr >> 16) & 0xf)
}

/// `dc cvac` over `[va, va+len)`.
pub fn clean_dcache(va: u64, len: u64) {
    let l = line();
    let mut a = va & !(l - 1);
    while a < va + len {
        // SAFETY: cache maintenance by VA on mapped memory the caller owns;
        // it does not change the program's view of memory.
        unsafe {
            core::arch::asm!("dc cvac, {a}", a = in(reg) a, options(nostack, preserves_flags))
        };
        a += l;
    }
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// `dc civac` over `[va, va+len)`: the lines leave the caches.
pub fn flush_dcache(va: u64, len: u64) {
    let l = line();
    let mut a = va & !(l - 1);
    while a < va + len {
        // SAFETY: as in `clean_dcache`; clean + invalidate keeps the data
        // (written back first), so the program's view is unchanged.
        unsafe {
            core::arch::asm!("dc civac, {a}", a = in(reg) a, options(nostack, preserves_flags))
        };
        a += l;
    }
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}
