//! `stress.overlap`: every CPU converts at the same moment, the ranges
//! overlapping (one hot range, each CPU's ends shifted by a few granules)
//! or neighbouring (adjacent pieces, neighbours converted in opposite
//! directions), around a 2 MiB boundary, sometimes a whole 2 MiB block from
//! every CPU (`convtest_proto::overlap` builds the rounds and predicts
//! them). The calls really overlap: each CPU issues them holding no lock
//! (`Converter::calls`), only the records before and after each call are
//! taken under the converter's lock; where the ABI takes one call per
//! granule (pKVM) each CPU walks its range granule by granule, some from
//! the top down.
//!
//! After each round, with every CPU quiet: the answers per granule (under
//! a refuse-if-already-there ABI exactly one CPU's call succeeds, every
//! other one is refused; elsewhere every call succeeds), the tracker for
//! every granule of the area against the suite's own model, and the
//! platform: the host must read the guest's pattern in the shared runs just
//! converted, be refused a private one and find its canary nowhere, and
//! the ABI's own probe (pKVM MEM_UNSHARE answers -3) of a private granule.
//! Rounds: iters / 10 (at least 10).

use super::expect;
use super::harness::{Step, T, at_iter};
use super::storm_cpu::SharedConverter;
use crate::conv::{Calls, ConvError};
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::hostcheck::Request;
use convtest_proto::overlap::{self, Granule, Kind, Round};
use convtest_proto::range::MemRange;
use convtest_proto::storm::Rule;
use convtest_proto::tracker::PageState;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Bytes the rounds work in: two 2 MiB blocks and the boundary between.
const AREA: u64 = 4 << 20;
/// Shared runs the host reads back per round.
const HOST_RUNS: usize = 3;

/// One call a CPU made and its answer.
type Answer = (MemRange, Result<(), ConvError>);

/// What the rounds did, for the closing diagnostic.
#[derive(Default)]
struct Counts {
    rounds: u64,
    calls: u64,
    refused: u64,
    contested: u64,
    overlapping: u64,
    neighbouring: u64,
    hint_2m: u64,
    host: u64,
}

impl T<'_> {
    pub(super) fn overlap(&mut self, area: Result<MemRange, String>) -> Verdict {
        let cpus = crate::smp::cpus();
        if let Some(skip) = self.needs_cpus_and_host("converting from several CPUs at once") {
            return skip;
        }
        let abi = self.conv.name();
        let Some((rule, refusal)) = expect::storm_rule(abi) else {
            return Verdict::Skip(format!(
                "no conversion rules for converter {abi} in this suite"
            ));
        };
        let area = match area {
            Ok(a) if a.len() >= AREA => MemRange::from_len(a.start, AREA),
            Ok(a) => return fail!("the stress area {a} is smaller than {AREA:#x} bytes"),
            Err(why) => return fail!("{why}"),
        };
        let g = self.win.granule;
        // The suite's own record of the area (the oracle), never the tracker.
        let mut model = alloc::vec![PageState::Private; (area.len() / g) as usize];
        let rounds = u64::from((self.plan.iters / 10).max(10));
        let mut n = Counts::default();
        let verdict = (|| {
            if let Err(why) = self.storm_cleanup(area) {
                return Err(fail!("before the rounds: {why}"));
            }
            for i in 0..rounds {
                let round = overlap::round(self.plan.seed, i, area, g, cpus);
                let at = |a: u64| ((a - area.start) / g) as usize;
                let want = overlap::predict(&round, g, rule, |a| model[at(a)])
                    .map_err(|c| fail!("round {i}: {c}"))?;
                let answers = self.overlap_round(&round, rule);
                n.rounds += 1;
                n.calls += answers.iter().map(|a| a.len() as u64).sum::<u64>();
                match round.kind {
                    Kind::Overlapping => n.overlapping += 1,
                    Kind::Neighbouring => n.neighbouring += 1,
                    Kind::Hint2M => n.hint_2m += 1,
                }
                let (refused, contested) = tally(&want, &answers, g, refusal)
                    .map_err(|why| fail!("round {i} ({}): {why}", describe(&round)))?;
                n.refused += refused;
                n.contested += contested;
                for w in &want {
                    model[at(w.addr)] = w.state;
                }
                self.overlap_settle(area, &model, &want, i, &mut n)
                    .map_err(|v| at_iter(v, i as u32))?;
            }
            Ok(())
        })();
        let cleanup = self.storm_cleanup(area);
        tdiag!(
            "overlap: {} rounds on {cpus} CPUs over {area} ({} overlapping, {} neighbouring, {} whole 2 MiB): {} calls, {} refused as predicted, {} granules converted by several CPUs at once, {} host checks",
            n.rounds,
            n.overlapping,
            n.neighbouring,
            n.hint_2m,
            n.calls,
            n.refused,
            n.contested,
            n.host
        );
        match (verdict, cleanup) {
            (Err(v), _) => v,
            (Ok(()), Err(e)) => fail!("cleanup: {e}"),
            (Ok(()), Ok(())) => Verdict::Pass,
        }
    }

    /// Every CPU converts its range of `round` at once; each CPU's answers.
    fn overlap_round(&mut self, round: &Round, rule: Rule) -> Vec<Vec<Answer>> {
        let g = self.win.granule;
        let cpus = round.calls.len();
        let calls: alloc::boxed::Box<dyn Calls> = self.conv.calls();
        let answers: Vec<spin::Mutex<Vec<Answer>>> =
            (0..cpus).map(|_| spin::Mutex::new(Vec::new())).collect();
        let arrived = AtomicUsize::new(0);
        let shared = SharedConverter::new(&mut *self.conv);
        crate::smp::on_each(&|cpu| {
            let Some(call) = round.calls.get(cpu) else {
                return;
            };
            let r = call.range;
            // One call per granule where the ABI has no other (pKVM), so the
            // CPUs' calls interleave granule by granule.
            let pieces: Vec<MemRange> = match rule {
                Rule::RefuseSameState => {
                    let mut v: Vec<MemRange> = (r.start..r.end)
                        .step_by(g as usize)
                        .map(|a| MemRange::from_len(a, g))
                        .collect();
                    if call.descending {
                        v.reverse();
                    }
                    v
                }
                Rule::AnyState => alloc::vec![r],
            };
            let mut mine = Vec::with_capacity(pieces.len());
            // Everybody starts together, or there is no overlap to speak of.
            arrived.fetch_add(1, Ordering::AcqRel);
            while arrived.load(Ordering::Acquire) < cpus {
                core::hint::spin_loop();
            }
            for p in pieces.into_iter().filter(|p| !p.is_empty()) {
                shared.with(|c| c.before_calls(p, call.to));
                let res = calls.issue(p, call.to);
                shared.with(|c| c.record(p, call.to, &res));
                mine.push((p, res));
            }
            *answers[cpu].lock() = mine;
        });
        answers.into_iter().map(spin::Mutex::into_inner).collect()
    }

    /// The quiet point after a round: the tracker against the model over
    /// the whole area, then the platform on the granules just converted.
    fn overlap_settle(
        &mut self,
        area: MemRange,
        model: &[PageState],
        want: &[Granule],
        round: u64,
        n: &mut Counts,
    ) -> Step<()> {
        let g = self.win.granule;
        for (k, &m) in model.iter().enumerate() {
            let a = area.start + k as u64 * g;
            let tracked = self.conv.state(a);
            if tracked != Some(m) {
                return Err(fail!(
                    "after the round the tracker says {a:#x} is {tracked:?}; the round leaves it {m:?}"
                ));
            }
        }
        let runs = |s: PageState| {
            let mut v: Vec<MemRange> = Vec::new();
            for w in want.iter().filter(|w| w.state == s) {
                match v.last_mut() {
                    Some(l) if l.end == w.addr => l.end += g,
                    _ => v.push(MemRange::from_len(w.addr, g)),
                }
            }
            v
        };
        let tag = self.seed(0x0e41 ^ round);
        for r in runs(PageState::Shared).into_iter().take(HOST_RUNS) {
            self.fill(r, tag);
            n.host += 1;
            self.host(
                Request::Verify {
                    range: r,
                    seed: tag,
                },
                "the guest's pattern in granules several CPUs just shared",
            )?;
        }
        let private = runs(PageState::Private);
        if let Some(&first) = private.first() {
            let canary = self.canary(0x0e42 ^ round);
            for &r in &private {
                self.fill_const(r, canary);
            }
            n.host += 2;
            self.host(
                Request::NoRead {
                    range: first,
                    canary,
                },
                "a granule several CPUs just made private",
            )?;
            self.host(
                Request::Scan { canary },
                "the canary in granules several CPUs just made private",
            )?;
            if let Some((call, code, from)) = expect::private_probe(self.conv.name(), first.start) {
                match self.conv.raw(call) {
                    Ok(c) if c == code => {}
                    Ok(c) => {
                        return Err(fail!(
                            "{call} of {:#x}, just made private, answered {c}; {from} must answer {code}",
                            first.start
                        ));
                    }
                    Err(e) => return Err(fail!("{call}: {e:?}")),
                }
            }
        }
        Ok(())
    }
}

/// Checks every CPU's answers against the prediction: per granule, how
/// many calls succeeded and how many were refused with the ABI's code.
/// Returns the refusals and the granules several CPUs converted.
fn tally(
    want: &[Granule],
    answers: &[Vec<Answer>],
    g: u64,
    refusal: i64,
) -> Result<(u64, u64), String> {
    // Per predicted granule (address order): successes, refusals.
    let mut got: Vec<(u32, u32)> = alloc::vec![(0, 0); want.len()];
    let index = |a: u64| want.binary_search_by_key(&a, |w| w.addr).ok();
    for (cpu, list) in answers.iter().enumerate() {
        for (r, res) in list {
            match res {
                Ok(()) => {
                    for a in (r.start..r.end).step_by(g as usize) {
                        let k = index(a).ok_or_else(|| {
                            format!("cpu {cpu} converted {a:#x}, outside the round")
                        })?;
                        got[k].0 += 1;
                    }
                }
                Err(e) if e.done == 0 && r.len() == g && e.kind.code() == Some(refusal) => {
                    let k = index(r.start)
                        .ok_or_else(|| format!("cpu {cpu} was refused {r}, outside the round"))?;
                    got[k].1 += 1;
                }
                Err(e) => return Err(format!("cpu {cpu}: {e}")),
            }
        }
    }
    let mut refused = 0;
    for (w, &(oks, nos)) in want.iter().zip(&got) {
        if oks != w.oks || oks + nos != w.cover {
            return Err(format!(
                "{:#x}: {} CPU(s) made it {:?}; {oks} call(s) succeeded and {nos} were refused with {refusal}, where exactly {} must succeed and {} be refused",
                w.addr,
                w.cover,
                w.state,
                w.oks,
                w.cover - w.oks
            ));
        }
        refused += u64::from(nos);
    }
    let contested = want.iter().filter(|w| w.cover > 1).count() as u64;
    Ok((refused, contested))
}

fn describe(round: &Round) -> String {
    let calls: Vec<String> = round
        .calls
        .iter()
        .enumerate()
        .map(|(c, call)| format!("cpu {c} {call}"))
        .collect();
    format!("{:?}: {}", round.kind, calls.join(", "))
}
