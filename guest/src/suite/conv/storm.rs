//! `stress.storm`: a seeded conversion storm (`convtest_proto::storm`) over
//! 8 MiB, checked against the model at every operation and against the
//! platform at every checkpoint. Operations: share and unshare of random
//! ranges (single granules, runs, 2 MiB-aligned 2 MiB ranges, straddles of
//! 2 MiB and — where free RAM crosses one — 1 GiB boundaries), guest writes
//! in sequential, strided and scattered order, guest read-backs, host
//! verifies of shared ranges and host probes of private ones.
//!
//! A failure names the seed, the CPU and the operation index, and how to
//! replay the run up to it. Only CPU 0 converts so far: the own VMMs run one
//! vCPU.

use super::{T, WINDOW, Window, expect, shared_runs};
use crate::arch;
use crate::fail;
use crate::suite::Verdict;
use alloc::format;
use alloc::string::String;
use convtest_proto::hostcheck::{Request, pattern_word};
use convtest_proto::prng::mix;
use convtest_proto::range::{MemRange, RangeList};
use convtest_proto::storm::{self, Fill, Model, OPS_PER_ITER, Op, Outcome, Storm};
use convtest_proto::tracker::{PageState, Target};

/// Bytes the storm works in.
const AREA: u64 = 8 << 20;
const ONE_GIB: u64 = 1 << 30;
/// Operations between checkpoints.
const CHECKPOINT_EVERY: u64 = 1000;
/// Private granules probed through the ABI at each checkpoint (pKVM).
const PROBES: u64 = 4;
/// Operations between progress lines.
const PROGRESS_EVERY: u64 = 10_000;

/// The storm's area: 8 MiB across a 1 GiB boundary when free RAM has one
/// (the straddles then include 1 GiB ones), else 8 MiB above the conversion
/// window and the reboot series' dirty area.
pub(super) fn area(test_ram: &RangeList, win: &Window) -> Result<MemRange, String> {
    let taken = MemRange::from_len(win.base, 2 * WINDOW);
    let top = test_ram.iter().map(|r| r.end).max().unwrap_or(0);
    let across_gib = (1..=top / ONE_GIB)
        .map(|k| MemRange::from_len(k * ONE_GIB - AREA / 2, AREA))
        .find(|a| test_ram.covers(a) && !a.overlaps(&taken));
    let above = MemRange::from_len(taken.end, AREA);
    across_gib
        .or_else(|| test_ram.covers(&above).then_some(above))
        .ok_or_else(|| {
            format!(
                "no room for the storm's {} MiB above {:#x}: give the guest more RAM",
                AREA >> 20,
                taken.end
            )
        })
}

#[derive(Default)]
struct Counts {
    shares: u64,
    unshares: u64,
    refused: u64,
    calls: u64,
    touches: u64,
    verifies: u64,
    host: u64,
    probes: u64,
    checkpoints: u64,
    straddle_2m: u64,
    straddle_1g: u64,
    hint_2m: u64,
}

impl T<'_> {
    pub(super) fn storm(&mut self, area: Result<MemRange, String>) -> Verdict {
        let area = match area {
            Ok(a) => a,
            Err(why) => return fail!("{why}"),
        };
        let abi = self.conv.name();
        let Some((rule, refusal)) = expect::storm_rule(abi) else {
            return Verdict::Skip(format!("no storm rules for converter {abi} in this suite"));
        };
        if !self.plan.host {
            return Verdict::Skip(
                "host=off: the storm's host checks need a VMM that answers them (convtest's own)"
                    .into(),
            );
        }
        if let Err(why) = self.storm_cleanup(area) {
            return fail!("before the storm: {why}");
        }
        let g = self.win.granule;
        let mut model = Model::new(area, g, rule, self.plan.content);
        let total = self
            .plan
            .storm_ops
            .unwrap_or(u64::from(self.plan.iters.max(1)) * OPS_PER_ITER);
        let last = self
            .plan
            .replay
            .map_or(total, |r| r.saturating_add(1).min(total));
        let seed = self.plan.seed;
        let mut storm = Storm::new(seed, CHECKPOINT_EVERY);
        let mut n = Counts::default();
        let t0 = arch::cycles();
        let mut failed = None;
        while storm.index() < last {
            let i = storm.index();
            if i > 0 && i.is_multiple_of(PROGRESS_EVERY) {
                crate::tdiag!("storm: {i} of {last} ops, no disagreement so far");
            }
            let op = storm.next(&model);
            if let Err(why) = self.storm_op(op, i, &mut model, refusal, &mut n) {
                failed = Some((i, format!("{op}"), why));
                break;
            }
        }
        if failed.is_none() {
            // Labelled with the last op run: a replay up to it ends here too.
            if let Err(why) = self.checkpoint(&mut model, last, &mut n) {
                failed = Some((last - 1, String::from("the final checkpoint after it"), why));
            }
        }
        let cycles = arch::cycles().wrapping_sub(t0);
        let cleanup = self.storm_cleanup(area);
        let ops = failed.as_ref().map_or(last, |(i, _, _)| i + 1);
        crate::tdiag!(
            "storm: seed {seed:#x}, {ops} of {total} ops on cpu 0 over {area}{}: {} shares + {} unshares ({} refused as predicted, {} calls), {} touches, {} guest verifies, {} host checks, {} ABI probes, {} checkpoints; straddles 2M {} 1G {}, 2M-aligned 2M {}",
            if storm::straddles(area, ONE_GIB) {
                " (across a 1 GiB boundary)"
            } else {
                " (no 1 GiB boundary in free RAM: no 1G straddles)"
            },
            n.shares,
            n.unshares,
            n.refused,
            n.calls,
            n.touches,
            n.verifies,
            n.host,
            n.probes,
            n.checkpoints,
            n.straddle_2m,
            n.straddle_1g,
            n.hint_2m
        );
        if let Ok(hz) = arch::cycle_freq() {
            let ns = convtest_proto::bench::cycles_to_ns(cycles, hz).max(1);
            crate::tdiag!(
                "storm: {} ms, {} ops/s, {} conversions/s",
                ns / 1_000_000,
                u128::from(ops) * 1_000_000_000 / u128::from(ns),
                u128::from(n.shares + n.unshares) * 1_000_000_000 / u128::from(ns)
            );
        }
        match (failed, cleanup) {
            (Some((i, op, why)), c) => fail!(
                "seed {seed:#x} cpu 0 op {i} ({op}): {why}{}; replay: --seed {seed:#x} --replay {i}",
                c.err().map_or(String::new(), |e| format!("; cleanup: {e}")),
            ),
            (None, Err(e)) => fail!("after {ops} ops: cleanup: {e}"),
            (None, Ok(())) if self.plan.replay.is_some() => Verdict::PassNoted(format!(
                "replay: stopped after op {} as asked; nothing failed",
                last - 1
            )),
            (None, Ok(())) => Verdict::Pass,
        }
    }

    fn storm_op(
        &mut self,
        op: Op,
        i: u64,
        model: &mut Model,
        refusal: i64,
        n: &mut Counts,
    ) -> Result<(), String> {
        match op {
            Op::Share(r) => self.storm_convert(r, Target::Shared, model, refusal, n),
            Op::Unshare(r) => self.storm_convert(r, Target::Private, model, refusal, n),
            Op::Touch {
                range,
                tag,
                pattern,
            } => {
                n.touches += 1;
                for w in storm::touch_order(range, model.granule(), pattern) {
                    let pa = range.start + w * 8;
                    // SAFETY: the storm's area is free RAM owned by this test
                    // (see `area`), mapped, word-aligned.
                    unsafe { self.word(pa).write_volatile(pattern_word(tag, pa)) };
                }
                model.write(range, Fill::Pattern(tag));
                Ok(())
            }
            Op::GuestVerify(r) => {
                n.verifies += 1;
                self.guest_verify(r, model, false)
            }
            Op::HostVerify { range, tag } => {
                n.host += 1;
                self.host(Request::Verify { range, seed: tag }, "a shared range")
                    .map(|_| ())
                    .map_err(|v| verdict_text(v, "host verify"))
            }
            Op::HostPrivate { range, canary } => {
                n.host += 2;
                self.fill_const(range, canary);
                model.write(range, Fill::Const(canary));
                self.host(Request::NoRead { range, canary }, "a private range")
                    .and_then(|_| self.host(Request::Scan { canary }, "a private range's canary"))
                    .map(|_| ())
                    .map_err(|v| verdict_text(v, "host probe"))
            }
            Op::Checkpoint => self.checkpoint(model, i, n),
        }
    }

    fn storm_convert(
        &mut self,
        r: MemRange,
        to: Target,
        model: &mut Model,
        refusal: i64,
        n: &mut Counts,
    ) -> Result<(), String> {
        match to {
            Target::Shared => n.shares += 1,
            Target::Private => n.unshares += 1,
        }
        n.straddle_2m += u64::from(storm::straddles(r, 2 << 20));
        n.straddle_1g += u64::from(storm::straddles(r, ONE_GIB));
        n.hint_2m += u64::from(r.len() == 2 << 20 && r.start.is_multiple_of(2 << 20));
        let want = model.predict(r, to);
        n.calls += match want {
            Outcome::Done => self.conv.calls_for(r, to).count,
            Outcome::RefusedAt(a) => {
                self.conv
                    .calls_for(MemRange::new(r.start, a + model.granule()), to)
                    .count
            }
        };
        let got = match to {
            Target::Shared => self.conv.share(r),
            Target::Private => self.conv.unshare(r),
        };
        let agrees = match (&got, want) {
            (Ok(()), Outcome::Done) => true,
            (Err(e), Outcome::RefusedAt(a)) => {
                r.start + e.done == a && e.kind.code() == Some(refusal)
            }
            _ => false,
        };
        if !agrees {
            let said = match &got {
                Ok(()) => String::from("0 (done)"),
                Err(e) => format!("{e}"),
            };
            let expected = match want {
                Outcome::Done => String::from("done"),
                Outcome::RefusedAt(a) => {
                    format!(
                        "refused with {refusal} at {a:#x} (already {:?})",
                        to.state()
                    )
                }
            };
            return Err(format!(
                "the platform answered {said}; the model expected {expected}"
            ));
        }
        if matches!(want, Outcome::RefusedAt(_)) {
            n.refused += 1;
        }
        model.convert(r, to, want);
        Ok(())
    }

    /// Reads `r` back against the model; `ends_only` reads each granule's
    /// first and last word (the checkpoint's cheap sweep of the whole area).
    fn guest_verify(&self, r: MemRange, model: &Model, ends_only: bool) -> Result<(), String> {
        let g = model.granule();
        for gr in (r.start..r.end).step_by(g as usize) {
            let fill = model.fill(gr);
            let want = |pa: u64| match fill {
                Fill::Pattern(tag) => Some(pattern_word(tag, pa)),
                Fill::Const(v) => Some(v),
                Fill::Unknown => None,
            };
            if want(gr).is_none() {
                continue;
            }
            let mut words = (gr..gr + g).step_by(8);
            let mut ends = [gr, gr + g - 8].into_iter();
            let it: &mut dyn Iterator<Item = u64> = if ends_only { &mut ends } else { &mut words };
            for pa in it {
                // SAFETY: as in the touch: the storm's own area, mapped.
                let got = unsafe { self.word(pa).read_volatile() };
                if Some(got) != want(pa) {
                    return Err(format!(
                        "guest read {got:#x} at {pa:#x}; the model says the {:?} granule holds {fill:?} ({:#x} here)",
                        model.state(gr),
                        want(pa).unwrap_or(0)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The tracker, the content and the platform against the whole model.
    fn checkpoint(&mut self, model: &mut Model, i: u64, n: &mut Counts) -> Result<(), String> {
        n.checkpoints += 1;
        let area = model.area();
        let g = model.granule();
        for a in (area.start..area.end).step_by(g as usize) {
            let tracked = self.conv.state(a);
            if tracked != Some(model.state(a)) {
                return Err(format!(
                    "the guest's tracker says {a:#x} is {tracked:?}, the model {:?}",
                    model.state(a)
                ));
            }
        }
        self.guest_verify(area, model, true)?;
        // The platform's own word on a few private granules: the ABI's probe
        // where it has one (pKVM refuses to unshare a granule that is not
        // shared), else the host must be refused one holding a fresh canary.
        let private = model.runs(PageState::Private);
        let granules: u64 = private.iter().map(|r| r.len() / g).sum();
        let nth_private = |mut pick: u64| {
            private.iter().find_map(|r| {
                let len = r.len() / g;
                if pick < len {
                    Some(r.start + pick * g)
                } else {
                    pick -= len;
                    None
                }
            })
        };
        let abi = self.conv.name();
        for k in 0..PROBES.min(granules) {
            let Some(ipa) = nth_private(mix(self.plan.seed ^ i ^ k) % granules) else {
                continue;
            };
            match expect::private_probe(abi, ipa) {
                Some((call, code, from)) => {
                    n.probes += 1;
                    match self.conv.raw(call) {
                        Ok(c) if c == code => {}
                        Ok(c) => {
                            return Err(format!(
                                "{call} of {ipa:#x}, private by the model, answered {c}; {from} must answer {code} for a granule that is not shared"
                            ));
                        }
                        Err(e) => return Err(format!("{call}: {e:?}")),
                    }
                }
                None if k == 0 => {
                    let range = MemRange::from_len(ipa, g);
                    let canary = mix(self.plan.seed ^ !i) | 1;
                    self.fill_const(range, canary);
                    model.write(range, Fill::Const(canary));
                    n.host += 1;
                    self.host(
                        Request::NoRead { range, canary },
                        "checkpoint: a private granule",
                    )
                    .map_err(|v| verdict_text(v, "checkpoint host probe"))?;
                }
                None => {}
            }
        }
        // And the host's: one shared run it must see, one private granule
        // it must be refused.
        if let Some(r) = shared_runs(&*self.conv, area).first()
            && let Fill::Pattern(tag) = model.fill(r.start)
        {
            let run = (r.start..r.end)
                .step_by(g as usize)
                .take_while(|&a| model.fill(a) == Fill::Pattern(tag))
                .count() as u64;
            n.host += 1;
            self.host(
                Request::Verify {
                    range: MemRange::from_len(r.start, run * g),
                    seed: tag,
                },
                "checkpoint: a shared range",
            )
            .map_err(|v| verdict_text(v, "checkpoint host verify"))?;
        }
        Ok(())
    }

    /// Every granule of `area` private, run by run from the tracker.
    fn storm_cleanup(&mut self, area: MemRange) -> Result<(), String> {
        if self.conv.resolve(area) != 0 {
            return Err(format!(
                "{area}: unknown state the hypervisor refused to resolve"
            ));
        }
        for run in shared_runs(&*self.conv, area) {
            self.conv.unshare(run).map_err(|e| format!("{run}: {e}"))?;
        }
        Ok(())
    }
}

/// The text of a failing or skipped host check, for the storm's own message.
fn verdict_text(v: Verdict, what: &str) -> String {
    match v {
        Verdict::Fail(why) => why,
        Verdict::Skip(why) => format!("{what} not answered: {why}"),
        Verdict::Pass | Verdict::PassNoted(_) => format!("{what}: no verdict"),
    }
}
