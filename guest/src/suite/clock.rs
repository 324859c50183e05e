//! The cycle counter the benchmarks rely on.

use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use crate::arch::{Current, Platform};
use crate::report::tdiag;

const READS: u32 = 100_000;

pub fn monotonic(_ctx: &mut Ctx) -> Verdict {
    let first = Current::cycles();
    let mut prev = first;
    for i in 0..READS {
        let now = Current::cycles();
        if now < prev {
            return fail!("read {i}: counter went back from {prev} to {now}");
        }
        prev = now;
    }
    tdiag!("{READS} reads, counter advanced {} ticks", prev - first);
    if prev == first {
        return fail!("counter stuck at {first} over {READS} reads");
    }
    Verdict::Pass
}

/// Counter frequencies outside this band are a misread register, not a clock.
const PLAUSIBLE_HZ: core::ops::RangeInclusive<u64> = 1_000_000..=10_000_000_000;

pub fn frequency(_ctx: &mut Ctx) -> Verdict {
    match Current::cycle_freq() {
        Err(missing) => Verdict::Skip(alloc::format!("counter frequency unknown: {missing}")),
        Ok(hz) if PLAUSIBLE_HZ.contains(&hz) => {
            tdiag!("counter frequency {hz} Hz");
            Verdict::Pass
        }
        Ok(hz) => fail!("platform states counter frequency {hz} Hz, outside 1 MHz..10 GHz"),
    }
}
