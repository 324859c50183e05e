//! One CPU's part of a storm: it runs its own seeded sequence over its own
//! slice of the storm's area, converting through the converter all CPUs
//! share (one lock, held for the call: the tracker and the pKVM ledger are
//! one structure), touching and reading back its slice while the other
//! CPUs convert theirs. Only CPU 0 talks to the host (the console carries
//! one request at a time); elsewhere a host operation becomes its guest-side
//! half, and the quiescent checkpoint between rounds asks the host about
//! every slice. Multi-granule conversions are confirmed on the platform
//! granule by granule, a sample of them (storm_confirm.rs).

use super::expect;
use crate::boot::BootInfo;
use crate::conv::Converter;
use crate::hostcheck::{self, HostError, Reply};
use crate::report::tdiag;
use alloc::format;
use alloc::string::String;
use convtest_proto::crumbs::Doing;
use convtest_proto::hostcheck::{Evidence, Request, pattern_word};
use convtest_proto::prng::mix;
use convtest_proto::range::MemRange;
use convtest_proto::storm::{self, ConversionOutcome, Fill, Model, Op, Rule, Storm};
use convtest_proto::tracker::{PageState, Target};
use core::sync::atomic::{AtomicBool, Ordering};

const ONE_GIB: u64 = 1 << 30;
const TWO_MIB: u64 = 2 << 20;
/// Private granules probed through the ABI at each checkpoint (pKVM).
pub(super) const PROBES: u64 = 4;
/// Operations between progress lines (per CPU).
const PROGRESS_EVERY: u64 = 10_000;

/// The converter, shared by the CPUs of a storm round.
pub(super) struct SharedConverter<'a>(spin::Mutex<&'a mut dyn Converter>);

// SAFETY: every CPU reaches the converter only through the lock, so its
// state (the tracker, the pKVM ledger) is never touched by two CPUs at once;
// the ABIs keep nothing per CPU (a MAP_GPA_RANGE or MEM_SHARE call is
// valid from any vCPU of the VM), and the guest has no other threads.
unsafe impl Sync for SharedConverter<'_> {}

impl<'a> SharedConverter<'a> {
    pub(super) fn new(conv: &'a mut dyn Converter) -> Self {
        SharedConverter(spin::Mutex::new(conv))
    }

    pub(super) fn with<R>(&self, f: impl FnOnce(&mut dyn Converter) -> R) -> R {
        let mut guard = self.0.lock();
        f(&mut **guard)
    }
}

#[derive(Clone, Copy, Default)]
pub(super) struct Counts {
    pub shares: u64,
    pub unshares: u64,
    pub refused: u64,
    pub calls: u64,
    pub touches: u64,
    pub verifies: u64,
    pub host: u64,
    pub probes: u64,
    pub checkpoints: u64,
    pub straddle_2m: u64,
    pub straddle_1g: u64,
    pub hint_2m: u64,
}

impl Counts {
    pub(super) fn add(&mut self, o: &Counts) {
        self.shares += o.shares;
        self.unshares += o.unshares;
        self.refused += o.refused;
        self.calls += o.calls;
        self.touches += o.touches;
        self.verifies += o.verifies;
        self.host += o.host;
        self.probes += o.probes;
        self.checkpoints += o.checkpoints;
        self.straddle_2m += o.straddle_2m;
        self.straddle_1g += o.straddle_1g;
        self.hint_2m += o.hint_2m;
    }
}

/// Where a CPU stopped: its op index, the op, why.
pub(super) type Failure = (u64, String, String);

/// A CPU's own state, locked only by that CPU during a round and by CPU 0
/// between rounds.
pub(super) struct Lane {
    pub model: Model,
    pub storm: Storm,
    pub counts: Counts,
    pub failure: Option<Failure>,
    /// The weakest evidence among this CPU's host answers.
    pub evidence: Option<Evidence>,
    /// Per direction (shared, private), the last round in which one of
    /// this CPU's multi-granule conversions was confirmed on the platform.
    pub confirmed_round: [Option<u64>; 2],
}

/// What every CPU of a storm reads.
pub(super) struct StormCtx<'a> {
    pub conv: &'a SharedConverter<'a>,
    pub boot: &'static BootInfo,
    pub host: hostcheck::Host,
    pub refusal: i64,
    pub abi: &'static str,
    pub seed: u64,
    /// Ops each CPU runs in all.
    pub last: u64,
    /// Set by the first CPU that fails: the others stop at their next op.
    pub stop: &'a AtomicBool,
}

impl StormCtx<'_> {
    pub(super) fn word(&self, pa: u64) -> *mut u64 {
        self.boot.phys_to_virt(pa) as *mut u64
    }

    /// Runs `lane`'s ops on `cpu` up to (not including) index `until`.
    pub(super) fn run_round(&self, cpu: usize, lane: &mut Lane, until: u64) {
        while lane.storm.index() < until.min(self.last) && lane.failure.is_none() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let i = lane.storm.index();
            if cpu == 0 && i > 0 && i.is_multiple_of(PROGRESS_EVERY) {
                tdiag!(
                    "storm: {i} of {} ops per CPU, no disagreement so far",
                    self.last
                );
            }
            crate::crumbs::doing(cpu, Doing::StormOp(i));
            let op = lane.storm.next(&lane.model);
            if let Err(why) = self.op(cpu, op, lane) {
                lane.failure = Some((i, format!("{op}"), why));
                self.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    fn op(&self, cpu: usize, op: Op, lane: &mut Lane) -> Result<(), String> {
        if let Op::Share(r) | Op::Unshare(r) = op {
            let to = if matches!(op, Op::Share(_)) {
                Target::Shared
            } else {
                Target::Private
            };
            let done = self.convert(r, to, &mut lane.model, &mut lane.counts)?;
            return match done {
                Some(r) => self.confirm(cpu, r, to, lane),
                None => Ok(()),
            };
        }
        let (model, n) = (&mut lane.model, &mut lane.counts);
        match op {
            Op::Share(_) | Op::Unshare(_) => Ok(()),
            Op::Touch {
                range,
                tag,
                pattern,
            } => {
                n.touches += 1;
                for w in storm::touch_order(range, model.granule(), pattern) {
                    let pa = range.start + w * 8;
                    // SAFETY: the storm's area is free RAM owned by this test
                    // and this slice by this CPU (see `storm::area`), mapped,
                    // word-aligned.
                    unsafe { self.word(pa).write_volatile(pattern_word(tag, pa)) };
                }
                model.write(range, Fill::Pattern(tag));
                Ok(())
            }
            Op::GuestVerify(r) => {
                n.verifies += 1;
                self.guest_verify(r, model, false)
            }
            Op::HostVerify { range, tag } if cpu == 0 => {
                n.host += 1;
                self.ask(
                    Request::Verify { range, seed: tag },
                    "a shared range",
                    &mut lane.evidence,
                )
            }
            Op::HostVerify { range, .. } => {
                n.verifies += 1;
                self.guest_verify(range, model, false)
            }
            Op::HostPrivate { range, canary } => {
                self.fill_const(range, canary);
                model.write(range, Fill::Const(canary));
                if cpu != 0 {
                    return Ok(());
                }
                n.host += 2;
                self.ask(
                    Request::NoRead { range, canary },
                    "a private range",
                    &mut lane.evidence,
                )?;
                self.ask(
                    Request::Scan { canary },
                    "a private range's canary",
                    &mut lane.evidence,
                )
            }
            // The round's end: the quiescent checkpoint runs on CPU 0.
            Op::Checkpoint => Ok(()),
        }
    }

    pub(super) fn fill_const(&self, r: MemRange, v: u64) {
        for pa in (r.start..r.end).step_by(8) {
            // SAFETY: as in the touch.
            unsafe { self.word(pa).write_volatile(v) };
        }
    }

    /// A host check that must answer `ok`, its evidence kept.
    pub(super) fn ask(
        &self,
        req: Request,
        why: &str,
        evidence: &mut Option<Evidence>,
    ) -> Result<(), String> {
        let mut weigh = |e: Option<Evidence>| {
            let e = e.unwrap_or(Evidence::Bookkeeping);
            *evidence = Some(evidence.map_or(e, |old| old.weakest(e)));
        };
        match hostcheck::ask(self.host, &req) {
            Ok(Reply { evidence, .. }) => {
                weigh(evidence);
                Ok(())
            }
            Err(e) => {
                if let HostError::Failed { evidence, .. } = &e {
                    weigh(*evidence);
                }
                Err(format!("{why}: {req}: {e}"))
            }
        }
    }

    /// One conversion against the model's prediction; the range it
    /// converted whole (`None`: refused as predicted).
    fn convert(
        &self,
        r: MemRange,
        to: Target,
        model: &mut Model,
        n: &mut Counts,
    ) -> Result<Option<MemRange>, String> {
        match to {
            Target::Shared => n.shares += 1,
            Target::Private => n.unshares += 1,
        }
        n.straddle_2m += u64::from(storm::straddles(r, TWO_MIB));
        n.straddle_1g += u64::from(storm::straddles(r, ONE_GIB));
        n.hint_2m += u64::from(r.len() == TWO_MIB && r.start.is_multiple_of(TWO_MIB));
        let want = model.predict(r, to);
        let asked = match want {
            ConversionOutcome::Done => r,
            ConversionOutcome::RefusedAt(a) => MemRange::new(r.start, a + model.granule()),
        };
        let (got, calls) = self.conv.with(|c| {
            let calls = c.calls_for(asked, to).count;
            let got = match to {
                Target::Shared => c.share(r),
                Target::Private => c.unshare(r),
            };
            (got, calls)
        });
        n.calls += calls;
        let agrees = match (&got, want) {
            (Ok(()), ConversionOutcome::Done) => true,
            (Err(e), ConversionOutcome::RefusedAt(a)) => {
                r.start + e.done == a && e.kind.code() == Some(self.refusal)
            }
            _ => false,
        };
        if !agrees {
            let said = match &got {
                Ok(()) => String::from("0 (done)"),
                Err(e) => format!("{e}"),
            };
            let expected = match want {
                ConversionOutcome::Done => String::from("done"),
                ConversionOutcome::RefusedAt(a) => format!(
                    "refused with {} at {a:#x} (already {:?})",
                    self.refusal,
                    to.state()
                ),
            };
            return Err(format!(
                "the platform answered {said}; the model expected {expected}"
            ));
        }
        if matches!(want, ConversionOutcome::RefusedAt(_)) {
            n.refused += 1;
        }
        model.convert(r, to, want);
        Ok(matches!(want, ConversionOutcome::Done).then_some(r))
    }

    /// Reads `r` back against the model; `ends_only` reads each granule's
    /// first and last word (the checkpoint's cheap sweep).
    pub(super) fn guest_verify(
        &self,
        r: MemRange,
        model: &Model,
        ends_only: bool,
    ) -> Result<(), String> {
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

    /// The quiescent checkpoint of one slice, run by CPU 0 between rounds:
    /// the tracker against the model granule by granule, the content's
    /// ends, the platform's word on a few private granules (the ABI's probe
    /// where it has one, else the host must be refused one holding a fresh
    /// canary) and the host's view of one shared run.
    pub(super) fn checkpoint(&self, lane: &mut Lane, salt: u64) -> Result<(), String> {
        let (model, n) = (&mut lane.model, &mut lane.counts);
        n.checkpoints += 1;
        let area = model.area();
        let g = model.granule();
        let mismatch = self.conv.with(|c| {
            (area.start..area.end)
                .step_by(g as usize)
                .map(|a| (a, c.state(a)))
                .find(|&(a, s)| s != Some(model.state(a)))
        });
        if let Some((a, tracked)) = mismatch {
            return Err(format!(
                "the guest's tracker says {a:#x} is {tracked:?}, the model {:?}",
                model.state(a)
            ));
        }
        self.guest_verify(area, model, true)?;
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
        for k in 0..PROBES.min(granules) {
            let Some(ipa) = nth_private(mix(self.seed ^ salt ^ k) % granules) else {
                continue;
            };
            match expect::private_probe(self.abi, ipa) {
                Some((call, code, from)) => {
                    n.probes += 1;
                    match self.conv.with(|c| c.raw(call)) {
                        Ok(got) if got == code => {}
                        Ok(got) => {
                            return Err(format!(
                                "{call} of {ipa:#x}, private by the model, answered {got}; {from} must answer {code} for a granule that is not shared"
                            ));
                        }
                        Err(e) => return Err(format!("{call}: {e:?}")),
                    }
                }
                None if k == 0 => {
                    let range = MemRange::from_len(ipa, g);
                    let canary = mix(self.seed ^ !salt) | 1;
                    self.fill_const(range, canary);
                    model.write(range, Fill::Const(canary));
                    n.host += 1;
                    self.ask(
                        Request::NoRead { range, canary },
                        "checkpoint: a private granule",
                        &mut lane.evidence,
                    )?;
                }
                None => {}
            }
        }
        let shared = model.runs(PageState::Shared);
        if let Some(r) = shared.first()
            && let Fill::Pattern(tag) = model.fill(r.start)
        {
            let run = (r.start..r.end)
                .step_by(g as usize)
                .take_while(|&a| model.fill(a) == Fill::Pattern(tag))
                .count() as u64;
            n.host += 1;
            self.ask(
                Request::Verify {
                    range: MemRange::from_len(r.start, run * g),
                    seed: tag,
                },
                "checkpoint: a shared range",
                &mut lane.evidence,
            )?;
        }
        Ok(())
    }
}

/// A fresh lane over `slice` for `cpu`: CPU 0's sequence is the seed's own,
/// so a one-CPU storm is the same on every lane of one ABI.
pub(super) fn lane(
    cpu: usize,
    seed: u64,
    slice: MemRange,
    granule: u64,
    rule: Rule,
    content: Option<convtest_proto::plan::Content>,
    checkpoint_every: u64,
) -> Lane {
    let seed = if cpu == 0 {
        seed
    } else {
        mix(seed ^ (cpu as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    };
    Lane {
        model: Model::new(slice, granule, rule, content),
        storm: Storm::new(seed, checkpoint_every),
        counts: Counts::default(),
        failure: None,
        evidence: None,
        confirmed_round: [None; 2],
    }
}
