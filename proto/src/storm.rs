//! Seeded conversion storms: a long random sequence of conversions, guest
//! accesses and host checks over one area, and the model that predicts what
//! the platform must answer to every one of them.
//!
//! The sequence is a pure function of the seed and the model, and the model
//! is a pure function of the seed and the ABI's rules, so one seed always
//! gives one sequence on one ABI: a failure names its operation index and
//! `replay=` stops a re-run right after it. Nothing here touches memory;
//! the guest executes each `Op` and compares the platform with `Model`.

use crate::plan::Content;
use crate::prng::SplitMix64;
use crate::range::MemRange;
use crate::tracker::{PageState, Target};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

const TWO_MIB: u64 = 2 << 20;
const ONE_GIB: u64 = 1 << 30;
/// Largest range a guest access (touch or verify) covers, in granules: the
/// nested lanes run guest code under TCG, where every byte costs.
const ACCESS_GRANULES: u64 = 16;

/// How the ABI treats a granule already in the state asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Converts whatever state the range is in, in one call (MAP_GPA_RANGE).
    AnyState,
    /// One call per granule, refusing the first granule already in the
    /// target state; the granules before it were converted (pKVM).
    RefuseSameState,
}

/// What the model knows a granule holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Every word holds `pattern_word(tag, pa)`.
    Pattern(u64),
    /// Every word holds this value (0 after a zeroing conversion).
    Const(u64),
    /// No claim: never written, or the content promise says nothing.
    Unknown,
}

/// What a conversion must answer: how far it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversionOutcome {
    Done,
    /// Refused at the granule at this address; granules before it converted.
    RefusedAt(u64),
}

/// The order a touch writes its range in (every word is written once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Sequential,
    /// Word `i`, `i + stride`, … for each `i < stride`.
    Strided(u64),
    /// Granules in a seeded order, words sequential within each.
    Scattered(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Share(MemRange),
    Unshare(MemRange),
    /// Guest writes `pattern_word(tag, pa)` over the range.
    Touch {
        range: MemRange,
        tag: u64,
        pattern: Pattern,
    },
    /// Guest reads the range back against the model.
    GuestVerify(MemRange),
    /// The host must see the pattern of `tag` in this shared range.
    HostVerify {
        range: MemRange,
        tag: u64,
    },
    /// Guest writes `canary` into this private range; the host must be
    /// refused it and find the canary nowhere.
    HostPrivate {
        range: MemRange,
        canary: u64,
    },
    /// Tracker and platform against the whole model.
    Checkpoint,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Share(r) => write!(f, "share {r}"),
            Op::Unshare(r) => write!(f, "unshare {r}"),
            Op::Touch {
                range,
                tag,
                pattern,
            } => write!(f, "touch {range} tag {tag:#x} {pattern:?}"),
            Op::GuestVerify(r) => write!(f, "guest-verify {r}"),
            Op::HostVerify { range, tag } => write!(f, "host-verify {range} tag {tag:#x}"),
            Op::HostPrivate { range, canary } => {
                write!(f, "host-private {range} canary {canary:#x}")
            }
            Op::Checkpoint => f.write_str("checkpoint"),
        }
    }
}

/// Per-granule state and content of the storm's area, as the platform must
/// have it.
#[derive(Clone, Debug)]
pub struct Model {
    area: MemRange,
    granule: u64,
    rule: Rule,
    content: Option<Content>,
    state: Vec<PageState>,
    fill: Vec<Fill>,
}

impl Model {
    /// `area` granule-aligned; every granule starts private, content unknown.
    pub fn new(area: MemRange, granule: u64, rule: Rule, content: Option<Content>) -> Model {
        let n = (area.len() / granule) as usize;
        Model {
            area,
            granule,
            rule,
            content,
            state: vec![PageState::Private; n],
            fill: vec![Fill::Unknown; n],
        }
    }

    pub fn area(&self) -> MemRange {
        self.area
    }

    pub fn granule(&self) -> u64 {
        self.granule
    }

    fn index(&self, addr: u64) -> usize {
        ((addr - self.area.start) / self.granule) as usize
    }

    fn granules(&self, r: MemRange) -> impl Iterator<Item = u64> + use<> {
        (r.start..r.end).step_by(self.granule as usize)
    }

    pub fn state(&self, addr: u64) -> PageState {
        self.state[self.index(addr)]
    }

    pub fn fill(&self, addr: u64) -> Fill {
        self.fill[self.index(addr)]
    }

    /// What converting `r` to `to` must answer.
    pub fn predict(&self, r: MemRange, to: Target) -> ConversionOutcome {
        match self.rule {
            Rule::AnyState => ConversionOutcome::Done,
            Rule::RefuseSameState => self
                .granules(r)
                .find(|&a| self.state(a) == to.state())
                .map_or(ConversionOutcome::Done, ConversionOutcome::RefusedAt),
        }
    }

    /// Applies a conversion that answered `outcome` (the predicted one).
    pub fn convert(&mut self, r: MemRange, to: Target, outcome: ConversionOutcome) {
        let end = match outcome {
            ConversionOutcome::Done => r.end,
            ConversionOutcome::RefusedAt(a) => a,
        };
        for a in self.granules(MemRange::new(r.start, end)) {
            let i = self.index(a);
            let flips = self.state[i] != to.state();
            self.fill[i] = match (self.content, flips) {
                (Some(Content::Preserve), _) => self.fill[i],
                (Some(Content::Zero), true) => Fill::Const(0),
                // Zero is promised for a flip; a no-op conversion of a
                // granule already there promises nothing.
                (Some(Content::Zero), false) | (None, _) => Fill::Unknown,
            };
            self.state[i] = to.state();
        }
    }

    /// The guest wrote `fill` over `r`.
    pub fn write(&mut self, r: MemRange, fill: Fill) {
        for a in self.granules(r) {
            let i = self.index(a);
            self.fill[i] = fill;
        }
    }

    pub fn count(&self, s: PageState) -> u64 {
        self.state.iter().filter(|&&x| x == s).count() as u64
    }

    /// Maximal runs of granules in state `s`.
    pub fn runs(&self, s: PageState) -> Vec<MemRange> {
        let mut runs: Vec<MemRange> = Vec::new();
        for a in self.granules(self.area) {
            if self.state(a) == s {
                match runs.last_mut() {
                    Some(last) if last.end == a => last.end += self.granule,
                    _ => runs.push(MemRange::from_len(a, self.granule)),
                }
            }
        }
        runs
    }

    /// The run around `addr` (at most `max` granules from it) of shared
    /// granules holding one pattern: what the host can be asked to verify.
    fn shared_pattern_run(&self, addr: u64, max: u64) -> Option<(MemRange, u64)> {
        let Fill::Pattern(tag) = self.fill(addr) else {
            return None;
        };
        if self.state(addr) != PageState::Shared {
            return None;
        }
        let mut end = addr + self.granule;
        while end < self.area.end
            && end - addr < max * self.granule
            && self.state(end) == PageState::Shared
            && self.fill(end) == Fill::Pattern(tag)
        {
            end += self.granule;
        }
        Some((MemRange::new(addr, end), tag))
    }
}

/// Operation mix, in parts per 1000 (host checks rare: on pKVM each costs
/// tens of ms of console).
const MIX: [(Kind, u64); 6] = [
    (Kind::Share, 300),
    (Kind::Unshare, 300),
    (Kind::Touch, 200),
    (Kind::GuestVerify, 194),
    (Kind::HostVerify, 3),
    (Kind::HostPrivate, 3),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Share,
    Unshare,
    Touch,
    GuestVerify,
    HostVerify,
    HostPrivate,
}

/// The generator: `next` gives operation `index()`.
#[derive(Clone, Debug)]
pub struct Storm {
    rng: SplitMix64,
    index: u64,
    checkpoint_every: u64,
}

impl Storm {
    pub fn new(seed: u64, checkpoint_every: u64) -> Storm {
        Storm {
            rng: SplitMix64::fork(seed, "stress.storm"),
            index: 0,
            checkpoint_every: checkpoint_every.max(1),
        }
    }

    /// Index of the operation `next` returns.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Operation `index()`, chosen against the model's current state.
    pub fn next(&mut self, model: &Model) -> Op {
        let i = self.index;
        self.index += 1;
        if (i + 1).is_multiple_of(self.checkpoint_every) {
            return Op::Checkpoint;
        }
        let mut roll = self.rng.below(1000);
        let mut kind = Kind::Share;
        for (k, w) in MIX {
            if roll < w {
                kind = k;
                break;
            }
            roll -= w;
        }
        match kind {
            Kind::Share => Op::Share(self.conversion_range(model)),
            Kind::Unshare => Op::Unshare(self.conversion_range(model)),
            Kind::Touch => {
                let range = self.access_range(model);
                let tag = self.rng.next_u64();
                let pattern = match self.rng.below(3) {
                    0 => Pattern::Sequential,
                    1 => Pattern::Strided(1 + self.rng.below(64)),
                    _ => Pattern::Scattered(self.rng.next_u64()),
                };
                Op::Touch {
                    range,
                    tag,
                    pattern,
                }
            }
            Kind::GuestVerify => Op::GuestVerify(self.access_range(model)),
            Kind::HostVerify => {
                let a = self.granule_in(model);
                match model.shared_pattern_run(a, ACCESS_GRANULES) {
                    Some((range, tag)) => Op::HostVerify { range, tag },
                    // Nothing verifiable there: verify it from the guest.
                    None => Op::GuestVerify(MemRange::from_len(a, model.granule)),
                }
            }
            Kind::HostPrivate => {
                let a = self.granule_in(model);
                let canary = self.rng.next_u64() | 1;
                if model.state(a) == PageState::Private {
                    Op::HostPrivate {
                        range: MemRange::from_len(a, model.granule),
                        canary,
                    }
                } else {
                    Op::Unshare(MemRange::from_len(a, model.granule))
                }
            }
        }
    }

    fn granule_in(&mut self, m: &Model) -> u64 {
        let n = m.area.len() / m.granule;
        m.area.start + self.rng.below(n) * m.granule
    }

    /// `len` granules from a random start, clipped to the area.
    fn clipped(&mut self, m: &Model, start: u64, granules: u64) -> MemRange {
        let start = start.clamp(m.area.start, m.area.end - m.granule);
        let end = (start + granules.max(1) * m.granule).min(m.area.end);
        MemRange::new(start, end)
    }

    /// Boundaries of `align` strictly inside the area.
    fn boundaries(m: &Model, align: u64) -> Vec<u64> {
        let first = m.area.start.div_ceil(align).max(1) * align;
        (first..m.area.end)
            .step_by(align as usize)
            .filter(|&b| b > m.area.start)
            .collect()
    }

    /// Single granules, short runs, 2 MiB-aligned 2 MiB ranges, and
    /// straddles of 2 MiB and 1 GiB boundaries (where the area has them).
    fn conversion_range(&mut self, m: &Model) -> MemRange {
        let g = m.granule;
        match self.rng.below(10) {
            0..=2 => MemRange::from_len(self.granule_in(m), g),
            3..=5 => {
                let a = self.granule_in(m);
                let n = 1 + self.rng.below(64);
                self.clipped(m, a, n)
            }
            6 => {
                let b = Self::boundaries(m, TWO_MIB);
                let starts: Vec<u64> = b
                    .iter()
                    .copied()
                    .chain(core::iter::once(m.area.start))
                    .filter(|s| s.is_multiple_of(TWO_MIB) && s + TWO_MIB <= m.area.end)
                    .collect();
                match starts.get(self.rng.below(starts.len().max(1) as u64) as usize) {
                    Some(&s) => MemRange::from_len(s, TWO_MIB),
                    None => MemRange::from_len(self.granule_in(m), g),
                }
            }
            7 | 8 => self.straddle(m, TWO_MIB),
            _ => {
                if Self::boundaries(m, ONE_GIB).is_empty() {
                    self.straddle(m, TWO_MIB)
                } else {
                    self.straddle(m, ONE_GIB)
                }
            }
        }
    }

    fn straddle(&mut self, m: &Model, align: u64) -> MemRange {
        let b = Self::boundaries(m, align);
        let Some(&at) = b.get(self.rng.below(b.len().max(1) as u64) as usize) else {
            return MemRange::from_len(self.granule_in(m), m.granule);
        };
        let before = 1 + self.rng.below(8);
        let after = 1 + self.rng.below(8);
        let start = at.saturating_sub(before * m.granule).max(m.area.start);
        self.clipped(m, start, (at - start) / m.granule + after)
    }

    fn access_range(&mut self, m: &Model) -> MemRange {
        let a = self.granule_in(m);
        let n = 1 + self.rng.below(ACCESS_GRANULES);
        self.clipped(m, a, n)
    }
}

/// Whether `range` straddles a boundary of `align`.
pub fn straddles(range: MemRange, align: u64) -> bool {
    let b = range.start.div_ceil(align) * align;
    b > range.start && b < range.end
}

/// The word offsets (in 8-byte words from `range.start`) a touch writes, in
/// order; each exactly once.
pub fn touch_order(range: MemRange, granule: u64, pattern: Pattern) -> TouchOrder {
    let words = range.len() / 8;
    let granules = (range.len() / granule).max(1);
    let (stride, scatter) = match pattern {
        Pattern::Sequential => (1, None),
        Pattern::Strided(s) => (s.clamp(1, words.max(1)), None),
        // Granule k goes to (k * step + off) mod n: a permutation when step
        // and n are coprime (odd step for a power of two, else step 1).
        Pattern::Scattered(salt) => {
            let step = if granules.is_power_of_two() {
                ((salt | 1) % granules) | 1
            } else {
                1
            };
            (1, Some((step, (salt >> 32) % granules)))
        }
    };
    TouchOrder {
        words,
        per_granule: granule / 8,
        granules,
        stride,
        scatter,
        column: 0,
        next: 0,
        emitted: 0,
    }
}

/// Iterator of `touch_order`.
#[derive(Clone, Debug)]
pub struct TouchOrder {
    words: u64,
    per_granule: u64,
    granules: u64,
    stride: u64,
    scatter: Option<(u64, u64)>,
    column: u64,
    next: u64,
    emitted: u64,
}

impl Iterator for TouchOrder {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.emitted == self.words {
            return None;
        }
        let n = self.emitted;
        self.emitted += 1;
        if let Some((step, off)) = self.scatter {
            let (k, w) = (n / self.per_granule, n % self.per_granule);
            let k = k.wrapping_mul(step).wrapping_add(off) % self.granules;
            return Some(k * self.per_granule + w);
        }
        // Strided: column by column, `stride` words apart.
        if self.next >= self.words {
            self.column += 1;
            self.next = self.column;
        }
        let w = self.next;
        self.next += self.stride;
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const G: u64 = 4096;

    fn area() -> MemRange {
        MemRange::from_len(0x4000_0000 - (4 << 20), 8 << 20)
    }

    #[test]
    fn same_seed_same_sequence_and_seeds_differ() {
        let run = |seed| {
            let mut m = Model::new(area(), G, Rule::AnyState, Some(Content::Zero));
            let mut s = Storm::new(seed, 100);
            (0..2000)
                .map(|_| {
                    let op = s.next(&m);
                    if let Op::Share(r) | Op::Unshare(r) = op {
                        let to = if matches!(op, Op::Share(_)) {
                            Target::Shared
                        } else {
                            Target::Private
                        };
                        m.convert(r, to, m.predict(r, to));
                    }
                    op
                })
                .collect::<std::vec::Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn ranges_cover_hints_and_straddles() {
        let m = Model::new(area(), G, Rule::AnyState, None);
        let mut s = Storm::new(1, 1 << 40);
        let (mut two_mib, mut s2m, mut s1g) = (0, 0, 0);
        for _ in 0..5000 {
            if let Op::Share(r) | Op::Unshare(r) = s.next(&m) {
                assert!(area().start <= r.start && r.end <= area().end && !r.is_empty());
                assert!(r.start.is_multiple_of(G) && r.end.is_multiple_of(G));
                two_mib += usize::from(r.len() == TWO_MIB && r.start.is_multiple_of(TWO_MIB));
                s2m += usize::from(straddles(r, TWO_MIB));
                s1g += usize::from(straddles(r, ONE_GIB));
            }
        }
        assert!(
            two_mib > 50 && s2m > 300 && s1g > 100,
            "{two_mib} {s2m} {s1g}"
        );
    }

    #[test]
    fn pkvm_rule_refuses_at_first_granule_already_there() {
        let a = area();
        let mut m = Model::new(a, G, Rule::RefuseSameState, Some(Content::Preserve));
        let mid = MemRange::from_len(a.start + 2 * G, G);
        m.convert(mid, Target::Shared, ConversionOutcome::Done);
        let r = MemRange::from_len(a.start, 4 * G);
        assert_eq!(
            m.predict(r, Target::Shared),
            ConversionOutcome::RefusedAt(a.start + 2 * G)
        );
        m.convert(r, Target::Shared, m.predict(r, Target::Shared));
        assert_eq!(m.count(PageState::Shared), 3);
        assert_eq!(
            m.predict(r, Target::Private),
            ConversionOutcome::RefusedAt(a.start + 3 * G)
        );
        assert_eq!(
            m.runs(PageState::Shared),
            [MemRange::from_len(a.start, 3 * G)]
        );
    }

    #[test]
    fn content_follows_the_promise() {
        let a = area();
        let g0 = MemRange::from_len(a.start, G);
        for (content, after_flip, after_noop) in [
            (Some(Content::Zero), Fill::Const(0), Fill::Unknown),
            (Some(Content::Preserve), Fill::Pattern(5), Fill::Pattern(5)),
            (None, Fill::Unknown, Fill::Unknown),
        ] {
            let mut m = Model::new(a, G, Rule::AnyState, content);
            m.write(g0, Fill::Pattern(5));
            m.convert(g0, Target::Shared, ConversionOutcome::Done);
            assert_eq!(m.fill(a.start), after_flip, "{content:?}");
            m.write(g0, Fill::Pattern(5));
            m.convert(g0, Target::Shared, ConversionOutcome::Done);
            assert_eq!(m.fill(a.start), after_noop, "{content:?}");
        }
    }

    #[test]
    fn touch_orders_are_permutations() {
        let r = MemRange::from_len(0x10_0000, 4 * G);
        for p in [
            Pattern::Sequential,
            Pattern::Strided(7),
            Pattern::Strided(64),
            Pattern::Scattered(0x1234_5678_9abc),
        ] {
            let v: std::vec::Vec<u64> = touch_order(r, G, p).collect();
            let set: BTreeSet<u64> = v.iter().copied().collect();
            assert_eq!(set.len() as u64, r.len() / 8, "{p:?}");
            assert_eq!(v.len() as u64, r.len() / 8, "{p:?}");
        }
        let three = MemRange::from_len(0x10_0000, 3 * G);
        let set: BTreeSet<u64> = touch_order(three, G, Pattern::Scattered(99)).collect();
        assert_eq!(set.len() as u64, three.len() / 8);
    }

    #[test]
    fn checkpoints_come_every_k_and_host_ops_are_rare() {
        let m = Model::new(area(), G, Rule::AnyState, None);
        let mut s = Storm::new(3, 1000);
        let ops: std::vec::Vec<Op> = (0..100_000).map(|_| s.next(&m)).collect();
        let cps = ops.iter().filter(|o| **o == Op::Checkpoint).count();
        assert_eq!(cps, 100);
        let host = ops
            .iter()
            .filter(|o| matches!(o, Op::HostVerify { .. } | Op::HostPrivate { .. }))
            .count();
        assert!(host < 1000, "{host}");
        assert_eq!(ops[999], Op::Checkpoint);
    }
}
