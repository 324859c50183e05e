//! `conv.cost`: the one-granule share+unshare round trip next to the
//! platform's cheapest call to the same handler, as `# bench:` lines.

use super::{SLOT_COST, T, run_steps};
use crate::suite::Verdict;
use crate::{arch, fail, kprintln, tdiag};
use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use convtest_proto::bench::{BenchLine, cycles_to_ns, percentile};
use convtest_proto::tracker::PageState;

impl T<'_> {
    pub(super) fn cost(&mut self) -> Verdict {
        if !self.plan.bench {
            return Verdict::Skip("plan has bench=off".to_string());
        }
        run_steps(|| {
            let p = self.win.slot(SLOT_COST);
            let iters = self.plan.iters.clamp(1, 100_000) as usize;
            let mut round = vec![0u64; iters];
            let mut noop = vec![0u64; iters];
            for slot in round.iter_mut() {
                let t0 = arch::cycles();
                self.conv.share(p).map_err(|e| fail!("share {p}: {e}"))?;
                self.conv
                    .unshare(p)
                    .map_err(|e| fail!("unshare {p}: {e}"))?;
                *slot = arch::cycles().wrapping_sub(t0);
            }
            for slot in noop.iter_mut() {
                let t0 = arch::cycles();
                self.conv
                    .noop(p)
                    .map_err(|e| fail!("{}: {e}", self.conv.noop_op()))?;
                *slot = arch::cycles().wrapping_sub(t0);
            }
            self.expect_state(p, PageState::Private, "after the benchmark")?;
            let hz = match arch::cycle_freq() {
                Ok(hz) => Some(hz),
                Err(why) => {
                    tdiag!("counter frequency unknown ({why}): ns printed as 0");
                    None
                }
            };
            let r = bench_line("share_unshare", &mut round, hz);
            let n = bench_line(self.conv.noop_op(), &mut noop, hz);
            kprintln!("    {r}");
            kprintln!("    {n}");
            if r.cycles_p50 == 0 || n.cycles_p50 == 0 {
                return Err(fail!("the cycle counter did not advance across a call"));
            }
            let ratio_x10 = r.cycles_p50 * 10 / n.cycles_p50;
            Ok(format!(
                "round trip p50 {} cycles = {}.{}x the no-op call ({} cycles)",
                r.cycles_p50,
                ratio_x10 / 10,
                ratio_x10 % 10,
                n.cycles_p50
            ))
        })
    }
}

fn bench_line(op: &'static str, samples: &mut [u64], hz: Option<u64>) -> BenchLine<'static> {
    let c50 = percentile(samples, 50).unwrap_or(0);
    let c99 = percentile(samples, 99).unwrap_or(0);
    let ns = |c| hz.map_or(0, |hz| cycles_to_ns(c, hz));
    BenchLine {
        op,
        pages: 1,
        iters: samples.len() as u64,
        cycles_p50: c50,
        cycles_p99: c99,
        ns_p50: Some(ns(c50)),
        ns_p99: Some(ns(c99)),
    }
}
