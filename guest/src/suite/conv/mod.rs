//! Conversion tests, platform-neutral: they talk only to `dyn Converter`
//! and the host-check channel. Without a converter each is skipped with
//! what the hypervisor probe found. What each ABI should answer lives in
//! `expect.rs`, not in the ABIs under test.
//!
//! Test pages come from one window in the largest free RAM range above the
//! kernel image, starting on a 2 MiB boundary past the kernel's end (the x86
//! VMM's sw-protected mode keeps RAM below that in a slot that cannot be
//! private): granule-sized slots in the first 2 MiB (one per test, so a test
//! that fails half-way cannot disturb the next), a 2 MiB-aligned 2 MiB
//! range at +2 MiB and a 2 MiB range starting one granule past +4 MiB.
//!
//! Every host check's answer names its evidence; a test whose host side
//! rested on the VMM's bookkeeping alone says so on its result line.

mod abi;
mod content;
mod cost;
mod expect;
mod overlap;
mod race;
mod reboot;
mod reset;
mod storm;
mod storm_cpu;
mod visibility;

pub(super) use reboot::run as run_reboot;

use super::{Ctx, Verdict};
use crate::boot::BootInfo;
use crate::conv::Converter;
use crate::fail;
use crate::hostcheck::{self, HostError, Reply};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};
use convtest_proto::content::{ContentClass, classify};
use convtest_proto::hostcheck::{Evidence, Request, pattern_word};
use convtest_proto::plan::Plan;
use convtest_proto::prng::mix;
use convtest_proto::range::{MemRange, RangeList, align_up};
use convtest_proto::tracker::PageState;

const TWO_MIB: u64 = 2 << 20;
pub(in crate::suite) const WINDOW: u64 = 8 << 20;
/// Slots (granules in the window's first 2 MiB), one per test.
const SLOT_RESET: u64 = 0;
const SLOT_SHARE: u64 = 1;
const SLOT_UNSHARE: u64 = 2;
const SLOT_CONTENT: u64 = 3;
const SLOT_REJECTS: u64 = 4;
const SLOT_SIZES: u64 = 5;
const SLOT_FLIPFLOP: u64 = 6;
const SLOT_COST: u64 = 7;
/// Stays shared during `conv.unshare_private`'s checks: the positive control.
const SLOT_CONTROL: u64 = 8;
const SLOTS: u64 = 9;

/// Everything a conversion test needs, borrowed from the context.
struct T<'a> {
    conv: &'a mut dyn Converter,
    boot: &'static BootInfo,
    plan: Plan<'static>,
    win: Window,
    /// The weakest evidence among the host's answers so far.
    evidence: Option<Evidence>,
}

/// The 8 MiB of free RAM the conversion tests (and, after them, the bench
/// suite) work in.
#[derive(Clone, Copy)]
pub(in crate::suite) struct Window {
    pub base: u64,
    pub granule: u64,
}

impl Window {
    pub(in crate::suite) fn find(
        test_ram: &RangeList,
        kernel_end: u64,
        granule: u64,
    ) -> Result<Window, String> {
        if granule * SLOTS > TWO_MIB {
            return Err(format!(
                "granule {granule} too large: {SLOTS} test slots must fit in 2 MiB"
            ));
        }
        let floor = align_up(kernel_end, TWO_MIB);
        let best = test_ram
            .iter()
            .map(|r| MemRange::new(r.start.max(floor), r.end).align_inward(TWO_MIB))
            .filter(|r| !r.is_empty())
            .max_by_key(MemRange::len);
        match best {
            Some(r) if r.len() >= WINDOW => Ok(Window {
                base: r.start,
                granule,
            }),
            other => Err(format!(
                "no {WINDOW}-byte 2 MiB-aligned window in free RAM above {floor:#x} (largest: {})",
                other.map_or(0, |r| r.len())
            )),
        }
    }

    pub(in crate::suite) fn slot(&self, i: u64) -> MemRange {
        MemRange::from_len(self.base + i * self.granule, self.granule)
    }

    pub(in crate::suite) fn aligned_2m(&self) -> MemRange {
        MemRange::from_len(self.base + TWO_MIB, TWO_MIB)
    }

    fn unaligned_2m(&self) -> MemRange {
        MemRange::from_len(self.base + 2 * TWO_MIB + self.granule, TWO_MIB)
    }

    /// Everything the tests convert.
    fn areas(&self) -> Vec<MemRange> {
        let mut areas: Vec<MemRange> = (0..SLOTS).map(|i| self.slot(i)).collect();
        areas.push(self.aligned_2m());
        areas.push(self.unaligned_2m());
        areas
    }
}

pub fn run(name: &str, ctx: &mut Ctx) -> Verdict {
    let Ctx {
        boot,
        plan,
        test_ram,
        converter,
        ..
    } = ctx;
    let conv = match converter {
        Err(none) => return Verdict::Skip(none.to_string()),
        Ok(c) => &mut **c,
    };
    match conv.boot_reset() {
        Some(Ok(_)) => {}
        Some(Err(e)) => return fail!("reset-to-private failed at boot: {e}"),
        None => return fail!("reset-to-private did not run before the tests"),
    }
    let win = match Window::find(test_ram, boot.kernel.end, conv.granule()) {
        Ok(w) => w,
        Err(why) => return fail!("{why}"),
    };
    let storm_area = name
        .starts_with("stress.")
        .then(|| storm::area(test_ram, &win, storm::area_bytes(crate::smp::cpus())));
    let mut t = T {
        conv,
        boot,
        plan: *plan,
        win,
        evidence: None,
    };
    let verdict = match name {
        "stress.storm" => t.storm(storm_area.unwrap_or_else(|| Err(String::new()))),
        "stress.race" => t.race(storm_area.unwrap_or_else(|| Err(String::new()))),
        "stress.overlap" => t.overlap(storm_area.unwrap_or_else(|| Err(String::new()))),
        "conv.reset_private" => t.reset_private(),
        "conv.share_verify" => t.share_verify(),
        "conv.unshare_private" => t.unshare_private(),
        "conv.content" => t.content(),
        "conv.rejects" => t.rejects(),
        "conv.sizes" => t.sizes(),
        "conv.flipflop" => t.flipflop(),
        "conv.cost" => t.cost(),
        other => fail!("{other}: no such conversion test in this guest"),
    };
    let verdict = t.leave_private(verdict);
    t.note_evidence(verdict)
}

/// `Err(Verdict)` short-circuits a test with that verdict.
type Step<T> = Result<T, Verdict>;

impl T<'_> {
    // ---- memory access ---------------------------------------------------

    fn word(&self, pa: u64) -> *mut u64 {
        self.boot.phys_to_virt(pa) as *mut u64
    }

    /// Writes `pattern_word(seed, pa)` into every word of `r`.
    fn fill(&self, r: MemRange, seed: u64) {
        for pa in (r.start..r.end).step_by(8) {
            // SAFETY: `r` lies in the test window: free RAM above the kernel,
            // not heap or boot data, identity/offset-mapped, owned by this
            // test; word-aligned.
            unsafe { self.word(pa).write_volatile(pattern_word(seed, pa)) };
        }
    }

    fn fill_const(&self, r: MemRange, v: u64) {
        for pa in (r.start..r.end).step_by(8) {
            // SAFETY: as in `fill`.
            unsafe { self.word(pa).write_volatile(v) };
        }
    }

    /// Reads `r` back against the pattern of `seed`.
    fn class(&self, r: MemRange, seed: u64) -> ContentClass {
        classify((r.start..r.end).step_by(8).map(|pa| {
            // SAFETY: as in `fill`.
            let got = unsafe { self.word(pa).read_volatile() };
            (pa, got, pattern_word(seed, pa))
        }))
    }

    fn seed(&self, salt: u64) -> u64 {
        mix(self.plan.seed ^ mix(salt))
    }

    /// A fresh 8-byte value no page holds by chance (odd: never zero).
    fn canary(&self, salt: u64) -> u64 {
        mix(self.seed(salt) ^ crate::arch::cycles()) | 1
    }

    // ---- conversions with their checks -------------------------------------

    fn expect_state(&self, r: MemRange, want: PageState, when: &str) -> Step<()> {
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
    fn resolve(&mut self, r: MemRange) -> Step<()> {
        match self.conv.resolve(r) {
            0 => Ok(()),
            n => Err(fail!(
                "{n} granule(s) of {r} are of unknown state and the hypervisor refused to make them private"
            )),
        }
    }

    fn share(&mut self, r: MemRange) -> Step<()> {
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

    fn unshare(&mut self, r: MemRange) -> Step<()> {
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

    fn weigh(&mut self, evidence: Option<Evidence>) {
        // A host that names no evidence proves no more than bookkeeping.
        let e = evidence.unwrap_or(Evidence::Bookkeeping);
        self.evidence = Some(self.evidence.map_or(e, |old| old.weakest(e)));
    }

    /// Host check that must answer `ok`; a refusal or silence becomes the
    /// failing verdict.
    fn host(&mut self, req: Request, why: &str) -> Step<String> {
        match hostcheck::ask(self.plan.host, &req) {
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
    fn host_sees(&mut self, req: Request, why: &str) -> Step<String> {
        match hostcheck::ask(self.plan.host, &req) {
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
    fn leave_private(&mut self, verdict: Verdict) -> Verdict {
        let mut leftover = Vec::new();
        for r in self.win.areas() {
            if self.conv.resolve(r) != 0 {
                leftover.push(format!(
                    "{r}: unknown state the hypervisor refused to resolve"
                ));
            }
            // Run by run: only what the tracker says is shared, since some
            // ABIs refuse to unshare a granule that is already private.
            for run in shared_runs(&*self.conv, r) {
                if let Err(e) = self.conv.unshare(run) {
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
    fn note_evidence(&self, verdict: Verdict) -> Verdict {
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
fn shared_runs(conv: &dyn Converter, r: MemRange) -> Vec<MemRange> {
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

fn at_iter(v: Verdict, i: u32) -> Verdict {
    match v {
        Verdict::Fail(why) => Verdict::Fail(format!("iteration {}: {why}", i + 1)),
        other => other,
    }
}

/// Runs a test body: `Ok(text)` passes (text, if any, as a diagnostic).
fn run_steps(body: impl FnOnce() -> Step<String>) -> Verdict {
    match body() {
        Ok(text) => {
            if !text.is_empty() {
                crate::tdiag!("{text}");
            }
            Verdict::Pass
        }
        Err(v) => v,
    }
}
