//! Touching memory for the first time in an order pKVM with host pages
//! larger than 4 KiB survives.
//!
//! A protected VM's page reaches its stage 2 on its first access: the host
//! pins the page and donates it (arch/arm64/kvm/mmu.c `pkvm_mem_abort`).
//! The fault IPA comes from HPFAR_EL2, which is 4 KiB-granular whatever the
//! host's page size, and Linux 7.3 hands it on unaligned: the overlap check
//! in `pkvm_pgtable_stage2_map` (arch/arm64/kvm/pkvm.c) then looks at
//! `[ipa, ipa + PAGE_SIZE)`, which on a 16 KiB host reaches into the next
//! host page. If that page is already the guest's, the check answers
//! -EAGAIN, the fault is retried, and the vCPU faults on the same access
//! forever without an exit (docs/known-problems.md). On a 4 KiB host the
//! range is exactly one page and nothing can go wrong.
//!
//! The first access to a host page is harmless when it is at the page's
//! start, or when no page above it is mapped yet. Before the granule is
//! known, memory is touched upwards, one load every 4 KiB (the smallest
//! granule: right for any host page size): the Image in entry.rs (before
//! `.bss` is zeroed and relocation writes its pointers, which is where the
//! vCPU used to spin), and the DTB before it is parsed. Once pKVM has said
//! its granule is larger than our 4 KiB pages, every range the kernel hands
//! out (the heap, persistent pages, the tests' windows) gets one load at
//! the start of each of its granules first ([`range`]), which is safe in any
//! order and costs only the pages the run uses.

use super::mmu::PAGE_SIZE;
use convtest_proto::range::{MemRange, RangeList};
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

/// pKVM's granule when it is larger than our pages (0: nothing to do).
static GRANULE: AtomicU64 = AtomicU64::new(0);
/// RAM as the DTB described it: [`range`] never loads outside it.
static RAM: spin::Once<RangeList> = spin::Once::new();

/// One load per `step` bytes of `r` (a power of two), lowest address
/// first, each at the start of its `step`-aligned block (or at `r.start`).
fn touch_upwards(r: MemRange, step: u64) {
    let mut at = r.start;
    while at < r.end {
        // SAFETY: `at` lies in RAM the DTB described (or in the DTB),
        // identity-mapped or accessed with the MMU off; a load changes
        // nothing and its value is discarded.
        unsafe { ptr::read_volatile(at as *const u8) };
        at = (at | (step - 1)) + 1;
    }
}

/// FDT magic, and the most a blob may take (the boot protocol's 2 MiB).
const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_MAX: u32 = 2 << 20;

/// The blob at `dtb_addr`, upwards from its header, before anything parses
/// it out of order. Reads the header's first two words (magic, totalsize)
/// first: loads in the blob's first 4 KiB, which has no mapped page above
/// it yet. Anything that is not a plausible blob is left to the parser to
/// refuse.
///
/// # Safety
/// `dtb_addr` must be the loader's DTB pointer, readable for the
/// `totalsize` bytes its header states.
pub unsafe fn dtb(dtb_addr: u64) {
    let mut head = [0u8; 8];
    for (i, b) in head.iter_mut().enumerate() {
        // SAFETY: the header's first eight bytes, inside the blob (caller's
        // contract); byte loads, so no alignment is assumed (with the MMU
        // off a misaligned load would fault).
        *b = unsafe { ptr::read_volatile((dtb_addr + i as u64) as *const u8) };
    }
    let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let size = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if magic == FDT_MAGIC && size <= FDT_MAX {
        touch_upwards(MemRange::from_len(dtb_addr, u64::from(size)), PAGE_SIZE);
    }
}

/// After the boot-time probe: from now on [`range`] touches granule starts
/// when pKVM's `granule` is larger than our pages.
pub fn set_granule(granule: Option<u64>, ram: &RangeList) {
    RAM.call_once(|| *ram);
    if let Some(g) = granule.filter(|&g| g > PAGE_SIZE && g.is_power_of_two()) {
        GRANULE.store(g, Ordering::SeqCst);
    }
}

/// One load at the start of every granule `r` overlaps (inside RAM), before
/// the caller touches `r` in whatever order it likes.
pub fn range(r: MemRange) {
    let g = GRANULE.load(Ordering::SeqCst);
    let Some(ram) = RAM.get().filter(|_| g != 0) else {
        return;
    };
    let want = r.align_outward(g);
    for m in ram.iter() {
        let c = MemRange::new(want.start.max(m.start), want.end.min(m.end));
        if !c.is_empty() {
            touch_upwards(c, g);
        }
    }
}

/// The header's ` first_touch=` word: what is touched in order, and how.
pub fn word(out: &mut dyn fmt::Write) -> fmt::Result {
    match GRANULE.load(Ordering::SeqCst) {
        0 => out.write_str(" first_touch=image,dtb"),
        g => write!(out, " first_touch=image,dtb,granule_starts:{g}"),
    }
}
