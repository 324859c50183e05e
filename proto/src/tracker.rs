//! Page-state tracker: what the guest believes about every conversion
//! granule of RAM — private, shared, or unknown. It changes only after the
//! hypervisor answered, so a disagreement between the tracker and what the
//! host sees is a finding, not noise. A conversion that failed leaves its
//! range *unknown* (another VMM may have converted part of it); unknown
//! granules must be resolved (converted to a known state) before use.

use crate::range::{MemRange, RangeList, is_aligned};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    Private,
    Shared,
    /// A conversion of this granule failed or was not confirmed: the guest
    /// must not rely on it either way.
    Unknown,
}

/// Where a conversion moves a range: the two states a hypervisor can be
/// asked for (never `Unknown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Private,
    Shared,
}

impl Target {
    pub const fn state(self) -> PageState {
        match self {
            Target::Private => PageState::Private,
            Target::Shared => PageState::Shared,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Target::Private => "private",
            Target::Shared => "shared",
        }
    }
}

impl From<Target> for PageState {
    fn from(t: Target) -> Self {
        t.state()
    }
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
    /// Set bit = shared (meaningless where `unknown` is set).
    shared: Vec<u64>,
    /// Set bit = unknown.
    unknown: Vec<u64>,
    granules: u64,
}

/// The (shared, unknown) bit pair of a state.
const fn bits_of(state: PageState) -> (bool, bool) {
    match state {
        PageState::Private => (false, false),
        PageState::Shared => (true, false),
        PageState::Unknown => (false, true),
    }
}

const fn word_fill(set: bool) -> u64 {
    if set { u64::MAX } else { 0 }
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
        let (shared, unknown) = bits_of(initial);
        Self {
            granule,
            regions,
            shared: vec![word_fill(shared); words],
            unknown: vec![word_fill(unknown); words],
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

    /// Whether `range` lies wholly inside one tracked range.
    pub fn covers(&self, range: &MemRange) -> bool {
        self.regions.iter().any(|r| r.range.covers(range))
    }

    fn bit_of(&self, addr: u64) -> Option<u64> {
        let region = self.regions.iter().find(|r| r.range.contains(addr))?;
        Some(region.first_bit + (addr - region.range.start) / self.granule)
    }

    fn state_of_bit(&self, bit: u64) -> PageState {
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.unknown[word] & mask != 0 {
            PageState::Unknown
        } else if self.shared[word] & mask != 0 {
            PageState::Shared
        } else {
            PageState::Private
        }
    }

    pub fn state(&self, addr: u64) -> Option<PageState> {
        self.bit_of(addr).map(|b| self.state_of_bit(b))
    }

    /// Records what the hypervisor answered for `range`.
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
        let (shared, unknown) = bits_of(state);
        for bit in first..first + range.len() / self.granule {
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            let put = |w: &mut u64, on: bool| {
                if on { *w |= mask } else { *w &= !mask }
            };
            put(&mut self.shared[word], shared);
            put(&mut self.unknown[word], unknown);
        }
        Ok(())
    }

    /// Sets every tracked granule (after a whole-RAM reset).
    pub fn set_all(&mut self, state: PageState) {
        let (shared, unknown) = bits_of(state);
        self.shared.iter_mut().for_each(|w| *w = word_fill(shared));
        self.unknown
            .iter_mut()
            .for_each(|w| *w = word_fill(unknown));
    }

    /// Granules currently in `state`.
    pub fn count(&self, state: PageState) -> u64 {
        let full_words = (self.granules / 64) as usize;
        let tail = self.granules % 64;
        let words = self.shared.iter().zip(&self.unknown).enumerate();
        let mut n = 0u64;
        for (i, (&s, &u)) in words {
            let valid = if i < full_words {
                u64::MAX
            } else if i == full_words && tail != 0 {
                (1u64 << tail) - 1
            } else {
                0
            };
            let matching = match state {
                PageState::Private => !s & !u,
                PageState::Shared => s & !u,
                PageState::Unknown => u,
            };
            n += u64::from((matching & valid).count_ones());
        }
        n
    }

    /// The maximal runs of granules in `range` (inside tracked RAM) that
    /// are in `state`.
    pub fn runs_in(&self, range: MemRange, state: PageState) -> Vec<MemRange> {
        let mut runs = Vec::new();
        let mut open: Option<u64> = None;
        let g = self.granule;
        let mut a = range.start - range.start % g;
        while a < range.end {
            let here = self.state(a) == Some(state);
            match (here, open) {
                (true, None) => open = Some(a),
                (false, Some(s)) => {
                    runs.push(MemRange::new(s, a));
                    open = None;
                }
                _ => {}
            }
            a += g;
        }
        if let Some(s) = open {
            runs.push(MemRange::new(s, a.min(range.end.next_multiple_of(g))));
        }
        runs
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
    fn unknown_is_its_own_state() {
        let mut t = PageStates::new(&ram(), 4096, PageState::Unknown);
        assert_eq!(t.count(PageState::Unknown), 414);
        assert_eq!(t.count(PageState::Private) + t.count(PageState::Shared), 0);
        t.set_all(PageState::Private);
        let r = MemRange::new(0x10_0000, 0x10_4000);
        t.set(r, PageState::Shared).unwrap();
        t.set(MemRange::new(0x10_1000, 0x10_2000), PageState::Unknown)
            .unwrap();
        assert_eq!(t.state(0x10_1000), Some(PageState::Unknown));
        assert_eq!(
            (
                t.count(PageState::Shared),
                t.count(PageState::Unknown),
                t.count(PageState::Private)
            ),
            (3, 1, 410)
        );
        assert_eq!(
            t.runs_in(r, PageState::Shared),
            [
                MemRange::new(0x10_0000, 0x10_1000),
                MemRange::new(0x10_2000, 0x10_4000)
            ]
        );
        assert_eq!(
            t.runs_in(r, PageState::Unknown),
            [MemRange::new(0x10_1000, 0x10_2000)]
        );
        t.set(MemRange::new(0x10_1000, 0x10_2000), PageState::Private)
            .unwrap();
        assert_eq!(t.count(PageState::Unknown), 0);
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
