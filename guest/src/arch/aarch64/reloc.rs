//! Self-relocation. The Image is linked at address 0 as a static PIE, so
//! every stored pointer (vtables, string tables, `&'static` in statics) is an
//! offset until the load address is added. lld lists them in `.rela.dyn` as
//! R_AARCH64_RELATIVE entries.

/// One `Elf64_Rela`.
#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: u64,
}

/// `r_info` of a RELATIVE entry: type 1027, no symbol.
const R_AARCH64_RELATIVE: u64 = 1027;

unsafe extern "C" {
    static __rela_start: Rela;
    static __rela_end: Rela;
}

/// Applies `.rela.dyn` for an image loaded at `base`; returns how many entries
/// had a type other than RELATIVE (left alone: a static PIE should have none).
///
/// Called by the entry code with the MMU off, before anything else in Rust.
/// Code reaches symbols PC-relatively (`adrp`), so running here is fine, but
/// nothing may read a stored pointer until this returns.
///
/// Idempotent: each slot gets `base + addend` from the table, never its own
/// old content plus something, so the entry code of a later boot (a guest
/// reset re-enters the same Image bytes under pKVM, the VMM cannot reload
/// them) writes the same values again.
///
/// # Safety
/// `base` must be the runtime address of `__image_start`; nothing may use a
/// stored pointer while it runs.
pub unsafe extern "C" fn relocate(base: u64) -> u64 {
    let start = &raw const __rela_start;
    let end = &raw const __rela_end;
    let count = (end as usize - start as usize) / core::mem::size_of::<Rela>();
    let mut unsupported = 0;
    for i in 0..count {
        // SAFETY: `i` indexes the linker-made table between the two symbols.
        let r = unsafe { start.add(i).read() };
        if r.info != R_AARCH64_RELATIVE {
            unsupported += 1;
            continue;
        }
        let slot = base.wrapping_add(r.offset) as *mut u64;
        // SAFETY: the linker emitted `offset` for a pointer slot inside the
        // image, now at `base + offset`. Unaligned-safe: with the MMU off all
        // memory is Device, where a misaligned access would fault.
        unsafe { slot.write_unaligned(base.wrapping_add(r.addend)) };
    }
    unsupported
}
