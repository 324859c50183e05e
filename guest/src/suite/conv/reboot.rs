//! The reboot series' tests (`reboots=N`): `reboot.leave_dirty` at the end
//! of every boot but the last, `reset.*` at the start of every later one.
//!
//! The dirty state lives in its own 8 MiB area right above the conversion
//! window, so the conversion tests of either boot never touch it; what each
//! boot leaves there is `DirtySet::new(seed, boot, …)`, recomputed by the
//! next boot (the reset may have wiped any record of it). The claims are
//! the platform's: the host's scan and reads, and the converter's own probe
//! where the ABI has one — never the tracker, which a reboot starts afresh.
//!
//! What each boot should find is keyed by the reset policy the VMM names
//! (`reset=`; absent: QEMU, whose system reset keeps RAM): under `keep`
//! private pages keep their bytes and only the guest's reset makes the
//! shared ones private; under `private` and `recreate` every page reads
//! zero. A VMM that names a policy and does not apply it fails here.

use super::expect;
use super::harness::{T, run_steps};
use super::window::{WINDOW, Window};
use crate::arch::{Current, Platform};
use crate::conv::Converter;
use crate::report::tdiag;
use crate::suite::ctx::Ctx;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use convtest_proto::content::{ContentClass, classify};
use convtest_proto::hostcheck::Request;
use convtest_proto::plan::{Content, Plan, ResetPolicy};
use convtest_proto::range::{MemRange, RangeList};
use convtest_proto::reboot::{AREA, DirtySet};
use convtest_proto::tracker::PageState;

/// The dirty area: 8 MiB right above the conversion window.
fn area(test_ram: &RangeList, win: &Window) -> Result<MemRange, String> {
    let a = MemRange::from_len(win.base + WINDOW, AREA);
    if test_ram.covers(&a) {
        Current::first_touch(a);
        Ok(a)
    } else {
        Err(format!(
            "no room for the {} MiB dirty area above the conversion window at {:#x}: give the guest more RAM",
            AREA >> 20,
            win.base
        ))
    }
}

fn policy(plan: &Plan<'_>) -> ResetPolicy {
    plan.reset.unwrap_or(ResetPolicy::Keep)
}

/// What `policy` makes of the bytes the previous boot left in a private page.
fn private_expected(policy: ResetPolicy) -> ContentClass {
    if policy.keeps_memory() {
        ContentClass::Preserved
    } else {
        ContentClass::Zeroed
    }
}

fn word(ctx_boot: &crate::boot::BootInfo, pa: u64) -> *mut u64 {
    ctx_boot.phys_to_virt(pa) as *mut u64
}

fn fill(boot: &crate::boot::BootInfo, r: MemRange, v: u64) {
    for pa in (r.start..r.end).step_by(8) {
        // SAFETY: `r` lies in the dirty area: free RAM above the conversion
        // window, not heap, boot data or persistent pages, mapped at the
        // boot's offset, owned by the reboot tests; word-aligned.
        unsafe { word(boot, pa).write_volatile(v) };
    }
    Current::clean_dcache(boot.phys_to_virt(r.start) as u64, r.len());
}

/// `r` against the constant `v`: preserved, zeroed or neither.
fn class(boot: &crate::boot::BootInfo, r: MemRange, v: u64) -> ContentClass {
    classify((r.start..r.end).step_by(8).map(|pa| {
        // SAFETY: as in `fill`.
        let got = unsafe { word(boot, pa).read_volatile() };
        (pa, got, v)
    }))
}

fn list(rs: &[MemRange]) -> String {
    rs.iter()
        .map(|r| format!("{r}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(name: &str, ctx: &mut Ctx) -> Verdict {
    let granule = ctx
        .converter
        .as_ref()
        .map_or(Current::PAGE_SIZE, |c| c.granule());
    let found = Window::find(&ctx.test_ram, ctx.boot.kernel.end, granule)
        .and_then(|win| area(&ctx.test_ram, &win).map(|a| (win, a)));
    let (win, area) = match found {
        Ok(w) => w,
        Err(why) => return fail!("{why}"),
    };
    let plan = ctx.plan;
    let boot = ctx.boot;
    match (name, &mut ctx.converter) {
        ("reboot.leave_dirty", Err(none)) => {
            let d = DirtySet::new(plan.seed, plan.boot, area.start, granule);
            for &r in &d.private {
                fill(boot, r, d.private_canary);
            }
            Verdict::PassNoted(format!(
                "no converter ({none}): nothing shared; private canaries at {}",
                list(&d.private)
            ))
        }
        ("reset.content", Err(none)) => {
            let d = DirtySet::new(plan.seed, plan.boot - 1, area.start, granule);
            run_steps(|| {
                private_content(boot, &plan, &d).map(|s| format!("{s}; no converter ({none})"))
            })
        }
        (_, Err(none)) => Verdict::Skip(none.to_string()),
        (_, Ok(c)) => {
            let conv: &mut dyn Converter = &mut **c;
            match conv.boot_reset() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return fail!("reset-to-private failed at boot: {e}"),
                None => return fail!("reset-to-private did not run before the tests"),
            }
            let mut t = T {
                conv,
                boot,
                plan,
                win,
                evidence: None,
            };
            let v = match name {
                "reboot.leave_dirty" => t.leave_dirty(area),
                "reset.private_again" => t.private_again(area),
                "reset.calls" => t.reset_calls(area),
                "reset.content" => t.reset_content(area),
                other => fail!("{other}: no such reboot test in this guest"),
            };
            t.note_evidence(v)
        }
    }
}

/// The previous boot's private canaries against the policy.
fn private_content(
    boot: &crate::boot::BootInfo,
    plan: &Plan<'_>,
    d: &DirtySet,
) -> Result<String, Verdict> {
    let want = private_expected(policy(plan));
    for &r in &d.private {
        let got = class(boot, r, d.private_canary);
        if !got.same_kind(want) {
            return Err(fail!(
                "private page {r} after a reset with policy {}: {got}; expected {} (the previous boot's canary {:#x})",
                policy(plan).as_str(),
                want.name(),
                d.private_canary
            ));
        }
    }
    Ok(format!(
        "reset={}: the previous boot's private canaries {} ({})",
        policy(plan).as_str(),
        want.name(),
        list(&d.private)
    ))
}

impl T<'_> {
    fn previous(&self, area: MemRange) -> DirtySet {
        DirtySet::new(
            self.plan.seed,
            self.plan.boot - 1,
            area.start,
            self.win.granule,
        )
    }

    /// Shares the seeded ranges, writes the canaries, and (with a host)
    /// checks the host sees the shared ones: without that, the next boot's
    /// "none of them visible" could pass because nothing was ever shared.
    fn leave_dirty(&mut self, area: MemRange) -> Verdict {
        let d = DirtySet::new(self.plan.seed, self.plan.boot, area.start, self.win.granule);
        run_steps(|| {
            for &r in &d.shared {
                self.share(r)?;
                fill(self.boot, r, d.shared_canary);
            }
            for &r in &d.private {
                fill(self.boot, r, d.private_canary);
            }
            let seen = if self.plan.host {
                self.host_sees(
                    Request::Scan {
                        canary: d.shared_canary,
                    },
                    "the host must see the canary in the ranges left shared",
                )?
            } else {
                "not asked (host=off)".to_string()
            };
            Ok(format!(
                "left shared for the next boot: {} ({} granules, canary {:#x}); the host saw it: {seen}; private canaries at {}",
                list(&d.shared),
                d.shared_granules(self.win.granule),
                d.shared_canary,
                list(&d.private)
            ))
        })
    }

    fn private_again(&mut self, area: MemRange) -> Verdict {
        if !self.plan.host {
            return Verdict::Skip(
                "plan has host=off: only the host can show the previous boot's shared ranges are private"
                    .to_string(),
            );
        }
        let d = self.previous(area);
        run_steps(|| {
            let mut parts = Vec::new();
            for (canary, what) in [
                (
                    d.shared_canary,
                    "the canary the previous boot left in its shared ranges",
                ),
                (
                    d.private_canary,
                    "the canary the previous boot left in private pages",
                ),
            ] {
                parts.push(self.host(
                    Request::Scan { canary },
                    &format!("after the reset the host must find none of {what}"),
                )?);
            }
            let fresh = self.canary(0x2eb0 ^ u64::from(self.plan.boot));
            for &r in &d.shared {
                fill(self.boot, r, fresh);
                parts.push(self.host(
                    Request::NoRead { range: r, canary: fresh },
                    "a canary written after the reset into a range the previous boot left shared must be invisible to the host",
                )?);
            }
            if let Some(probe) = self.probe_private(&d.shared)? {
                parts.push(probe);
            }
            Ok(parts.join("; "))
        })
    }

    /// The converter's own answer for the first granule of each range,
    /// where the ABI has a probe that tells private from shared.
    fn probe_private(&mut self, ranges: &[MemRange]) -> Result<Option<String>, Verdict> {
        let mut answers = Vec::new();
        for r in ranges {
            let Some((call, want, from)) = expect::private_probe(self.conv.name(), r.start) else {
                return Ok(None);
            };
            let got = self
                .conv
                .raw(call)
                .map_err(|_| fail!("{call}: not this converter's ABI"))?;
            if got != want {
                return Err(fail!(
                    "{call} on a granule the previous boot left shared answered {got}; {from} answers {want} for a private one: it was still shared"
                ));
            }
            answers.push(format!("{:#x}:{got}", r.start));
        }
        Ok(Some(format!(
            "converter probe ({}): every range answered not-shared {}",
            self.conv.name(),
            answers.join(",")
        )))
    }

    fn reset_calls(&mut self, area: MemRange) -> Verdict {
        let d = self.previous(area);
        let Some(Ok(rep)) = self.conv.boot_reset() else {
            return fail!("no boot reset report");
        };
        let policy = policy(&self.plan);
        // Under a policy that wipes memory nothing is shared at boot.
        let dirty: &[MemRange] = if policy.keeps_memory() {
            &d.shared
        } else {
            &[]
        };
        let ram = self.conv.ram();
        let needed = expect::reset_calls(self.conv.name(), &ram, dirty, self.conv.granule());
        if let Some(n) = needed {
            if rep.calls > n {
                return fail!(
                    "the boot reset made {} calls ({}); {n} make private all the previous boot left shared (reset={})",
                    rep.calls,
                    rep.method,
                    policy.as_str()
                );
            }
            // Where memory survived, fewer calls cannot have reached it all.
            if policy.keeps_memory() && rep.calls < n {
                return fail!(
                    "the boot reset made {} calls ({}); the previous boot's dirty state needs {n} (reset={}): part of it was never made private",
                    rep.calls,
                    rep.method,
                    policy.as_str()
                );
            }
        }
        if rep.unknown != 0 || self.conv.count(PageState::Unknown) != 0 {
            return fail!(
                "the boot reset left {} granule(s) of unknown state",
                rep.unknown
            );
        }
        tdiag!(
            "boot reset: method={} ranges={} granules={} calls={} (at most {}) for {} granules the previous boot left shared (reset={})",
            rep.method,
            rep.ranges,
            rep.pages,
            rep.calls,
            needed.map_or("?".to_string(), |n| format!("{n}")),
            d.shared_granules(self.win.granule),
            policy.as_str()
        );
        Verdict::Pass
    }

    fn reset_content(&mut self, area: MemRange) -> Verdict {
        let d = self.previous(area);
        let policy = policy(&self.plan);
        run_steps(|| {
            let private = private_content(self.boot, &self.plan, &d)?;
            // The shared ranges went through the guest's conversion to
            // private (keep) or the VMM's wipe: the content promise, or zero.
            let want = match (policy.keeps_memory(), self.plan.content) {
                (false, _) | (true, Some(Content::Zero)) => Some(ContentClass::Zeroed),
                (true, Some(Content::Preserve)) => Some(ContentClass::Preserved),
                (true, None) => None,
            };
            let mut seen = Vec::new();
            for &r in &d.shared {
                let got = class(self.boot, r, d.shared_canary);
                if let Some(w) = want
                    && !got.same_kind(w)
                {
                    return Err(fail!(
                        "range {r} the previous boot left shared reads {got} after the reset; expected {} (reset={}, content={})",
                        w.name(),
                        policy.as_str(),
                        self.plan.content.map_or("unknown", |c| c.as_str())
                    ));
                }
                seen.push(got.name());
            }
            seen.dedup();
            Ok(format!(
                "{private}; its shared ranges now read {} (expected {})",
                seen.join("/"),
                want.map_or("either: no content promise", |w| w.name())
            ))
        })
    }
}
