//! Page-state tracker: one bit per conversion granule over all RAM, saying
//! whether the guest believes the granule is private or shared. It changes
//! only after the hypervisor confirmed a conversion, so a disagreement
//! between the tracker and what the host sees is a finding, not noise.

use crate::range::{MemRange, RangeList, is_aligned};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    Private,
    Shared,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackError {
    /// The range's ends are not multiples of the granule.
    Unaligned { range: MemRange, granule: u64 },
    /// Part of the range is not RAM the tracker covers.
    OutsideRam(MemRange),
}

impl fmt::Display for TrackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackError::Unaligned { range, granule } => {
                write!(f, "{range} is not aligned to the {granule}-byte granule")
            }
            TrackError::OutsideRam(r) => write!(f, "{r} is not wholly inside tracked RAM"),
        }
    }
}

#[derive(Clone, Debug)]
struct Region {
    range: MemRange,
    first_bit: u64,
}

#[derive(Clone, Debug)]
pub struct PageStates {
    granule: u64,
    regions: Vec<Region>,
    /// Set bit = shared.
    bits: Vec<u64>,
    granules: u64,
}

impl PageStates {
    /// Tracks every whole granule of `ram`, all starting `initial`.
    pub fn new(ram: &RangeList, granule: u64, initial: PageState) -> Self {
        debug_assert!(granule.is_power_of_two());
        let mut sorted = *ram;
        sorted.sort();
        let mut regions = Vec::new();
        let mut granules = 0;
        for r in sorted.iter() {
            let r = r.align_inward(granule);
            if r.is_empty() {
                continue;
            }
            regions.push(Region {
                range: r,
                first_bit: granules,
            });
            granules += r.len() / granule;
        }
        let words = granules.div_ceil(64) as usize;
        let fill = if initial == PageState::Shared {
            u64::MAX
        } else {
            0
        };
        Self {
            granule,
            regions,
            bits: vec![fill; words],
            granules,
        }
    }

    pub fn granule(&self) -> u64 {
        self.granule
    }

    pub fn granules(&self) -> u64 {
        self.granules
    }

    /// The tracked ranges (RAM aligned inward to the granule).
    pub fn ranges(&self) -> impl Iterator<Item = MemRange> + '_ {
        self.regions.iter().map(|r| r.range)
    }

    fn bit_of(&self, addr: u64) -> Option<u64> {
        let region = self.regions.iter().find(|r| r.range.contains(addr))?;
        Some(region.first_bit + (addr - region.range.start) / self.granule)
    }

    pub fn state(&self, addr: u64) -> Option<PageState> {
        let bit = self.bit_of(addr)?;
        let shared = self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0;
        Some(if shared {
            PageState::Shared
        } else {
            PageState::Private
        })
    }

    /// Records a confirmed conversion of `range`.
    pub fn set(&mut self, range: MemRange, state: PageState) -> Result<(), TrackError> {
        if !is_aligned(range.start, self.granule)
            || !is_aligned(range.end, self.granule)
            || range.is_empty()
        {
            return Err(TrackError::Unaligned {
                range,
                granule: self.granule,
            });
        }
        let Some(region) = self.regions.iter().find(|r| r.range.covers(&range)) else {
            return Err(TrackError::OutsideRam(range));
        };
        let first = region.first_bit + (range.start - region.range.start) / self.granule;
        for bit in first..first + range.len() / self.granule {
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            match state {
                PageState::Shared => self.bits[word] |= mask,
                PageState::Private => self.bits[word] &= !mask,
            }
        }
        Ok(())
    }

    /// Sets every tracked granule (after a whole-RAM reset).
    pub fn set_all(&mut self, state: PageState) {
        let fill = if state == PageState::Shared {
            u64::MAX
        } else {
            0
        };
        self.bits.iter_mut().for_each(|w| *w = fill);
    }

    /// Granules currently in `state`.
    pub fn count(&self, state: PageState) -> u64 {
        let full_words = (self.granules / 64) as usize;
        let mut shared: u64 = self.bits[..full_words]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let tail = self.granules % 64;
        if tail != 0 {
            shared += u64::from((self.bits[full_words] & ((1u64 << tail) - 1)).count_ones());
        }
        match state {
            PageState::Shared => shared,
            PageState::Private => self.granules - shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram() -> RangeList {
        let mut l = RangeList::new();
        l.push(MemRange::new(0x10_0000, 0x20_0000)).unwrap(); // 256 pages
        l.push(MemRange::new(0x1000, 0x9f800)).unwrap(); // unaligned end: 158 whole pages
        l
    }

    #[test]
    fn covers_whole_granules_only() {
        let t = PageStates::new(&ram(), 4096, PageState::Private);
        assert_eq!(t.granules(), 158 + 256);
        assert_eq!(t.count(PageState::Private), 414);
        assert_eq!(
            t.state(0x9f000),
            None,
            "partial granule at the end is untracked"
        );
        assert_eq!(t.state(0x9e000), Some(PageState::Private));
        assert_eq!(t.state(0x0), None);
    }

    #[test]
    fn set_and_count() {
        let mut t = PageStates::new(&ram(), 4096, PageState::Private);
        t.set(MemRange::new(0x10_0000, 0x10_3000), PageState::Shared)
            .unwrap();
        assert_eq!(t.count(PageState::Shared), 3);
        assert_eq!(t.state(0x10_2fff), Some(PageState::Shared));
        assert_eq!(t.state(0x10_3000), Some(PageState::Private));
        t.set(MemRange::new(0x10_1000, 0x10_2000), PageState::Private)
            .unwrap();
        assert_eq!(t.count(PageState::Shared), 2);
        t.set_all(PageState::Shared);
        assert_eq!(t.count(PageState::Private), 0);
        t.set_all(PageState::Private);
        assert_eq!(t.count(PageState::Shared), 0);
    }

    #[test]
    fn rejects_bad_ranges() {
        let mut t = PageStates::new(&ram(), 4096, PageState::Private);
        assert!(matches!(
            t.set(MemRange::new(0x10_0800, 0x10_1000), PageState::Shared),
            Err(TrackError::Unaligned { .. })
        ));
        assert!(matches!(
            t.set(MemRange::new(0x1f_f000, 0x20_1000), PageState::Shared),
            Err(TrackError::OutsideRam(_))
        ));
        assert!(matches!(
            t.set(MemRange::new(0x10_0000, 0x10_0000), PageState::Shared),
            Err(TrackError::Unaligned { .. })
        ));
        assert_eq!(t.count(PageState::Shared), 0, "failed sets change nothing");
    }

    #[test]
    fn large_granule() {
        let t = PageStates::new(&ram(), 0x20_0000, PageState::Shared);
        assert_eq!(t.granules(), 0, "no 2 MiB-aligned 2 MiB block in this map");
        let mut l = RangeList::new();
        l.push(MemRange::new(0x4000_0000, 0x5000_0000)).unwrap();
        let t = PageStates::new(&l, 0x20_0000, PageState::Shared);
        assert_eq!(t.count(PageState::Shared), 128);
    }
}
