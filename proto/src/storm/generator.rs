//! The storm's operation sequence: a pure function of the seed and of the
//! model's state as the sequence goes (a host check goes where the model
//! says there is something to check).

use super::model::Model;
use super::touch::Pattern;
use crate::prng::SplitMix64;
use crate::range::MemRange;
use crate::tracker::PageState;
use alloc::vec::Vec;
use core::fmt;

const TWO_MIB: u64 = 2 << 20;
const ONE_GIB: u64 = 1 << 30;
/// Largest range a guest access (touch or verify) covers, in granules: the
/// nested lanes run guest code under TCG, where every byte costs.
const ACCESS_GRANULES: u64 = 16;

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
                    None => Op::GuestVerify(MemRange::from_len(a, model.granule())),
                }
            }
            Kind::HostPrivate => {
                let a = self.granule_in(model);
                let canary = self.rng.next_u64() | 1;
                if model.state(a) == PageState::Private {
                    Op::HostPrivate {
                        range: MemRange::from_len(a, model.granule()),
                        canary,
                    }
                } else {
                    Op::Unshare(MemRange::from_len(a, model.granule()))
                }
            }
        }
    }

    fn granule_in(&mut self, m: &Model) -> u64 {
        let n = m.area().len() / m.granule();
        m.area().start + self.rng.below(n) * m.granule()
    }

    /// `len` granules from a random start, clipped to the area.
    fn clipped(&mut self, m: &Model, start: u64, granules: u64) -> MemRange {
        let start = start.clamp(m.area().start, m.area().end - m.granule());
        let end = (start + granules.max(1) * m.granule()).min(m.area().end);
        MemRange::new(start, end)
    }

    /// Boundaries of `align` strictly inside the area.
    fn boundaries(m: &Model, align: u64) -> Vec<u64> {
        let first = m.area().start.div_ceil(align).max(1) * align;
        (first..m.area().end)
            .step_by(align as usize)
            .filter(|&b| b > m.area().start)
            .collect()
    }

    /// Single granules, short runs, 2 MiB-aligned 2 MiB ranges, and
    /// straddles of 2 MiB and 1 GiB boundaries (where the area has them).
    fn conversion_range(&mut self, m: &Model) -> MemRange {
        let g = m.granule();
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
                    .chain(core::iter::once(m.area().start))
                    .filter(|s| s.is_multiple_of(TWO_MIB) && s + TWO_MIB <= m.area().end)
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
            return MemRange::from_len(self.granule_in(m), m.granule());
        };
        let before = 1 + self.rng.below(8);
        let after = 1 + self.rng.below(8);
        let start = at.saturating_sub(before * m.granule()).max(m.area().start);
        self.clipped(m, start, (at - start) / m.granule() + after)
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

#[cfg(test)]
mod tests {
    use super::super::model::Rule;
    use super::*;
    use crate::plan::Content;
    use crate::tracker::Target;

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

    /// pKVM on 16 KiB pages: every range the storm asks for, and every
    /// guest access, is whole 16 KiB granules of the area.
    #[test]
    fn a_16k_granule_storm_stays_on_16k_granules() {
        const G16: u64 = 16 << 10;
        let m = Model::new(area(), G16, Rule::RefuseSameState, Some(Content::Preserve));
        let mut s = Storm::new(5, 1 << 40);
        let on_granules = |r: MemRange| {
            area().covers(&r)
                && !r.is_empty()
                && r.start.is_multiple_of(G16)
                && r.end.is_multiple_of(G16)
        };
        for _ in 0..5000 {
            match s.next(&m) {
                Op::Share(r) | Op::Unshare(r) | Op::GuestVerify(r) => {
                    assert!(on_granules(r), "{r}");
                }
                Op::Touch { range, .. }
                | Op::HostVerify { range, .. }
                | Op::HostPrivate { range, .. } => assert!(on_granules(range), "{range}"),
                Op::Checkpoint => {}
            }
        }
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
