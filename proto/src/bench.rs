//! Measurements: the fixed form of a bench line (docs/design.md §2) and the
//! harness rule that decides how many iterations an op gets.
//!
//! `# bench: op=share size_bytes=4096 pages=1 iters=200 cycles_p50=… cycles_p99=… cycles_min=… ns_p50=… ns_p99=… ns_min=…`
//!
//! The `ns_*` fields are present only when the counter frequency is known
//! (never printed as 0). The guest writes lines with `Display`, the own VMM
//! writes its own (ops named `vmm_*`), the runner reads them with `parse`.

use alloc::vec::Vec;
use core::fmt;

/// p50, p99 and minimum of one op's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    pub p50: u64,
    pub p99: u64,
    pub min: u64,
}

impl Spread {
    /// Of `samples` (sorted in place); `None` when there are none.
    pub fn of(samples: &mut [u64]) -> Option<Spread> {
        let p50 = percentile(samples, 50)?;
        Some(Spread {
            p50,
            p99: percentile(samples, 99)?,
            min: samples[0],
        })
    }

    pub fn to_ns(self, hz: u64) -> Spread {
        Spread {
            p50: cycles_to_ns(self.p50, hz),
            p99: cycles_to_ns(self.p99, hz),
            min: cycles_to_ns(self.min, hz),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchLine<'a> {
    pub op: &'a str,
    /// Bytes the op covers (a conversion's range, a memcpy's length).
    pub size_bytes: u64,
    /// Conversion granules in `size_bytes` (1 for ops on no range).
    pub pages: u64,
    pub iters: u64,
    pub cycles: Spread,
    /// Absent when the counter frequency is unknown.
    pub ns: Option<Spread>,
}

impl fmt::Display for BenchLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}op={} size_bytes={} pages={} iters={} cycles_p50={} cycles_p99={} cycles_min={}",
            crate::ktap::BENCH_PREFIX,
            self.op,
            self.size_bytes,
            self.pages,
            self.iters,
            self.cycles.p50,
            self.cycles.p99,
            self.cycles.min
        )?;
        if let Some(ns) = self.ns {
            write!(f, " ns_p50={} ns_p99={} ns_min={}", ns.p50, ns.p99, ns.min)?;
        }
        Ok(())
    }
}

impl<'a> BenchLine<'a> {
    /// Parses the text after optional indentation; `None` if it is not a
    /// complete bench line.
    pub fn parse(line: &'a str) -> Option<Self> {
        let rest = line.trim_start().strip_prefix(crate::ktap::BENCH_PREFIX)?;
        let mut op = None;
        let mut n = [None::<u64>; 10];
        const KEYS: [&str; 10] = [
            "size_bytes",
            "pages",
            "iters",
            "cycles_p50",
            "cycles_p99",
            "cycles_min",
            "ns_p50",
            "ns_p99",
            "ns_min",
            "",
        ];
        for word in rest.split_ascii_whitespace() {
            let (k, v) = word.split_once('=')?;
            if k == "op" {
                op = Some(v);
            } else if let Some(i) = KEYS[..9].iter().position(|key| *key == k) {
                n[i] = Some(v.parse().ok()?);
            }
        }
        let ns = match (n[6], n[7], n[8]) {
            (Some(p50), Some(p99), Some(min)) => Some(Spread { p50, p99, min }),
            _ => None,
        };
        Some(BenchLine {
            op: op?,
            size_bytes: n[0]?,
            pages: n[1]?,
            iters: n[2]?,
            cycles: Spread {
                p50: n[3]?,
                p99: n[4]?,
                min: n[5]?,
            },
            ns,
        })
    }
}

/// How long an op is measured: at least `min_iters`, at most `max_iters`,
/// and in between until its p50 is stable (the last `STABLE_CHECKS`
/// checks, one every `CHECK_EVERY` samples, within 2 % of each other) or
/// the wall budget is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Harness {
    pub min_iters: usize,
    pub max_iters: usize,
    pub budget_cycles: u64,
}

const CHECK_EVERY: usize = 8;
const STABLE_CHECKS: usize = 3;

/// The harness's running state for one op.
#[derive(Clone, Debug, Default)]
pub struct Sampling {
    pub samples: Vec<u64>,
    /// p50 at each check so far.
    checks: Vec<u64>,
    /// Counter cycles spent, the op and everything around it.
    pub spent: u64,
}

impl Sampling {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one sample (`cycles` of the op; `spent` cycles of the whole
    /// iteration, setup included).
    pub fn add(&mut self, cycles: u64, spent: u64) {
        self.samples.push(cycles);
        self.spent = self.spent.saturating_add(spent);
    }

    /// Whether `h` says to stop now.
    pub fn done(&mut self, h: &Harness) -> bool {
        let n = self.samples.len();
        if n < h.min_iters {
            return false;
        }
        if n >= h.max_iters || self.spent >= h.budget_cycles {
            return true;
        }
        if !n.is_multiple_of(CHECK_EVERY) {
            return false;
        }
        let mut sorted = self.samples.clone();
        self.checks.push(percentile(&mut sorted, 50).unwrap_or(0));
        let last = &self.checks[self.checks.len().saturating_sub(STABLE_CHECKS)..];
        if last.len() < STABLE_CHECKS {
            return false;
        }
        let (lo, hi) = last
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        // Within 2 % of the highest.
        (hi - lo) * 50 <= hi
    }
}

/// The `pct`-th percentile (nearest rank) of `samples`, sorting them in place.
pub fn percentile(samples: &mut [u64], pct: u32) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = (u64::from(pct) * samples.len() as u64).div_ceil(100).max(1);
    samples.get(rank as usize - 1).copied()
}

/// Cycles to nanoseconds at `hz`, without overflow for realistic values.
pub fn cycles_to_ns(cycles: u64, hz: u64) -> u64 {
    ((u128::from(cycles) * 1_000_000_000) / u128::from(hz.max(1))) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn line() -> BenchLine<'static> {
        BenchLine {
            op: "share",
            size_bytes: 8192,
            pages: 2,
            iters: 200,
            cycles: Spread {
                p50: 10,
                p99: 20,
                min: 7,
            },
            ns: Some(Spread {
                p50: 5,
                p99: 9,
                min: 3,
            }),
        }
    }

    #[test]
    fn roundtrip() {
        let b = line();
        let s = b.to_string();
        assert_eq!(
            s,
            "# bench: op=share size_bytes=8192 pages=2 iters=200 cycles_p50=10 cycles_p99=20 \
             cycles_min=7 ns_p50=5 ns_p99=9 ns_min=3"
        );
        assert_eq!(BenchLine::parse(&s), Some(b));
        assert_eq!(BenchLine::parse(&std::format!("    {s}")), Some(b));
        let no_ns = BenchLine { ns: None, ..b };
        assert!(!no_ns.to_string().contains("ns_"), "never ns=0");
        assert_eq!(BenchLine::parse(&no_ns.to_string()), Some(no_ns));
    }

    #[test]
    fn rejects_incomplete() {
        assert_eq!(BenchLine::parse("# bench: op=share pages=1"), None);
        assert_eq!(
            BenchLine::parse(
                "# bench: op=share size_bytes=1 pages=x iters=1 cycles_p50=1 cycles_p99=1 cycles_min=1"
            ),
            None
        );
        assert_eq!(BenchLine::parse("# other"), None);
    }

    #[test]
    fn percentiles_and_spread() {
        let mut v: std::vec::Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50), Some(50));
        assert_eq!(percentile(&mut v, 99), Some(99));
        assert_eq!(percentile(&mut [7], 99), Some(7));
        assert_eq!(percentile(&mut [], 50), None);
        assert_eq!(cycles_to_ns(3_000, 3_000_000_000), 1_000);
        let s = Spread::of(&mut v).unwrap();
        assert_eq!((s.p50, s.p99, s.min), (50, 99, 1));
        assert_eq!(Spread::of(&mut []), None);
    }

    #[test]
    fn the_harness_stops_when_stable_spent_or_capped() {
        let h = Harness {
            min_iters: 5,
            max_iters: 1000,
            budget_cycles: 1_000_000,
        };
        let mut s = Sampling::new();
        let mut n = 0;
        while !s.done(&h) {
            s.add(100 + (n % 3), 100);
            n += 1;
        }
        assert_eq!(n, 24, "three stable checks, eight samples apart");
        let mut s = Sampling::new();
        let mut n = 0u64;
        while !s.done(&h) {
            // A drifting op never settles: the budget ends it.
            s.add(100 + 10 * n, 100_000);
            n += 1;
        }
        assert_eq!(n, 10);
        let capped = Harness {
            max_iters: 6,
            budget_cycles: u64::MAX,
            ..h
        };
        let mut s = Sampling::new();
        let mut n = 0u64;
        while !s.done(&capped) {
            s.add(n * n, 1);
            n += 1;
        }
        assert_eq!(n, 6);
        let mut s = Sampling::new();
        s.add(1, u64::MAX);
        assert!(!s.done(&h), "never below min_iters");
    }
}
