//! Physical address ranges and the arithmetic the boot code, the memory tests
//! and (later) the page-state tracker need. Fixed capacity, no allocation:
//! the RAM map is built before the heap exists.

use core::fmt;

/// Half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemRange {
    pub start: u64,
    pub end: u64,
}

impl MemRange {
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    pub fn from_len(start: u64, len: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(len),
        }
    }

    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    pub const fn covers(&self, other: &MemRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub const fn overlaps(&self, other: &MemRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The smallest range with ends on multiples of `align` that covers this one.
    pub fn align_outward(&self, align: u64) -> MemRange {
        MemRange::new(align_down(self.start, align), align_up(self.end, align))
    }

    /// The largest sub-range whose ends are multiples of `align` (a power of two).
    pub fn align_inward(&self, align: u64) -> MemRange {
        let start = align_up(self.start, align);
        let end = align_down(self.end, align);
        if start >= end {
            MemRange::default()
        } else {
            MemRange::new(start, end)
        }
    }
}

impl fmt::Display for MemRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}-{:#x})", self.start, self.end)
    }
}

/// Round up to a power-of-two `align`; saturates at the top of the address space.
pub const fn align_up(v: u64, align: u64) -> u64 {
    let mask = align - 1;
    match v.checked_add(mask) {
        Some(x) => x & !mask,
        None => !mask,
    }
}

pub const fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}

pub const fn is_aligned(v: u64, align: u64) -> bool {
    v & (align - 1) == 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// More ranges than the fixed capacity allows.
    Full,
    /// `end <= start`.
    Empty(MemRange),
    /// Two ranges share bytes.
    Overlap(MemRange, MemRange),
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::Full => write!(f, "more than {RANGE_CAPACITY} ranges"),
            RangeError::Empty(r) => write!(f, "empty range {r}"),
            RangeError::Overlap(a, b) => write!(f, "{a} overlaps {b}"),
        }
    }
}

pub const RANGE_CAPACITY: usize = 64;

/// A small set of ranges with fixed capacity.
#[derive(Clone, Copy, Debug)]
pub struct RangeList {
    items: [MemRange; RANGE_CAPACITY],
    len: usize,
}

/// Equal when the listed ranges are, in order; unused capacity is ignored.
impl PartialEq for RangeList {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for RangeList {}

impl Default for RangeList {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeList {
    pub const fn new() -> Self {
        Self {
            items: [MemRange::new(0, 0); RANGE_CAPACITY],
            len: 0,
        }
    }

    pub fn push(&mut self, r: MemRange) -> Result<(), RangeError> {
        if self.len == RANGE_CAPACITY {
            return Err(RangeError::Full);
        }
        self.items[self.len] = r;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[MemRange] {
        &self.items[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &MemRange> {
        self.as_slice().iter()
    }

    pub fn total(&self) -> u64 {
        self.iter().map(MemRange::len).sum()
    }

    pub fn sort(&mut self) {
        self.items[..self.len].sort_unstable();
    }

    /// Sorted, every range non-empty, no two sharing a byte.
    pub fn validate(&self) -> Result<(), RangeError> {
        let mut sorted = *self;
        sorted.sort();
        for r in sorted.iter() {
            if r.is_empty() {
                return Err(RangeError::Empty(*r));
            }
        }
        for w in sorted.as_slice().windows(2) {
            if w[0].overlaps(&w[1]) {
                return Err(RangeError::Overlap(w[0], w[1]));
            }
        }
        Ok(())
    }

    /// True when `r` lies wholly inside one range of the list.
    pub fn covers(&self, r: &MemRange) -> bool {
        self.iter().any(|x| x.covers(r))
    }

    /// Remove `hole` from every range, splitting where needed.
    pub fn subtract(&mut self, hole: &MemRange) -> Result<(), RangeError> {
        let mut out = RangeList::new();
        for r in self.iter() {
            if !r.overlaps(hole) {
                out.push(*r)?;
                continue;
            }
            if r.start < hole.start {
                out.push(MemRange::new(r.start, hole.start))?;
            }
            if hole.end < r.end {
                out.push(MemRange::new(hole.end, r.end))?;
            }
        }
        *self = out;
        Ok(())
    }

    /// Adds `r`, absorbing every range it overlaps or touches, so a list
    /// built only through this stays sorted and disjoint. Empty `r` is a no-op.
    pub fn insert_merged(&mut self, r: MemRange) -> Result<(), RangeError> {
        if r.is_empty() {
            return Ok(());
        }
        let mut merged = r;
        let mut rest = RangeList::new();
        for x in self.iter() {
            if x.start <= merged.end && merged.start <= x.end {
                merged = MemRange::new(merged.start.min(x.start), merged.end.max(x.end));
            } else {
                rest.push(*x)?;
            }
        }
        rest.push(merged)?;
        rest.sort();
        *self = rest;
        Ok(())
    }

    /// The largest range, if any.
    pub fn largest(&self) -> Option<MemRange> {
        self.iter().copied().max_by_key(MemRange::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rs: &[(u64, u64)]) -> RangeList {
        let mut l = RangeList::new();
        for &(s, e) in rs {
            l.push(MemRange::new(s, e)).unwrap();
        }
        l
    }

    #[test]
    fn alignment() {
        assert_eq!(align_up(0x1001, 0x1000), 0x2000);
        assert_eq!(align_up(0x1000, 0x1000), 0x1000);
        assert_eq!(align_down(0x1fff, 0x1000), 0x1000);
        assert_eq!(align_up(u64::MAX - 3, 0x1000), !0xfff);
        assert!(is_aligned(0x20_0000, 0x20_0000) && !is_aligned(0x20_1000, 0x20_0000));
        assert_eq!(
            MemRange::new(0x1001, 0x3fff).align_inward(0x1000),
            MemRange::new(0x2000, 0x3000)
        );
        assert!(
            MemRange::new(0x1001, 0x1fff)
                .align_inward(0x1000)
                .is_empty()
        );
    }

    #[test]
    fn validate_finds_overlap_and_empty() {
        assert_eq!(list(&[(0, 10), (20, 30)]).validate(), Ok(()));
        assert_eq!(
            list(&[(20, 30), (0, 21)]).validate(),
            Err(RangeError::Overlap(
                MemRange::new(0, 21),
                MemRange::new(20, 30)
            ))
        );
        assert_eq!(
            list(&[(5, 5)]).validate(),
            Err(RangeError::Empty(MemRange::new(5, 5)))
        );
        // Touching ranges share no byte.
        assert_eq!(list(&[(0, 10), (10, 20)]).validate(), Ok(()));
    }

    #[test]
    fn subtract_splits() {
        let mut l = list(&[(0, 100), (200, 300)]);
        l.subtract(&MemRange::new(40, 60)).unwrap();
        assert_eq!(
            l.as_slice(),
            &[
                MemRange::new(0, 40),
                MemRange::new(60, 100),
                MemRange::new(200, 300)
            ]
        );
        l.subtract(&MemRange::new(250, 400)).unwrap();
        assert_eq!(l.as_slice()[2], MemRange::new(200, 250));
        l.subtract(&MemRange::new(0, 1000)).unwrap();
        assert!(l.is_empty());
    }

    #[test]
    fn capacity_is_enforced() {
        let mut l = RangeList::new();
        for i in 0..RANGE_CAPACITY as u64 {
            l.push(MemRange::new(i * 10, i * 10 + 5)).unwrap();
        }
        assert_eq!(l.push(MemRange::new(0, 1)), Err(RangeError::Full));
        assert_eq!(l.total(), 5 * RANGE_CAPACITY as u64);
    }

    #[test]
    fn insert_merged_joins_overlapping_and_touching() {
        let mut l = RangeList::new();
        l.insert_merged(MemRange::new(100, 200)).unwrap();
        l.insert_merged(MemRange::new(0, 50)).unwrap();
        l.insert_merged(MemRange::new(300, 400)).unwrap();
        l.insert_merged(MemRange::new(5, 5)).unwrap();
        assert_eq!(
            l.as_slice(),
            &[
                MemRange::new(0, 50),
                MemRange::new(100, 200),
                MemRange::new(300, 400)
            ]
        );
        l.insert_merged(MemRange::new(200, 300)).unwrap(); // touches both neighbours
        assert_eq!(
            l.as_slice(),
            &[MemRange::new(0, 50), MemRange::new(100, 400)]
        );
        l.insert_merged(MemRange::new(40, 120)).unwrap();
        assert_eq!(l.as_slice(), &[MemRange::new(0, 400)]);
        assert_eq!(
            MemRange::new(0x1001, 0x1fff).align_outward(0x1000),
            MemRange::new(0x1000, 0x2000)
        );
    }

    #[test]
    fn covers_and_largest() {
        let l = list(&[(0, 10), (100, 300)]);
        assert!(l.covers(&MemRange::new(150, 200)));
        assert!(!l.covers(&MemRange::new(5, 150)));
        assert_eq!(l.largest(), Some(MemRange::new(100, 300)));
    }
}
