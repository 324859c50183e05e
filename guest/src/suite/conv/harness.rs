//! `T`, what every conversion test works with, and the steps they share:
//! memory access to the window, conversions checked against the tracker,
//! host checks that weigh the host's evidence, and the cleanup that leaves
//! every window granule private whatever happened.

use super::expect;
use super::window::Window;
use crate::arch::{Current, Platform};
use crate::boot::BootInfo;
use crate::conv::Converter;
use crate::hostcheck::{self, HostError, Reply};
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use convtest_proto::content::{ContentClass, classify};
use convtest_proto::hostcheck::{Evidence, Request, pattern_word};
use convtest_proto::plan::Plan;
use convtest_proto::prng::mix;
use convtest_proto::range::MemRange;
use convtest_proto::tracker::{PageState, Target};

/// Everything a conversion test needs, borrowed from the context.
pub(super) struct T<'a> {
    pub(super) conv: &'a mut dyn Converter,
    pub(super) boot: &'static BootInfo,
    pub(super) plan: Plan<'static>,
    pub(super) win: Window,
    /// The weakest evidence among the host's answers so far.
    pub(super) evidence: Option<Evidence>,
}

/// `Err(Verdict)` short-circuits a test with that verdict.
pub(super) type Step<T> = Result<T, Verdict>;

impl T<'_> {
    // ---- memory access ---------------------------------------------------

    /// Where the word at `pa` is reached now: through the converter's shared
    /// view while the tracker calls its granule shared (a TD's alias, an
    /// SNP guest's C-bit-clear mapping; the same address on KVM and pKVM).
    /// Without a view (KVM, pKVM) the tracker is not asked.
    pub(super) fn word(&self, pa: u64) -> *mut u64 {
        if let Some(view) = self.conv.shared_view()
            && self.conv.state(pa) == Some(PageState::Shared)
        {
            return view.va(pa) as *mut u64;
        }
        self.boot.phys_to_virt(pa) as *mut u64
    }

    /// Writes `pattern_word(seed, pa)` into every word of `r`.
    pub(super) fn fill(&self, r: MemRange, seed: u64) {
        for pa in (r.start..r.end).step_by(8) {
            // SAFETY: `r` lies in the test window: free RAM above the kernel,
            // not heap or boot data, identity/offset-mapped, owned by this
            // test; word-aligned.
            unsafe { self.word(pa).write_volatile(pattern_word(seed, pa)) };
        }
    }

    pub(super) fn fill_const(&self, r: MemRange, v: u64) {
        for pa in (r.start..r.end).step_by(8) {
            // SAFETY: as in `fill`.
            unsafe { self.word(pa).write_volatile(v) };
        }
    }

    /// Reads `r` back against the pattern of `seed`.
    pub(super) fn class(&self, r: MemRange, seed: u64) -> ContentClass {
        classify((r.start..r.end).step_by(8).map(|pa| {
            // SAFETY: as in `fill`.
            let got = unsafe { self.word(pa).read_volatile() };
            (pa, got, pattern_word(seed, pa))
        }))
    }

    pub(super) fn seed(&self, salt: u64) -> u64 {
        mix(self.plan.seed ^ mix(salt))
    }

    /// A fresh 8-byte value no page holds by chance (odd: never zero).
    pub(super) fn canary(&self, salt: u64) -> u64 {
        mix(self.seed(salt) ^ Current::cycles()) | 1
    }

    // ---- conversions with their checks -------------------------------------

    pub(super) fn expect_state(&self, r: MemRange, want: PageState, when: &str) -> Step<()> {
        for a in [r.start, r.end - self.win.granule] {
            let got = self.conv.state(a);
            if got != Some(want) {
                return Err(fail!(
                    "{when}: tracker says {a:#x} is {got:?}, expected {want:?}"
                ));
            }
        }
        Ok(())
    }

    /// Unknown granules of `r` (left by an earlier failed conversion) are
    /// resolved before `r` is used.
    pub(super) fn resolve(&mut self, r: MemRange) -> Step<()> {
        match self.conv.resolve(r) {
            0 => Ok(()),
            n => Err(fail!(
                "{n} granule(s) of {r} are of unknown state and the hypervisor refused to make them private"
            )),
        }
    }

    pub(super) fn share(&mut self, r: MemRange) -> Step<()> {
        self.resolve(r)?;
        self.expect_state(r, PageState::Private, "before share")?;
        self.conv.share(r).map_err(|e| {
            fail!(
                "share {r}: {e} (issued as {}; expected 0)",
                self.conv
                    .calls_for(r, convtest_proto::tracker::Target::Shared)
                    .first
            )
        })?;
        self.expect_state(r, PageState::Shared, "after a confirmed share")
    }

    pub(super) fn unshare(&mut self, r: MemRange) -> Step<()> {
        self.conv.unshare(r).map_err(|e| {
            fail!(
                "unshare {r}: {e} (issued as {}; expected 0)",
                self.conv
                    .calls_for(r, convtest_proto::tracker::Target::Private)
                    .first
            )
        })?;
        self.expect_state(r, PageState::Private, "after a confirmed unshare")
    }

    /// Where the ABI can tell a granule's state (pKVM), one probe per
    /// granule of `r`, each of which must refuse to convert it to `to`
    /// again; `None` when the ABI cannot tell (only the host can say).
    pub(super) fn probe_states(
        &mut self,
        r: MemRange,
        to: Target,
        why: &str,
    ) -> Step<Option<String>> {
        let abi = self.conv.name();
        let g = self.win.granule;
        if expect::state_probe(abi, r.start, to).is_none() {
            return Ok(None);
        }
        for a in (r.start..r.end).step_by(g as usize) {
            let Some((call, want, from)) = expect::state_probe(abi, a, to) else {
                continue;
            };
            let got = self
                .conv
                .raw(call)
                .map_err(|_| fail!("{why}: {abi} cannot issue its own state probe {call}"))?;
            if got != want {
                return Err(fail!(
                    "{why}: {from} answered {got} to {call} for granule {a:#x} of {r}, which the \
                     tracker calls {}: a {} granule answers {want}, so the conversion left it {}",
                    to.as_str(),
                    to.as_str(),
                    match to {
                        Target::Shared => "private",
                        Target::Private => "shared",
                    }
                ));
            }
        }
        Ok(Some(format!(
            "{} {} granule(s) of {r}: each refused again by pKVM",
            r.len() / g,
            to.as_str()
        )))
    }

    /// After a conversion of `r` to `to` that the tracker took whole, the
    /// platform is asked about every granule of it: where the ABI can tell
    /// (pKVM), one state probe per granule at EL2, which must refuse to
    /// convert it again; otherwise the host, over all of `r` — it must read
    /// the pattern written into a shared range, and not see the canary
    /// written into a private one. Overwrites `r`; callers read what the
    /// conversion left first. Says what was asked.
    pub(super) fn confirm(&mut self, r: MemRange, to: Target, why: &str) -> Step<String> {
        if let Some(probed) = self.probe_states(r, to, why)? {
            return Ok(probed);
        }
        let req = match to {
            Target::Shared => {
                let seed = self.seed(r.start ^ 0x5eed_c0f1);
                self.fill(r, seed);
                Request::Verify { range: r, seed }
            }
            Target::Private => {
                let canary = self.canary(r.start ^ 0xc0f1);
                self.fill_const(r, canary);
                Request::NoRead { range: r, canary }
            }
        };
        match self.host(req, why) {
            Ok(detail) => Ok(format!("{} {r}: host: {detail}", to.as_str())),
            // Nobody to ask: the test goes on, and says so.
            Err(Verdict::Skip(_)) => Ok(format!("{} {r}: not asked (host=off)", to.as_str())),
            Err(v) => Err(v),
        }
    }

    pub(super) fn weigh(&mut self, evidence: Option<Evidence>) {
        // A host that names no evidence proves no more than bookkeeping.
        let e = evidence.unwrap_or(Evidence::Bookkeeping);
        self.evidence = Some(self.evidence.map_or(e, |old| old.weakest(e)));
    }

    /// Host check that must answer `ok`; a refusal or silence becomes the
    /// failing verdict.
    pub(super) fn host(&mut self, req: Request, why: &str) -> Step<String> {
        match hostcheck::ask(hostcheck::Host::of(&self.plan), &req) {
            Ok(Reply { evidence, detail }) => {
                self.weigh(evidence);
                Ok(detail)
            }
            Err(HostError::Off) => Err(Verdict::Skip(format!("{} ({why})", HostError::Off))),
            Err(other) => {
                if let HostError::Failed { evidence, .. } = &other {
                    self.weigh(*evidence);
                }
                Err(fail!("{why}: {req}: {other}"))
            }
        }
    }

    /// Host check that must answer `fail` (a positive control: the host
    /// must see what it can see, or the checks that passed prove nothing).
    pub(super) fn host_sees(&mut self, req: Request, why: &str) -> Step<String> {
        match hostcheck::ask(hostcheck::Host::of(&self.plan), &req) {
            Err(HostError::Failed {
                evidence, detail, ..
            }) => {
                self.weigh(evidence);
                Ok(detail)
            }
            Ok(Reply { evidence, detail }) => {
                self.weigh(evidence);
                Err(fail!("{why}: {req}: the host answered ok ({detail})"))
            }
            Err(HostError::Off) => Err(Verdict::Skip(format!("{} ({why})", HostError::Off))),
            Err(other) => Err(fail!("{why}: {req}: {other}")),
        }
    }

    /// Tests end with every window granule private, whatever happened: the
    /// next test (and a reboot's ledger) starts from a known state.
    pub(super) fn leave_private(&mut self, verdict: Verdict) -> Verdict {
        let mut leftover = Vec::new();
        for r in self.win.areas() {
            if self.conv.resolve(r) != 0 {
                leftover.push(format!(
                    "{r}: unknown state the hypervisor refused to resolve"
                ));
            }
            // Run by run: what the tracker says is shared, made private
            // whatever the platform has (a failed test may have left the
            // two disagreeing: pKVM refuses to unshare a granule a faulty
            // share never shared, which must not stop the rest, nor poison
            // the next test's cleanup).
            for run in shared_runs(&*self.conv, r) {
                if let Err(e) = self.conv.make_private(run) {
                    leftover.push(format!("{run}: {e}"));
                }
            }
        }
        match (verdict, leftover.is_empty()) {
            (v, true) => v,
            (Verdict::Fail(why), false) => Verdict::Fail(format!(
                "{why}; cleanup could not make private {}",
                leftover.join(", ")
            )),
            (_, false) => fail!("test pages left shared or unknown: {}", leftover.join(", ")),
        }
    }

    /// A pass whose host side rested on bookkeeping alone is not a plain
    /// pass: the result line says so.
    pub(super) fn note_evidence(&self, verdict: Verdict) -> Verdict {
        match (verdict, self.evidence) {
            (Verdict::Pass, Some(Evidence::Bookkeeping)) => Verdict::PassNoted(
                "bookkeeping only: the VMM's page tracking, not the kernel or hypervisor, vouched for the host's side"
                    .to_string(),
            ),
            (v, _) => v,
        }
    }
}

/// The runs of `r` the tracker calls shared.
pub(super) fn shared_runs(conv: &dyn Converter, r: MemRange) -> Vec<MemRange> {
    let g = conv.granule();
    let mut runs: Vec<MemRange> = vec![];
    for a in (r.start..r.end).step_by(g as usize) {
        if conv.state(a) == Some(PageState::Shared) {
            match runs.last_mut() {
                Some(last) if last.end == a => last.end += g,
                _ => runs.push(MemRange::from_len(a, g)),
            }
        }
    }
    runs
}

pub(super) fn at_iter(v: Verdict, i: u32) -> Verdict {
    match v {
        Verdict::Fail(why) => Verdict::Fail(format!("iteration {}: {why}", i + 1)),
        other => other,
    }
}

/// Runs a test body: `Ok(text)` passes (text, if any, as a diagnostic).
pub(super) fn run_steps(body: impl FnOnce() -> Step<String>) -> Verdict {
    match body() {
        Ok(text) => {
            if !text.is_empty() {
                tdiag!("{text}");
            }
            Verdict::Pass
        }
        Err(v) => v,
    }
}
