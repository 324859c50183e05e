//! Overlapping conversions from several CPUs at once (`stress.overlap`):
//! seeded rounds in which every CPU converts its own range at the same
//! moment, the ranges overlapping (the same hot range, each CPU's ends
//! shifted by a few granules) or neighbouring (adjacent pieces of one run,
//! converted in opposite directions), and the prediction of what the
//! platform must answer whatever order it serves the calls in.
//!
//! A round is checkable because it is built so the order cannot matter:
//! granules that several CPUs convert are all converted in one direction,
//! so the final state of every granule is fixed, and the answers are fixed
//! in number even where they are not fixed in place. Under a rule that
//! refuses a granule already in the asked state (pKVM) exactly one of the
//! CPUs converting a granule succeeds and every other one is refused —
//! two successes mean the hypervisor converted one page twice, none means
//! it lost one; under a rule that converts any state (MAP_GPA_RANGE) every
//! call succeeds. Nothing here touches memory.

use crate::prng::{SplitMix64, mix};
use crate::range::MemRange;
use crate::storm::Rule;
use crate::tracker::{PageState, Target};
use alloc::vec::Vec;
use core::fmt;

const TWO_MIB: u64 = 2 << 20;
/// Longest hot range, in granules.
const HOT_GRANULES: u64 = 64;
/// How far each CPU's ends may stray from the hot range's, in granules.
const SHIFT: u64 = 8;
/// Longest neighbouring piece, in granules.
const PIECE_GRANULES: u64 = 16;

/// How a round's ranges relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One hot range, every CPU's a shifted copy, all one direction.
    Overlapping,
    /// Adjacent pieces of one run, one per CPU, neighbours in opposite
    /// directions.
    Neighbouring,
    /// A 2 MiB-aligned 2 MiB range every CPU converts whole.
    Hint2M,
}

/// One CPU's conversion in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub range: MemRange,
    pub to: Target,
    /// Where the ABI takes one call per granule, issue them from the top
    /// down (two CPUs walking towards each other meet in the middle).
    pub descending: bool,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.to {
            Target::Shared => "share",
            Target::Private => "unshare",
        };
        write!(f, "{dir} {}", self.range)?;
        if self.descending {
            f.write_str(" top-down")?;
        }
        Ok(())
    }
}

/// What every CPU converts in one round, index = CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub kind: Kind,
    pub calls: Vec<Call>,
}

/// What one granule must show after a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granule {
    pub addr: u64,
    /// How many CPUs converted it.
    pub cover: u32,
    /// Calls that must succeed on it (the rest must be refused).
    pub oks: u32,
    pub state: PageState,
}

/// A round some CPUs convert in both directions on one granule (never
/// generated: `predict`'s guard for hand-built rounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict(pub u64);

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x} is converted both ways in one round: no order-free answer",
            self.0
        )
    }
}

/// Round `index` of the rounds `seed` gives over `area` (at least 4 MiB,
/// whole 2 MiB blocks: the ranges cluster around its 2 MiB boundaries) for
/// `cpus` CPUs.
pub fn round(seed: u64, index: u64, area: MemRange, granule: u64, cpus: usize) -> Round {
    let mut rng = SplitMix64::new(mix(seed ^ index.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    let granules = area.len() / granule;
    let dir = |shared: bool| {
        if shared {
            Target::Shared
        } else {
            Target::Private
        }
    };
    // Anywhere, or (half the time) straddling one of the area's inner 2 MiB
    // boundaries: the 2 MiB mapping a conversion must split.
    let start_near = |rng: &mut SplitMix64, len: u64| {
        let boundaries = area.len() / TWO_MIB;
        let g = if boundaries > 1 && rng.below(2) == 0 {
            let b = (1 + rng.below(boundaries - 1)) * (TWO_MIB / granule);
            b.saturating_sub(1 + rng.below(len))
        } else {
            rng.below(granules)
        };
        g.min(granules - len)
    };
    let kind = match rng.below(16) {
        0 => Kind::Hint2M,
        1..=8 => Kind::Overlapping,
        _ => Kind::Neighbouring,
    };
    let calls = match kind {
        Kind::Hint2M => {
            let blocks = area.len() / TWO_MIB;
            let r = MemRange::from_len(area.start + rng.below(blocks) * TWO_MIB, TWO_MIB);
            let to = dir(rng.below(2) == 0);
            (0..cpus)
                .map(|c| Call {
                    range: r,
                    to,
                    descending: c % 2 == 1,
                })
                .collect()
        }
        Kind::Overlapping => {
            let len = 1 + rng.below(HOT_GRANULES);
            let hot = start_near(&mut rng, len);
            let to = dir(rng.below(2) == 0);
            (0..cpus)
                .map(|_| {
                    let lo = hot.saturating_sub(rng.below(SHIFT + 1));
                    let hi = (hot + len + rng.below(SHIFT + 1)).min(granules);
                    Call {
                        range: MemRange::new(area.start + lo * granule, area.start + hi * granule),
                        to,
                        descending: rng.below(2) == 0,
                    }
                })
                .collect()
        }
        Kind::Neighbouring => {
            let lens: Vec<u64> = (0..cpus).map(|_| 1 + rng.below(PIECE_GRANULES)).collect();
            let total: u64 = lens.iter().sum::<u64>().min(granules);
            let mut at = start_near(&mut rng, total);
            let first = rng.below(2) == 0;
            lens.iter()
                .enumerate()
                .map(|(c, &len)| {
                    let len = len.min(granules - at);
                    let r =
                        MemRange::new(area.start + at * granule, area.start + (at + len) * granule);
                    at += len;
                    Call {
                        range: r,
                        to: dir(first ^ (c % 2 == 1)),
                        descending: rng.below(2) == 0,
                    }
                })
                .collect()
        }
    };
    Round { kind, calls }
}

/// Every granule the round converts, in address order, with what it must
/// show afterwards given its state before (`before`) under `rule`.
pub fn predict(
    round: &Round,
    granule: u64,
    rule: Rule,
    before: impl Fn(u64) -> PageState,
) -> Result<Vec<Granule>, Conflict> {
    let mut touched: Vec<(u64, Target)> = round
        .calls
        .iter()
        .flat_map(|c| {
            (c.range.start..c.range.end)
                .step_by(granule as usize)
                .map(move |a| (a, c.to))
        })
        .collect();
    touched.sort_unstable_by_key(|&(a, _)| a);
    let mut out: Vec<Granule> = Vec::new();
    for (addr, to) in touched {
        match out.last_mut() {
            Some(g) if g.addr == addr => {
                if g.state != to.state() {
                    return Err(Conflict(addr));
                }
                g.cover += 1;
            }
            _ => out.push(Granule {
                addr,
                cover: 1,
                oks: 0,
                state: to.state(),
            }),
        }
    }
    for g in &mut out {
        g.oks = match rule {
            Rule::AnyState => g.cover,
            // The first call to reach it converts it, unless it was there
            // already; every later one finds it converted.
            Rule::RefuseSameState => u32::from(before(g.addr) != g.state),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 4096;

    fn area() -> MemRange {
        MemRange::from_len(0x4000_0000 - (2 << 20), 4 << 20)
    }

    fn rounds(cpus: usize, n: u64) -> impl Iterator<Item = Round> {
        (0..n).map(move |i| round(0x5eed, i, area(), G, cpus))
    }

    #[test]
    fn same_seed_same_rounds_and_every_range_inside_the_area() {
        let a: Vec<Round> = rounds(4, 200).collect();
        let b: Vec<Round> = rounds(4, 200).collect();
        assert_eq!(a, b);
        assert_ne!(a, round_list(0x5eee, 4, 200));
        for r in &a {
            assert_eq!(r.calls.len(), 4);
            for c in &r.calls {
                assert!(!c.range.is_empty(), "{r:?}");
                assert!(area().covers(&c.range), "{c} outside {}", area());
                assert_eq!(c.range.start % G, 0);
                assert_eq!(c.range.end % G, 0);
            }
        }
    }

    fn round_list(seed: u64, cpus: usize, n: u64) -> Vec<Round> {
        (0..n).map(|i| round(seed, i, area(), G, cpus)).collect()
    }

    #[test]
    fn rounds_overlap_neighbour_straddle_and_never_conflict() {
        let (mut overlapping, mut adjacent, mut straddles, mut hint) = (0, 0, 0, 0);
        for r in rounds(2, 400) {
            predict(&r, G, Rule::RefuseSameState, |_| PageState::Private).unwrap();
            let (a, b) = (r.calls[0].range, r.calls[1].range);
            overlapping += u32::from(a.overlaps(&b));
            adjacent += u32::from(a.end == b.start && r.calls[0].to != r.calls[1].to);
            let mid = area().start + (2 << 20);
            straddles += u32::from(
                r.calls
                    .iter()
                    .any(|c| c.range.start < mid && c.range.end > mid),
            );
            hint += u32::from(r.kind == Kind::Hint2M);
        }
        assert!(overlapping > 100, "{overlapping}");
        assert!(adjacent > 100, "{adjacent}");
        assert!(straddles > 50, "{straddles}");
        assert!(hint > 5, "{hint}");
    }

    #[test]
    fn one_success_per_granule_under_refusals_every_call_under_any_state() {
        let call = |s: u64, e: u64| Call {
            range: MemRange::new(s * G, e * G),
            to: Target::Shared,
            descending: false,
        };
        let r = Round {
            kind: Kind::Overlapping,
            calls: alloc::vec![call(0, 4), call(2, 6), call(3, 5)],
        };
        let shared_before = |a: u64| {
            if a == 5 * G {
                PageState::Shared
            } else {
                PageState::Private
            }
        };
        let p = predict(&r, G, Rule::RefuseSameState, shared_before).unwrap();
        let cover: Vec<u32> = p.iter().map(|g| g.cover).collect();
        let oks: Vec<u32> = p.iter().map(|g| g.oks).collect();
        assert_eq!(cover, [1, 1, 2, 3, 2, 1]);
        assert_eq!(oks, [1, 1, 1, 1, 1, 0], "granule 5 was shared already");
        assert!(p.iter().all(|g| g.state == PageState::Shared));
        let p = predict(&r, G, Rule::AnyState, shared_before).unwrap();
        assert!(p.iter().all(|g| g.oks == g.cover));
    }

    #[test]
    fn both_directions_on_one_granule_is_refused() {
        let r = Round {
            kind: Kind::Neighbouring,
            calls: alloc::vec![
                Call {
                    range: MemRange::new(0, 2 * G),
                    to: Target::Shared,
                    descending: false,
                },
                Call {
                    range: MemRange::new(G, 3 * G),
                    to: Target::Private,
                    descending: false,
                },
            ],
        };
        assert_eq!(
            predict(&r, G, Rule::AnyState, |_| PageState::Private),
            Err(Conflict(G))
        );
    }
}
