//! The page size, where physical memory is mapped, and what the fault
//! injector needs from the live page tables, on either entry.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{PageTable, PageTableFlags};

pub const PAGE_SIZE: u64 = 4096;

/// Virtual address of physical 0 (0 under the PVH identity map).
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);

pub fn set_phys_offset(offset: u64) {
    PHYS_OFFSET.store(offset, Ordering::Relaxed);
}

pub fn phys_offset() -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed)
}

/// Bytes one PML4 entry spans.
const PML4_SPAN: u64 = 1 << 39;

/// A canonical lower-half address no page table maps: the base of the
/// highest non-present PML4 slot. Found by walking CR3 rather than assumed,
/// because the bootloader places its mappings wherever it finds room.
pub fn unmapped_address() -> Option<u64> {
    let (frame, _) = Cr3::read();
    let pml4 =
        (frame.start_address().as_u64() + PHYS_OFFSET.load(Ordering::Relaxed)) as *const PageTable;
    // SAFETY: CR3 holds the active PML4, reachable through the physical
    // memory mapping at PHYS_OFFSET; it is only read.
    let pml4 = unsafe { &*pml4 };
    (1..256usize)
        .rev()
        .find(|&i| !pml4[i].flags().contains(PageTableFlags::PRESENT))
        .map(|i| i as u64 * PML4_SPAN)
}

/// The physical address `va` maps to, walking the live page tables.
pub fn virt_to_phys(va: u64) -> Option<u64> {
    use x86_64::VirtAddr;
    use x86_64::structures::paging::{OffsetPageTable, Translate};
    let offset = PHYS_OFFSET.load(Ordering::Relaxed);
    let (frame, _) = Cr3::read();
    let l4 = (frame.start_address().as_u64() + offset) as *mut PageTable;
    // SAFETY: CR3 holds the active PML4, reachable through the physical
    // memory mapping at PHYS_OFFSET; the walk only reads it.
    let table = unsafe { OffsetPageTable::new(&mut *l4, VirtAddr::new(offset)) };
    table
        .translate_addr(VirtAddr::try_new(va).ok()?)
        .map(|p| p.as_u64())
}
