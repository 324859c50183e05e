//! A second mapping of physical memory for the shared view of a
//! confidential guest: TDX reaches a shared page through its alias
//! `gpa | shared bit`, SEV-SNP through a mapping without the C-bit. The
//! view goes into a free PML4 slot (one 512 GiB slot: RAM above that is not
//! mapped) with 2 MiB pages whose addresses carry `set`; its page tables
//! come from the heap, which lies in the physical-memory mapping.

use super::paging;
use alloc::boxed::Box;
use x86_64::PhysAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{PageTable, PageTableFlags};

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

/// Maps `[0, end)` at a free PML4 slot with `set` OR'ed into every address;
/// the view's offset (view address = pa + offset), or `None` when no slot
/// is free or `end` does not fit one.
pub fn map(end: u64, set: u64) -> Option<u64> {
    if end > 512 * GIB {
        return None;
    }
    let base = paging::unmapped_address()?;
    let offset = paging::phys_offset();
    let phys = |t: &PageTable| (t as *const PageTable as u64).wrapping_sub(offset);
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let pdpt: &'static mut PageTable = Box::leak(Box::new(PageTable::new()));
    for gib in 0..end.div_ceil(GIB) {
        let pd: &'static mut PageTable = Box::leak(Box::new(PageTable::new()));
        for (i, e) in pd.iter_mut().enumerate() {
            let pa = gib * GIB + i as u64 * MIB2;
            if pa >= end {
                break;
            }
            e.set_addr(
                PhysAddr::try_new(pa | set).ok()?,
                flags | PageTableFlags::HUGE_PAGE,
            );
        }
        pdpt[gib as usize].set_addr(PhysAddr::new(phys(pd)), flags);
    }
    let (frame, _) = Cr3::read();
    let pml4 = (frame.start_address().as_u64() + offset) as *mut PageTable;
    let slot = ((base >> 39) & 0x1ff) as usize;
    // SAFETY: CR3's PML4 is reachable at the physical-memory offset; slot
    // `slot` is not present (unmapped_address found it so), so filling it
    // changes no existing translation.
    unsafe { (&mut *pml4)[slot].set_addr(PhysAddr::new(phys(pdpt)), flags) };
    tlb::flush_all();
    Some(base)
}
