//! One harness for every op: the cycle counter around exactly the op,
//! iterations decided by `convtest_proto::bench::Harness` (stable p50, or
//! the plan's `bench_ms` budget spent), and one `# bench:` line per op and
//! size, with ns only when the counter frequency is known.

use crate::arch::{Current, Platform};
use crate::console::kprintln;
use crate::suite::verdict::Verdict;
use convtest_proto::bench::{BenchLine, Harness, Sampling, Spread};
use convtest_proto::plan::Plan;

/// Counter rate assumed for the budget alone when the platform states
/// none (TCG's TSC): the budget is then approximate, the samples are not.
const BUDGET_FALLBACK_HZ: u64 = 1_000_000_000;
const MIN_ITERS: usize = 5;
const MAX_ITERS: usize = 10_000;
/// Iterations run before sampling starts: the first ones pay for code and
/// TLB warm-up (and, nested, the L1's first faults), not for the op.
const WARMUP: usize = 2;

pub struct Meter {
    harness: Harness,
    hz: Option<u64>,
}

impl Meter {
    pub fn new(plan: &Plan<'_>) -> Meter {
        let hz = Current::cycle_freq().ok();
        let rate = hz.unwrap_or(BUDGET_FALLBACK_HZ);
        Meter {
            harness: Harness {
                min_iters: MIN_ITERS,
                max_iters: MAX_ITERS,
                budget_cycles: rate / 1000 * u64::from(plan.bench_ms),
            },
            hz,
        }
    }

    pub fn hz(&self) -> Option<u64> {
        self.hz
    }

    /// Runs `once` until the harness stops it. `once` returns the cycles of
    /// the op alone; whatever else it does (setup, cache flushes) counts
    /// only against the budget.
    pub fn measure(
        &self,
        mut once: impl FnMut() -> Result<u64, Verdict>,
    ) -> Result<Sampling, Verdict> {
        let mut s = Sampling::new();
        for _ in 0..WARMUP {
            once()?;
        }
        loop {
            let t0 = Current::cycles();
            let c = once()?;
            s.add(c, Current::cycles().wrapping_sub(t0));
            if s.done(&self.harness) {
                return Ok(s);
            }
        }
    }

    /// Two ops timed apart in one iteration (a share and the unshare that
    /// undoes it); runs until the harness is done with both.
    pub fn measure2(
        &self,
        mut once: impl FnMut() -> Result<(u64, u64), Verdict>,
    ) -> Result<(Sampling, Sampling), Verdict> {
        let (mut a, mut b) = (Sampling::new(), Sampling::new());
        for _ in 0..WARMUP {
            once()?;
        }
        loop {
            let t0 = Current::cycles();
            let (ca, cb) = once()?;
            let spent = Current::cycles().wrapping_sub(t0);
            a.add(ca, spent / 2);
            b.add(cb, spent - spent / 2);
            // `done` records a p50 check on each call: ask both every time.
            let (da, db) = (a.done(&self.harness), b.done(&self.harness));
            if da && db {
                return Ok((a, b));
            }
        }
    }

    /// Prints the bench line of one op; returns its cycle spread.
    pub fn emit(&self, op: &str, size_bytes: u64, pages: u64, s: &mut Sampling) -> Spread {
        let iters = s.samples.len() as u64;
        let cycles = Spread::of(&mut s.samples).unwrap_or(Spread {
            p50: 0,
            p99: 0,
            min: 0,
        });
        let line = BenchLine {
            op,
            size_bytes,
            pages,
            iters,
            cycles,
            ns: self.hz.map(|hz| cycles.to_ns(hz)),
        };
        kprintln!("    {line}");
        cycles
    }
}

/// Cycles between two counter reads around `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let t0 = Current::cycles();
    let v = f();
    (Current::cycles().wrapping_sub(t0), v)
}
