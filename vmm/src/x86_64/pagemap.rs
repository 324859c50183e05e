//! The VMM's record of which guest pages are shared: one bit per 4 KiB page
//! of the guest-physical space `[0, size)` plus the RAM map (pages outside
//! RAM have no state). Where KVM holds the state (the guest_memfd slot in
//! sw-protected memory) this record mirrors KVM_SET_MEMORY_ATTRIBUTES and
//! changes only after KVM said yes; elsewhere it is the only record.
//!
//! Why not `proto::tracker::PageStates`: that one serves the guest (three
//! states, any granule) and looks every page up through its region list; a
//! VMM answering millions of requests in the property test wants runs found
//! a 64-page word at a time. The VMM never needs `Unknown`: KVM changes a
//! range's attributes all or nothing (see platform.rs), so after any answer
//! each page is known to be one or the other.
use convtest_proto::map_gpa::PAGE_4K;
use convtest_proto::range::{MemRange, RangeList};
use convtest_proto::tracker::{PageState, Target};

#[derive(Clone, Debug)]
pub struct PageMap {
    /// Sorted RAM ranges, whole pages.
    ram: Vec<MemRange>,
    /// Bit `g` set = page `g` (gpa `g * PAGE_4K`) is shared.
    shared: Vec<u64>,
    /// Pages in `[0, size)`.
    pages: u64,
}

/// Word `w`'s bits from `lo` (inclusive) to `hi` (exclusive), `lo < hi <= 64`.
fn mask(lo: u64, hi: u64) -> u64 {
    let upper = if hi == 64 { u64::MAX } else { (1u64 << hi) - 1 };
    upper & (u64::MAX << lo)
}

impl PageMap {
    /// Every page of `ram` private; `size` bounds the address space.
    pub fn new(ram: &RangeList, size: u64) -> Self {
        let mut ranges: Vec<MemRange> = ram
            .iter()
            .map(|r| r.align_inward(PAGE_4K))
            .filter(|r| !r.is_empty() && r.end <= size)
            .collect();
        ranges.sort();
        let pages = size / PAGE_4K;
        PageMap {
            ram: ranges,
            shared: vec![0; pages.div_ceil(64) as usize],
            pages,
        }
    }

    pub fn ram(&self) -> impl Iterator<Item = MemRange> + '_ {
        self.ram.iter().copied()
    }

    /// Whether non-empty `r` lies wholly inside one RAM range.
    pub fn is_ram(&self, r: &MemRange) -> bool {
        !r.is_empty() && self.ram.iter().any(|x| x.covers(r))
    }

    pub fn state(&self, gpa: u64) -> Option<PageState> {
        if !self.ram.iter().any(|r| r.contains(gpa)) {
            return None;
        }
        let g = gpa / PAGE_4K;
        let on = self.shared[(g / 64) as usize] & (1 << (g % 64)) != 0;
        Some(if on {
            PageState::Shared
        } else {
            PageState::Private
        })
    }

    /// Page indices of `r`, clamped to the map (never out of bounds).
    fn bits(&self, r: MemRange) -> (u64, u64) {
        let a = (r.start / PAGE_4K).min(self.pages);
        let b = r.end.div_ceil(PAGE_4K).min(self.pages);
        (a, b.max(a))
    }

    /// Records `to` for every page of `r`. Callers pass pieces of checked
    /// requests (RAM, whole pages); anything else is clamped, not a panic.
    pub fn set(&mut self, r: MemRange, to: Target) {
        let (mut a, b) = self.bits(r);
        let on = to == Target::Shared;
        while a < b {
            let w = a / 64;
            let hi = (b - w * 64).min(64);
            let m = mask(a % 64, hi);
            let word = &mut self.shared[w as usize];
            if on {
                *word |= m;
            } else {
                *word &= !m;
            }
            a = w * 64 + hi;
        }
    }

    /// First page index in `[from, end)` whose bit is `value`, else `end`.
    fn next(&self, from: u64, end: u64, value: bool) -> u64 {
        let mut i = from;
        while i < end {
            let w = i / 64;
            let word = self.shared[w as usize];
            let word = if value { word } else { !word } & (u64::MAX << (i % 64));
            if word != 0 {
                return (w * 64 + u64::from(word.trailing_zeros())).min(end);
            }
            i = (w + 1) * 64;
        }
        end
    }

    /// Maximal runs of pages of `r` in `state` (`Unknown`: none, the VMM
    /// never records it). `r` should be RAM; pages outside RAM count as
    /// private (their bits are never set).
    pub fn runs(&self, r: MemRange, state: PageState) -> Vec<MemRange> {
        let mut out = Vec::new();
        self.runs_into(r, state, &mut out);
        out
    }

    /// [`PageMap::runs`] into `out` (cleared first), so a caller that keeps
    /// one buffer allocates nothing per request.
    pub fn runs_into(&self, r: MemRange, state: PageState, out: &mut Vec<MemRange>) {
        out.clear();
        let value = match state {
            PageState::Shared => true,
            PageState::Private => false,
            PageState::Unknown => return,
        };
        let (mut a, b) = self.bits(r);
        loop {
            let s = self.next(a, b, value);
            if s >= b {
                break;
            }
            let e = self.next(s, b, !value);
            out.push(MemRange::new(s * PAGE_4K, e * PAGE_4K));
            a = e;
        }
    }

    /// The pages of `r` a conversion to `to` flips: those not yet in `to`.
    pub fn flips(&self, r: MemRange, to: Target) -> Vec<MemRange> {
        let mut out = Vec::new();
        self.flips_into(r, to, &mut out);
        out
    }

    /// [`PageMap::flips`] into `out` (cleared first).
    pub fn flips_into(&self, r: MemRange, to: Target, out: &mut Vec<MemRange>) {
        let other = match to {
            Target::Private => PageState::Shared,
            Target::Shared => PageState::Private,
        };
        self.runs_into(r, other, out)
    }

    /// Shared pages in `r`.
    pub fn shared_in(&self, r: MemRange) -> u64 {
        let (mut a, b) = self.bits(r);
        let mut n = 0;
        while a < b {
            let w = a / 64;
            let hi = (b - w * 64).min(64);
            n += u64::from((self.shared[w as usize] & mask(a % 64, hi)).count_ones());
            a = w * 64 + hi;
        }
        n
    }

    /// RAM pages in `state`.
    pub fn count(&self, state: PageState) -> u64 {
        let shared: u64 = self.ram.iter().map(|r| self.shared_in(*r)).sum();
        let total: u64 = self.ram.iter().map(|r| r.len() / PAGE_4K).sum();
        match state {
            PageState::Shared => shared,
            PageState::Private => total - shared,
            PageState::Unknown => 0,
        }
    }

    /// The raw words (bit g = page g shared), for tests that compare the
    /// record with a fake KVM's attribute array.
    #[cfg(test)]
    pub fn shared_words(&self) -> &[u64] {
        &self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::tracker::PageStates;

    const MIB: u64 = 1 << 20;

    fn ram() -> RangeList {
        let mut l = RangeList::new();
        l.push(MemRange::new(0, 0xa0000)).unwrap();
        l.push(MemRange::new(MIB, 8 * MIB)).unwrap();
        l
    }

    #[test]
    fn runs_flips_and_counts() {
        let mut p = PageMap::new(&ram(), 8 * MIB);
        let r = MemRange::new(2 * MIB, 2 * MIB + 0x8000);
        assert!(p.flips(r, Target::Private).is_empty(), "no-op");
        assert_eq!(p.flips(r, Target::Shared), [r]);
        p.set(
            MemRange::new(2 * MIB + 0x2000, 2 * MIB + 0x4000),
            Target::Shared,
        );
        assert_eq!(
            p.flips(r, Target::Shared),
            [
                MemRange::new(2 * MIB, 2 * MIB + 0x2000),
                MemRange::new(2 * MIB + 0x4000, 2 * MIB + 0x8000)
            ]
        );
        assert_eq!(
            p.flips(r, Target::Private),
            [MemRange::new(2 * MIB + 0x2000, 2 * MIB + 0x4000)]
        );
        assert_eq!(p.count(PageState::Shared), 2);
        assert_eq!(p.state(2 * MIB + 0x3000), Some(PageState::Shared));
        assert_eq!(p.state(0xa0000), None, "the low hole is not RAM");
        assert!(!p.is_ram(&MemRange::new(0x9f000, 0xa1000)));
        assert!(p.is_ram(&MemRange::new(MIB, 8 * MIB)));
        assert!(!p.is_ram(&MemRange::new(MIB, MIB)), "empty");
    }

    /// Word boundaries and long runs agree with the proto tracker page by
    /// page (the slow, obvious reference).
    #[test]
    fn agrees_with_the_page_by_page_tracker() {
        let mut p = PageMap::new(&ram(), 8 * MIB);
        let mut t = PageStates::new(&ram(), PAGE_4K, PageState::Private);
        let mut rng = convtest_proto::prng::SplitMix64::new(7);
        for _ in 0..400 {
            let r = if rng.below(2) == 0 {
                MemRange::new(0, 0xa0000)
            } else {
                MemRange::new(MIB, 8 * MIB)
            };
            let pages = r.len() / PAGE_4K;
            let s = rng.below(pages);
            let cap = if rng.below(4) == 0 { 1000 } else { 70 };
            let n = 1 + rng.below((pages - s).min(cap));
            let sub = MemRange::new(r.start + s * PAGE_4K, r.start + (s + n) * PAGE_4K);
            let to = if rng.below(2) == 0 {
                Target::Shared
            } else {
                Target::Private
            };
            assert_eq!(
                p.flips(sub, to),
                t.runs_in(sub, PageState::from(to).opposite())
            );
            p.set(sub, to);
            t.set(sub, to.state()).unwrap();
            assert_eq!(p.count(PageState::Shared), t.count(PageState::Shared));
        }
    }

    trait Opposite {
        fn opposite(self) -> PageState;
    }

    impl Opposite for PageState {
        fn opposite(self) -> PageState {
            match self {
                PageState::Shared => PageState::Private,
                _ => PageState::Shared,
            }
        }
    }

    #[test]
    fn out_of_range_is_clamped_not_a_panic() {
        let mut p = PageMap::new(&ram(), 8 * MIB);
        p.set(MemRange::new(7 * MIB, u64::MAX), Target::Shared);
        assert_eq!(p.count(PageState::Shared), 256);
        assert_eq!(
            p.runs(MemRange::new(u64::MAX - 5, u64::MAX), PageState::Shared),
            []
        );
    }
}
