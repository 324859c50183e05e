//! Conversion tests, platform-neutral: they talk only to `dyn Converter`
//! and the host-check channel. Without a converter each is skipped with
//! what the hypervisor probe found.
//!
//! Test pages come from one window in the largest free RAM range above the
//! kernel image, starting on a 2 MiB boundary past the kernel's end (the x86
//! VMM's sw-protected mode keeps RAM below that in a slot that cannot be
//! private): granule-sized slots in the first 2 MiB (one per test, so a test
//! that fails half-way cannot disturb the next), a 2 MiB-aligned 2 MiB
//! range at +2 MiB and a 2 MiB range starting one granule past +4 MiB.

use super::{Ctx, Verdict};
use crate::boot::BootInfo;
use crate::conv::Converter;
use crate::hostcheck::{self, HostError};
use crate::{arch, fail, kprintln, tdiag};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};
use convtest_proto::bench::{BenchLine, cycles_to_ns, percentile};
use convtest_proto::content::{ContentClass, classify};
use convtest_proto::hostcheck::{Request, pattern_word};
use convtest_proto::plan::Plan;
use convtest_proto::prng::mix;
use convtest_proto::range::{MemRange, RangeList, align_up};
use convtest_proto::tracker::PageState;

const TWO_MIB: u64 = 2 << 20;
const WINDOW: u64 = 8 << 20;
/// Slots (granules in the window's first 2 MiB), one per test.
const SLOT_RESET: u64 = 0;
const SLOT_SHARE: u64 = 1;
const SLOT_UNSHARE: u64 = 2;
const SLOT_CONTENT: u64 = 3;
const SLOT_REJECTS: u64 = 4;
const SLOT_SIZES: u64 = 5;
const SLOT_FLIPFLOP: u64 = 6;
const SLOT_COST: u64 = 7;
/// Stays shared during `conv.unshare_private`'s scan: the positive control.
const SLOT_CONTROL: u64 = 8;
const SLOTS: u64 = 9;
/// Repeats per direction in `conv.content`.
const CONTENT_REPEATS: u32 = 3;

/// Everything a conversion test needs, borrowed from the context.
struct T<'a> {
    conv: &'a mut dyn Converter,
    boot: &'static BootInfo,
    plan: Plan<'static>,
    win: Window,
}

#[derive(Clone, Copy)]
struct Window {
    base: u64,
    granule: u64,
}

impl Window {
    fn find(test_ram: &RangeList, kernel_end: u64, granule: u64) -> Result<Window, String> {
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

    fn slot(&self, i: u64) -> MemRange {
        MemRange::from_len(self.base + i * self.granule, self.granule)
    }

    fn aligned_2m(&self) -> MemRange {
        MemRange::from_len(self.base + TWO_MIB, TWO_MIB)
    }

    fn unaligned_2m(&self) -> MemRange {
        MemRange::from_len(self.base + 2 * TWO_MIB + self.granule, TWO_MIB)
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
    match conv.last_reset() {
        Some(Ok(_)) => {}
        Some(Err(e)) => return fail!("reset-to-private failed at boot: {e}"),
        None => return fail!("reset-to-private did not run before the tests"),
    }
    let win = match Window::find(test_ram, boot.kernel.end, conv.granule()) {
        Ok(w) => w,
        Err(why) => return fail!("{why}"),
    };
    let mut t = T {
        conv,
        boot,
        plan: *plan,
        win,
    };
    let verdict = match name {
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
    t.leave_private(verdict)
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

    fn share(&mut self, r: MemRange) -> Step<()> {
        self.expect_state(r, PageState::Private, "before share")?;
        self.conv.share(r).map_err(|e| {
            fail!(
                "share {r}: {e} (issued as {}; expected 0)",
                self.conv.describe(r, PageState::Shared)
            )
        })?;
        self.expect_state(r, PageState::Shared, "after a confirmed share")
    }

    fn unshare(&mut self, r: MemRange) -> Step<()> {
        self.conv.unshare(r).map_err(|e| {
            fail!(
                "unshare {r}: {e} (issued as {}; expected 0)",
                self.conv.describe(r, PageState::Private)
            )
        })?;
        self.expect_state(r, PageState::Private, "after a confirmed unshare")
    }

    /// Host check; a refusal or silence becomes the failing verdict.
    fn host(&self, req: Request, why: &str) -> Step<String> {
        hostcheck::ask(self.plan.host, &req).map_err(|e| match e {
            HostError::Off => Verdict::Skip(format!("{e} ({why})")),
            other => fail!("{why}: {req}: {other}"),
        })
    }

    /// Tests end with every window granule private, whatever happened: the
    /// next test (and a reboot's ledger) starts from a known state.
    fn leave_private(&mut self, verdict: Verdict) -> Verdict {
        let w = self.win;
        let mut areas: Vec<MemRange> = (0..SLOTS).map(|i| w.slot(i)).collect();
        areas.push(w.aligned_2m());
        areas.push(w.unaligned_2m());
        let mut leftover = Vec::new();
        // Granule by granule: only what the tracker says is shared, since
        // some ABIs refuse to unshare a granule that is already private.
        for r in areas {
            for g in (r.start..r.end).step_by(w.granule as usize) {
                let g = MemRange::from_len(g, w.granule);
                if self.conv.state(g.start) == Some(PageState::Shared)
                    && let Err(e) = self.conv.unshare(g)
                {
                    leftover.push(format!("{g}: {e}"));
                }
            }
        }
        match (verdict, leftover.is_empty()) {
            (v, true) => v,
            (Verdict::Fail(why), false) => Verdict::Fail(format!(
                "{why}; cleanup could not unshare {}",
                leftover.join(", ")
            )),
            (_, false) => fail!(
                "test pages left shared, unshare failed: {}",
                leftover.join(", ")
            ),
        }
    }

    // ---- the tests -----------------------------------------------------------

    fn reset_private(&mut self) -> Verdict {
        run_steps(|| {
            let rep = match self.conv.last_reset() {
                Some(Ok(r)) => r,
                _ => return Err(fail!("no successful reset recorded")),
            };
            let shared = self.conv.count(PageState::Shared);
            let total = shared + self.conv.count(PageState::Private);
            if shared != 0 {
                return Err(fail!(
                    "after the reset the tracker still has {shared} of {total} granules shared"
                ));
            }
            tdiag!(
                "reset at boot: method={} ranges={} granules={} calls={}; tracker: {total} granules private",
                rep.method,
                rep.ranges,
                rep.pages,
                rep.calls
            );
            let p = self.win.slot(SLOT_RESET);
            // Touch the page first: pKVM hands a page to the guest only on
            // its first access, so an untouched page is still the host's
            // (readable zeros) and the check would prove nothing.
            let canary = self.seed(SLOT_RESET) | 1;
            self.fill_const(p, canary);
            match self.host(
                Request::NoRead { range: p, canary },
                "the host must be refused a private page",
            ) {
                Ok(detail) => Ok(format!("host: {detail}")),
                Err(Verdict::Skip(why)) => {
                    tdiag!("host read check not run: {why}");
                    Ok(String::new())
                }
                Err(v) => Err(v),
            }
        })
    }

    fn share_verify(&mut self) -> Verdict {
        if !self.plan.host {
            return Verdict::Skip(HostError::Off.to_string());
        }
        run_steps(|| {
            let p = self.win.slot(SLOT_SHARE);
            let seed = self.seed(p.start);
            self.share(p)?;
            // Written after the share: the conversion may clear the page.
            self.fill(p, seed);
            let detail = self.host(
                Request::Verify { range: p, seed },
                "the host must see the guest's pattern in the shared page",
            )?;
            self.unshare(p)?;
            tdiag!("shared {p}: host says: {detail}");
            Ok(String::new())
        })
    }

    fn unshare_private(&mut self) -> Verdict {
        if !self.plan.host {
            return Verdict::Skip(HostError::Off.to_string());
        }
        run_steps(|| {
            let p = self.win.slot(SLOT_UNSHARE);
            let control = self.win.slot(SLOT_CONTROL);
            let seed = self.seed(p.start);
            self.share(p)?;
            self.share(control)?;
            self.fill(p, seed);
            // Without this the checks below could pass because the host
            // never saw this page at all.
            self.host(
                Request::Verify { range: p, seed },
                "while shared the host must see the page",
            )?;
            self.unshare(p)?;
            let canary = mix(seed ^ arch::cycles()) | 1;
            self.fill_const(p, canary);
            self.fill(control, seed);
            let scan = self.host(
                Request::Scan { canary },
                "a canary written after unshare must be invisible to the host",
            )?;
            let noread = self.host(
                Request::NoRead { range: p, canary },
                "the host must be refused the unshared page",
            )?;
            // Positive control: the same canary in a page that is still
            // shared must be found, or the scan above proved nothing.
            self.fill_const(control, canary);
            match hostcheck::ask(self.plan.host, &Request::Scan { canary }) {
                Err(HostError::Failed { detail, .. }) => {
                    tdiag!("control: canary in still-shared {control} found: {detail}");
                }
                Ok(detail) => {
                    return Err(fail!(
                        "the host's scan missed the canary in still-shared {control} ({detail}): \
                         its earlier 'not found' proves nothing"
                    ));
                }
                Err(e) => return Err(fail!("control scan: {e}")),
            }
            self.unshare(control)?;
            tdiag!("canary {canary:#x} in unshared {p}: scan: {scan}; read: {noread}");
            Ok(String::new())
        })
    }

    fn content(&mut self) -> Verdict {
        run_steps(|| {
            let p = self.win.slot(SLOT_CONTENT);
            let mut to_shared = Vec::new();
            let mut to_private = Vec::new();
            for i in 0..u64::from(CONTENT_REPEATS) {
                let a = self.seed(p.start ^ (i << 1));
                self.fill(p, a);
                self.share(p)?;
                to_shared.push(self.class(p, a));
                let b = self.seed(p.start ^ (i << 1) ^ 1);
                self.fill(p, b);
                self.unshare(p)?;
                to_private.push(self.class(p, b));
            }
            let s = self.judge("private->shared", &to_shared)?;
            let u = self.judge("shared->private", &to_private)?;
            Ok(format!(
                "private->shared {s}, shared->private {u} ({CONTENT_REPEATS} times each){}",
                self.plan.content.map_or(String::new(), |c| format!(
                    ", as content={} says",
                    c.as_str()
                ))
            ))
        })
    }

    /// One class for every repeat, not `Neither`, and the plan's if it names one.
    fn judge(&self, dir: &str, seen: &[ContentClass]) -> Step<&'static str> {
        let Some(&first) = seen.first() else {
            return Err(fail!("{dir}: no conversion was observed"));
        };
        if let Some((i, c)) = seen
            .iter()
            .enumerate()
            .find(|(_, c)| c.as_content().is_none())
        {
            return Err(fail!("{dir} conversion {}: {c}", i + 1));
        }
        if let Some((i, c)) = seen.iter().enumerate().find(|(_, c)| !c.same_kind(first)) {
            return Err(fail!(
                "{dir}: conversion 1 left the page {first}, conversion {} {c}",
                i + 1
            ));
        }
        if let Some(want) = self.plan.content
            && first.as_content() != Some(want)
        {
            return Err(fail!(
                "{dir}: page {first}, but the plan says content={}",
                want.as_str()
            ));
        }
        Ok(first.name())
    }

    fn rejects(&mut self) -> Verdict {
        run_steps(|| {
            let p = self.win.slot(SLOT_REJECTS);
            let before = self.conv.count(PageState::Shared);
            let cases = self.conv.rejections(p);
            let mut wrong = Vec::new();
            for c in &cases {
                tdiag!(
                    "{}: {} -> {} (expected {})",
                    c.what,
                    c.call,
                    c.got,
                    c.expected
                );
                if c.got != c.expected {
                    wrong.push(format!("{} answered {} not {}", c.what, c.got, c.expected));
                }
            }
            if cases.is_empty() {
                return Err(fail!("the backend issued no malformed calls"));
            }
            if !wrong.is_empty() {
                return Err(fail!("{}", wrong.join("; ")));
            }
            if self.conv.count(PageState::Shared) != before {
                return Err(fail!("the tracker changed although every call was refused"));
            }
            Ok(format!(
                "{} malformed calls refused as expected",
                cases.len()
            ))
        })
    }

    fn sizes(&mut self) -> Verdict {
        run_steps(|| {
            let w = self.win;
            let cases = [
                ("1 granule", w.slot(SLOT_SIZES)),
                ("2 MiB, granule-aligned only", w.unaligned_2m()),
                ("2 MiB, 2 MiB-aligned", w.aligned_2m()),
            ];
            let base = self.conv.count(PageState::Shared);
            for (what, r) in cases {
                let n = r.len() / w.granule;
                self.share(r)?;
                let shared = self.conv.count(PageState::Shared);
                if shared != base + n {
                    return Err(fail!(
                        "{what}: tracker counts {} newly shared granules, expected {n}",
                        shared - base
                    ));
                }
                let seed = self.seed(r.start);
                self.fill(r, seed);
                let host = match self.host(
                    Request::Verify { range: r, seed },
                    "the host must see the whole shared range",
                ) {
                    Ok(_) => "host verified",
                    Err(Verdict::Skip(_)) => "host check off",
                    Err(v) => return Err(v),
                };
                self.unshare(r)?;
                tdiag!(
                    "{what}: {r}, {n} granule(s) via {}: ok, {host}",
                    self.conv.describe(r, PageState::Shared)
                );
            }
            if self.conv.count(PageState::Shared) != base {
                return Err(fail!("tracker not back to {base} shared granules"));
            }
            Ok(String::new())
        })
    }

    fn flipflop(&mut self) -> Verdict {
        run_steps(|| {
            let p = self.win.slot(SLOT_FLIPFLOP);
            let iters = self.plan.iters.max(1);
            let (mut s_class, mut u_class) = (None, None);
            for i in 0..iters {
                let a = self.seed(p.start ^ (u64::from(i) << 1));
                self.fill(p, a);
                self.share(p).map_err(|v| at_iter(v, i))?;
                let c = self.class(p, a);
                let s = self
                    .judge("private->shared", &[*s_class.get_or_insert(c), c])
                    .map_err(|v| at_iter(v, i))?;
                let b = self.seed(p.start ^ (u64::from(i) << 1) ^ 1);
                self.fill(p, b);
                self.unshare(p).map_err(|v| at_iter(v, i))?;
                let c = self.class(p, b);
                let u = self
                    .judge("shared->private", &[*u_class.get_or_insert(c), c])
                    .map_err(|v| at_iter(v, i))?;
                if i + 1 == iters {
                    return Ok(format!(
                        "{iters} share/unshare pairs of {p}: after share always {s}, after unshare always {u}"
                    ));
                }
            }
            Ok(String::new())
        })
    }

    fn cost(&mut self) -> Verdict {
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
                tdiag!("{text}");
            }
            Verdict::Pass
        }
        Err(v) => v,
    }
}
