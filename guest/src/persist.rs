//! A page of RAM that outlives a reset: one granule at the top of the
//! highest free RAM range (the same place at every boot of the same
//! machine), removed from what tests may touch, never shared. Every write is
//! cleaned to the point of coherency, so a boot that starts with the MMU and
//! caches off still reads what the previous boot wrote last.
//!
//! The boot record (`convtest_proto::reboot`) and the pKVM shared-range
//! ledger each live in one; the ledger takes the next one down.

use crate::arch::{Current, Platform};
use convtest_proto::range::{MemRange, RangeList, align_down};

pub struct PersistentPage {
    at: MemRange,
    phys_offset: u64,
}

impl PersistentPage {
    /// The top `granule` of the highest range of `free`, if one fits `bytes`.
    pub fn place(free: &RangeList, granule: u64, bytes: u64, phys_offset: u64) -> Option<Self> {
        let top = free.iter().max_by_key(|r| r.end)?;
        let end = align_down(top.end, granule);
        let start = end.checked_sub(granule)?;
        let at = MemRange::new(start, end);
        if start < top.start || granule < bytes {
            return None;
        }
        Current::first_touch(at);
        Some(PersistentPage { at, phys_offset })
    }

    pub fn range(&self) -> MemRange {
        self.at
    }

    fn words<const N: usize>(&self) -> *mut [u64; N] {
        const { assert!(N * 8 <= 4096, "a page holds 512 words") };
        self.at.start.wrapping_add(self.phys_offset) as *mut [u64; N]
    }

    /// What the page holds (zeroes or anything on a fresh machine).
    pub fn read<const N: usize>(&self) -> [u64; N] {
        // SAFETY: `at` is a granule of free RAM this page owns (its owner
        // removes it from what tests may use), mapped at `phys_offset`,
        // 8-byte aligned; N words fit in it (checked above).
        unsafe { self.words::<N>().read_volatile() }
    }

    pub fn write<const N: usize>(&self, w: &[u64; N]) {
        // SAFETY: as in `read`.
        unsafe { self.words::<N>().write_volatile(*w) };
        Current::clean_dcache(self.at.start.wrapping_add(self.phys_offset), (N * 8) as u64);
    }
}
