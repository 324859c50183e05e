//! The PVH path's own page tables and boot stack, all in .bss (the entry asm
//! zeroes .bss and fills the first 4 GiB of the identity map before any Rust
//! runs). Here, in 64-bit Rust: unmap the guard page under the stack, and
//! extend the identity map when RAM reaches past 4 GiB.

use super::init::STACK_BYTES;
use core::cell::UnsafeCell;
use x86_64::PhysAddr;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{PageTable, PageTableFlags as F};

const MIB2: u64 = 2 << 20;
const GIB: u64 = 1 << 30;
/// Highest address the identity map can cover: 4 GiB from the entry asm plus
/// one page directory per further GiB. RAM above it is left out of `BootInfo`.
pub const IDENTITY_LIMIT: u64 = 64 * GIB;
const HIGH_PDS: usize = (IDENTITY_LIMIT / GIB) as usize - 4;

/// One guard page, then the stack; 4 KiB-aligned so the guard is a whole page.
#[repr(C, align(4096))]
pub struct BootStack {
    guard: [u8; 4096],
    stack: [u8; STACK_BYTES as usize],
}

/// Memory the CPU and the boot code write behind Rust's back: interior
/// mutability keeps it in writable .bss, and it is touched only on the one
/// CPU before `kmain`.
pub struct BootCell<T>(UnsafeCell<T>);

// SAFETY: single CPU; every access is in the entry asm or the functions
// below, which run once, before anything else could look.
unsafe impl<T> Sync for BootCell<T> {}

impl<T> BootCell<T> {
    const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }
    fn get(&self) -> *mut T {
        self.0.get()
    }
}

pub static BOOT_STACK: BootCell<BootStack> = BootCell::new(BootStack {
    guard: [0; 4096],
    stack: [0; STACK_BYTES as usize],
});
pub static BOOT_PML4: BootCell<PageTable> = BootCell::new(PageTable::new());
pub static BOOT_PDPT: BootCell<PageTable> = BootCell::new(PageTable::new());
pub static BOOT_PD: BootCell<[PageTable; 4]> = BootCell::new([const { PageTable::new() }; 4]);
/// Replaces the 2 MiB entry that covers the guard page with 4 KiB pages.
static GUARD_PT: BootCell<PageTable> = BootCell::new(PageTable::new());
static HIGH_PD: BootCell<[PageTable; HIGH_PDS]> =
    BootCell::new([const { PageTable::new() }; HIGH_PDS]);

/// Identity map: virtual address of a static is its physical address.
fn phys<T>(p: *const T) -> PhysAddr {
    PhysAddr::new(p as u64)
}

pub fn guard_page() -> u64 {
    BOOT_STACK.get() as u64
}

/// Makes the page below the boot stack non-present, so an overflow faults
/// (and, through the #DF IST stack, reports) instead of overwriting .bss.
pub fn unmap_guard_page() {
    let guard = guard_page();
    let base = guard & !(MIB2 - 1);
    let pd_index = (guard / MIB2) as usize; // < 2048: the kernel sits below 4 GiB
    // SAFETY: single CPU, before kmain; these tables are the live ones, and
    // the new 4 KiB entries map exactly what the 2 MiB entry mapped except the
    // guard page, which nothing but an overflowing stack touches.
    unsafe {
        let pt = &mut *GUARD_PT.get();
        for (i, entry) in pt.iter_mut().enumerate() {
            entry.set_addr(
                PhysAddr::new(base + i as u64 * 4096),
                F::PRESENT | F::WRITABLE,
            );
        }
        pt[((guard - base) / 4096) as usize].set_unused();
        let pd = &mut *BOOT_PD.get();
        pd[pd_index / 512][pd_index % 512].set_addr(phys(GUARD_PT.get()), F::PRESENT | F::WRITABLE);
        flush_tlb();
    }
}

/// Maps [4 GiB, end) (rounded up to whole GiB, capped at IDENTITY_LIMIT)
/// with 2 MiB pages.
pub fn map_identity_up_to(end: u64) {
    let gibs = end.min(IDENTITY_LIMIT).div_ceil(GIB) as usize;
    if gibs <= 4 {
        return;
    }
    // SAFETY: single CPU, before kmain; PDPT slots 4.. are unused until now
    // and each new PD is fully written before its PDPT entry points at it.
    unsafe {
        let pdpt = &mut *BOOT_PDPT.get();
        let high = &mut *HIGH_PD.get();
        for gib in 4..gibs {
            let pd = &mut high[gib - 4];
            for (j, entry) in pd.iter_mut().enumerate() {
                let addr = gib as u64 * GIB + j as u64 * MIB2;
                entry.set_addr(PhysAddr::new(addr), F::PRESENT | F::WRITABLE | F::HUGE_PAGE);
            }
            pdpt[gib].set_addr(phys(pd as *const PageTable), F::PRESENT | F::WRITABLE);
        }
        flush_tlb();
    }
}

/// Reloading CR3 drops every (non-global) translation.
fn flush_tlb() {
    let (frame, flags) = Cr3::read();
    // SAFETY: writes back the active PML4 unchanged.
    unsafe { Cr3::write(frame, flags) };
}
