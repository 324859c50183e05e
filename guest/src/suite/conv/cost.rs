//! `conv.cost`: one granule's share+unshare round trip next to the
//! platform's cheapest call to the same handler, through the bench
//! harness: raw calls on both sides, no bookkeeping in either (the
//! `bench.*` suite has the sizes, the bounce path and the bookkeeping).

use super::harness::{T, run_steps};
use super::window::SLOT_COST;
use crate::report::tdiag;
use crate::suite::bench::meter::{Meter, timed};
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::ToString;
use convtest_proto::tracker::{PageState, Target};

impl T<'_> {
    pub(super) fn cost(&mut self) -> Verdict {
        if !self.plan.bench {
            return Verdict::Skip("plan has bench=off".to_string());
        }
        let p = self.win.slot(SLOT_COST);
        let meter = Meter::new(&self.plan);
        self.conv.begin_bare(p);
        let measured = (|| {
            let conv = &mut *self.conv;
            let mut round = meter.measure(|| {
                let (c, res) = timed(|| {
                    conv.bare(p, Target::Shared)?;
                    conv.bare(p, Target::Private)
                });
                res.map(|()| c).map_err(|e| fail!("share+unshare {p}: {e}"))
            })?;
            let op = conv.noop_op();
            let mut noop = meter.measure(|| {
                let (c, res) = timed(|| conv.noop(p));
                res.map(|()| c).map_err(|e| fail!("{op}: {e}"))
            })?;
            let g = conv.granule();
            let r = meter.emit("share_unshare", g, 1, &mut round);
            let n = meter.emit(op, 0, 1, &mut noop);
            Ok((r.p50, n.p50))
        })();
        if let Err(e) = self.conv.end_bare(p) {
            return fail!("making {p} private after the benchmark: {e}");
        }
        run_steps(|| {
            let (round, noop) = measured?;
            self.expect_state(p, PageState::Private, "after the benchmark")?;
            // The timed calls are not each checked (a check would be timed
            // with them); where they left the granule is.
            let after = self.confirm(
                p,
                Target::Private,
                "after the benchmark the granule must be private",
            )?;
            tdiag!("after the benchmark: {after}");
            if round == 0 || noop == 0 {
                return Err(fail!("the cycle counter did not advance across a call"));
            }
            let ratio_x10 = round * 10 / noop;
            Ok(format!(
                "round trip p50 {round} cycles = {}.{}x the no-op call ({noop} cycles), raw calls both",
                ratio_x10 / 10,
                ratio_x10 % 10
            ))
        })
    }
}
