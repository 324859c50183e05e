//! Where the conversion tests (and, after them, the bench suite) work: an
//! 8 MiB window of free RAM above the kernel (the module comment of
//! `suite::conv` says why there), and the granule slots of its first 2 MiB,
//! one per test.

use crate::arch::{Current, Platform};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::range::{MemRange, RangeList, align_up};

const TWO_MIB: u64 = 2 << 20;
pub(in crate::suite) const WINDOW: u64 = 8 << 20;
/// Slots (granules in the window's first 2 MiB), one per test.
pub(super) const SLOT_RESET: u64 = 0;
pub(super) const SLOT_SHARE: u64 = 1;
pub(super) const SLOT_UNSHARE: u64 = 2;
pub(super) const SLOT_CONTENT: u64 = 3;
pub(super) const SLOT_REJECTS: u64 = 4;
pub(super) const SLOT_SIZES: u64 = 5;
pub(super) const SLOT_FLIPFLOP: u64 = 6;
pub(super) const SLOT_COST: u64 = 7;
/// Stays shared during `conv.unshare_private`'s checks: the positive control.
pub(super) const SLOT_CONTROL: u64 = 8;
const SLOTS: u64 = 9;

/// The 8 MiB of free RAM the conversion tests (and, after them, the bench
/// suite) work in.
#[derive(Clone, Copy)]
pub(in crate::suite) struct Window {
    pub base: u64,
    pub granule: u64,
}

impl Window {
    pub(in crate::suite) fn find(
        test_ram: &RangeList,
        kernel_end: u64,
        granule: u64,
    ) -> Result<Window, String> {
        if granule * SLOTS > TWO_MIB {
            return Err(format!(
                "granule {granule} too large: {SLOTS} test slots must fit in 2 MiB"
            ));
        }
        let floor = align_up(kernel_end, TWO_MIB);
        let best = test_ram
            .iter()
            .map(|r| MemRange::new(r.start.max(floor), r.end).align_inward(TWO_MIB))
            .filter(|r| !r.is_empty())
            .max_by_key(MemRange::len);
        match best {
            Some(r) if r.len() >= WINDOW => {
                Current::first_touch(MemRange::from_len(r.start, WINDOW));
                Ok(Window {
                    base: r.start,
                    granule,
                })
            }
            other => Err(format!(
                "no {WINDOW}-byte 2 MiB-aligned window in free RAM above {floor:#x} (largest: {})",
                other.map_or(0, |r| r.len())
            )),
        }
    }

    pub(in crate::suite) fn slot(&self, i: u64) -> MemRange {
        MemRange::from_len(self.base + i * self.granule, self.granule)
    }

    pub(in crate::suite) fn aligned_2m(&self) -> MemRange {
        MemRange::from_len(self.base + TWO_MIB, TWO_MIB)
    }

    pub(super) fn unaligned_2m(&self) -> MemRange {
        MemRange::from_len(self.base + 2 * TWO_MIB + self.granule, TWO_MIB)
    }

    /// Everything the tests convert.
    pub(super) fn areas(&self) -> Vec<MemRange> {
        let mut areas: Vec<MemRange> = (0..SLOTS).map(|i| self.slot(i)).collect();
        areas.push(self.aligned_2m());
        areas.push(self.unaligned_2m());
        areas
    }
}
