//! The cost answer: what converting in place costs next to bouncing, by
//! size (`bench.*`). Every op goes through one harness (`meter.rs`); the
//! conversions are the ABI's raw calls with no bookkeeping (which is
//! timed as its own op), bracketed so the tracker and the pKVM ledger stay
//! truthful if the run dies half-way.
//!
//! Memory: the conversion tests' 8 MiB window, after they left it private:
//! sizes 1 … 512 granules from one granule past its start (so no size
//! carries a page-size hint), a 2 MiB-aligned 2 MiB at +2 MiB for the 2M
//! hint, the bounce source at +4 MiB (private) and destination at +6 MiB
//! (shared for the whole test).

pub(in crate::suite) mod meter;

use super::conv::window::Window;
use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use crate::arch::{Current, Platform};
use crate::boot::BootInfo;
use crate::conv::Converter;
use crate::report::tdiag;
use alloc::format;
use alloc::string::{String, ToString};
use convtest_proto::range::MemRange;
use convtest_proto::tracker::Target;
use meter::{Meter, timed};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Granule counts of the size sweep: 1, 2, 4 … 512 (4 KiB … 2 MiB with
/// 4 KiB granules; larger granules stop at 2 MiB, the window's share).
const SIZES: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

fn sizes(granule: u64) -> impl Iterator<Item = u64> + Clone {
    SIZES.into_iter().filter(move |n| n * granule <= 2 * MIB)
}

pub fn run(name: &str, ctx: &mut Ctx) -> Verdict {
    if !ctx.plan.bench {
        return Verdict::Skip("plan has bench=off".to_string());
    }
    let granule = ctx
        .converter
        .as_ref()
        .map_or(Current::PAGE_SIZE, |c| c.granule());
    let win = match Window::find(&ctx.test_ram, ctx.boot.kernel.end, granule) {
        Ok(w) => w,
        Err(why) => return fail!("{why}"),
    };
    let meter = Meter::new(&ctx.plan);
    if meter.hz().is_none() {
        tdiag!("counter frequency unknown: cycles only, no ns");
    }
    let b = B {
        ctx,
        win,
        meter,
        granule,
    };
    b.dispatch(name)
}

/// What a bench test works with.
struct B<'a> {
    ctx: &'a mut Ctx,
    win: Window,
    meter: Meter,
    granule: u64,
}

impl B<'_> {
    fn dispatch(mut self, name: &str) -> Verdict {
        let result = match name {
            "bench.bounce" => self.bounce(),
            other => {
                let conv = match &mut self.ctx.converter {
                    Ok(c) => &mut **c,
                    Err(none) => return Verdict::Skip(none.to_string()),
                };
                let (win, granule) = (self.win, self.granule);
                let (meter, test_ram) = (&self.meter, &self.ctx.test_ram);
                let boot = self.ctx.boot;
                match other {
                    "bench.convert" => convert(conv, meter, sweep(win, granule), None),
                    "bench.io_path" => convert(conv, meter, sweep(win, granule), Some(boot)),
                    "bench.null_exit" => null_exit(conv, meter, win.slot(0)),
                    "bench.bookkeeping" => bookkeeping(conv, meter, sweep(win, granule)),
                    "bench.hint_2m" => hinted(conv, meter, win.aligned_2m(), "2m"),
                    "bench.hint_1g" => match gib_range(test_ram) {
                        _ if conv.name() == "pkvm" => Err(Verdict::Skip(
                            "pKVM has no page-size hints: a 1 GiB conversion is 262144 single-granule calls"
                                .to_string(),
                        )),
                        Some(r) => hinted(conv, meter, r, "1g"),
                        None => Err(Verdict::Skip(format!(
                            "no 1 GiB-aligned 1 GiB range in free RAM ({} MiB of RAM): give the guest --memory 2560 or more",
                            self.ctx.boot.ram.total() >> 20
                        ))),
                    },
                    _ => Err(fail!("{other}: no such bench test in this guest")),
                }
            }
        };
        match result {
            Ok(summary) => {
                tdiag!("{summary}");
                Verdict::Pass
            }
            Err(v) => v,
        }
    }

    /// memcpy of each size from a private buffer into a pre-shared one and
    /// back: the bounce-buffer path. Runs without a converter too (then the
    /// destination is private as well and only the copy is measured).
    fn bounce(&mut self) -> Result<String, Verdict> {
        let src = MemRange::from_len(self.win.base + 4 * MIB, 2 * MIB);
        let dst = MemRange::from_len(self.win.base + 6 * MIB, 2 * MIB);
        let (shared, view) = match &mut self.ctx.converter {
            Ok(c) => {
                c.share(dst)
                    .map_err(|e| fail!("pre-sharing the bounce buffer {dst}: {e}"))?;
                (true, c.shared_view())
            }
            Err(_) => (false, None),
        };
        let boot = self.ctx.boot;
        let va = |pa: u64| boot.phys_to_virt(pa);
        // The shared buffer is reached through the converter's shared view.
        let shared_va = |pa: u64| view.map_or_else(|| va(pa), |v| v.va(pa));
        let result = (|| {
            for n in sizes(self.granule) {
                let len = n * self.granule;
                let (s, d) = (va(src.start), shared_va(dst.start));
                let copy_both = || {
                    // SAFETY: src and dst are disjoint 2 MiB ranges of the
                    // test window (free RAM this test owns, src mapped at
                    // `phys_to_virt`, dst in the shared view, which maps all
                    // RAM); `len` is at most 2 MiB.
                    unsafe {
                        core::ptr::copy_nonoverlapping(s as *const u8, d, len as usize);
                        core::ptr::copy_nonoverlapping(d as *const u8, s, len as usize);
                    }
                };
                let mut warm = self.meter.measure(|| Ok(timed(copy_both).0))?;
                self.meter.emit("bounce_warm", len, n, &mut warm);
                let mut cold = self.meter.measure(|| {
                    Current::flush_dcache(s as u64, len);
                    Current::flush_dcache(d as u64, len);
                    Ok(timed(copy_both).0)
                })?;
                self.meter.emit("bounce_cold", len, n, &mut cold);
            }
            Ok(format!(
                "{} sizes, {} into {dst}{}",
                sizes(self.granule).count(),
                src,
                if shared {
                    " (shared)"
                } else {
                    " (no converter: private too, the copy alone)"
                }
            ))
        })();
        if let (true, Ok(c)) = (shared, &mut self.ctx.converter)
            && let Err(e) = c.unshare(dst)
        {
            return Err(fail!("unsharing the bounce buffer {dst}: {e}"));
        }
        result
    }
}

/// The sweep's ranges all start one granule into the window: no size is
/// aligned to 2 MiB at both ends, so none carries a page-size hint.
fn sweep(win: Window, granule: u64) -> impl Iterator<Item = (u64, MemRange)> + Clone {
    sizes(granule).map(move |n| (n, MemRange::from_len(win.base + granule, n * granule)))
}

/// All of the sweep, for bracketing bare conversions.
fn sweep_extent(sweep: impl Iterator<Item = (u64, MemRange)>) -> MemRange {
    sweep.fold(MemRange::new(u64::MAX, 0), |acc, (_, r)| {
        MemRange::new(acc.start.min(r.start), acc.end.max(r.end))
    })
}

/// Bare conversions of `extent` with the records kept truthful around
/// them: `body`'s verdict, or the cleanup's failure.
fn bare_in(
    conv: &mut dyn Converter,
    extent: MemRange,
    body: impl FnOnce(&mut dyn Converter) -> Result<String, Verdict>,
) -> Result<String, Verdict> {
    conv.begin_bare(extent);
    let res = body(conv);
    let end = conv.end_bare(extent);
    match (res, end) {
        (Ok(s), Ok(())) => Ok(s),
        (Err(v), _) => Err(v),
        (Ok(_), Err(e)) => Err(fail!("making {extent} private after the bench: {e}")),
    }
}

fn bare(conv: &mut dyn Converter, r: MemRange, to: Target) -> Result<u64, Verdict> {
    let (c, res) = timed(|| conv.bare(r, to));
    res.map(|()| c)
        .map_err(|e| fail!("{} {r}: {e}", to.as_str()))
}

/// Share and unshare of each size timed apart; with `touch` (the boot's
/// memory map, to reach the pages), the guest's first write to every page
/// between them, timed as one round trip.
fn convert(
    conv: &mut dyn Converter,
    meter: &Meter,
    sweep: impl Iterator<Item = (u64, MemRange)> + Clone,
    touch: Option<&BootInfo>,
) -> Result<String, Verdict> {
    let extent = sweep_extent(sweep.clone());
    let granule = conv.granule();
    let count = sweep.clone().count();
    let view = conv.shared_view();
    bare_in(conv, extent, |conv| {
        for (n, r) in sweep {
            if let Some(boot) = touch {
                let shared_va = |pa: u64| view.map_or_else(|| boot.phys_to_virt(pa), |v| v.va(pa));
                let mut s = meter.measure(|| {
                    let t0 = Current::cycles();
                    bare(conv, r, Target::Shared)?;
                    for pa in (r.start..r.end).step_by(granule as usize) {
                        // SAFETY: `r` is test-window RAM this test owns,
                        // shared now and reached through the shared view
                        // (which maps all RAM); one aligned word per granule.
                        unsafe { (shared_va(pa) as *mut u64).write_volatile(pa) };
                    }
                    bare(conv, r, Target::Private)?;
                    Ok(Current::cycles().wrapping_sub(t0))
                })?;
                meter.emit("io_round_trip", r.len(), n, &mut s);
            } else {
                let (mut sh, mut un) = meter.measure2(|| {
                    Ok((
                        bare(conv, r, Target::Shared)?,
                        bare(conv, r, Target::Private)?,
                    ))
                })?;
                meter.emit("share", r.len(), n, &mut sh);
                meter.emit("unshare", r.len(), n, &mut un);
            }
        }
        Ok(format!(
            "{count} sizes in {extent} ({} call(s) for the largest)",
            conv.calls_for(extent, Target::Shared).count
        ))
    })
}

fn null_exit(conv: &mut dyn Converter, meter: &Meter, page: MemRange) -> Result<String, Verdict> {
    let op = conv.noop_op();
    let mut s = meter.measure(|| {
        let (c, res) = timed(|| conv.noop(page));
        res.map(|()| c).map_err(|e| fail!("{op}: {e}"))
    })?;
    meter.emit("null_exit", 0, 1, &mut s);
    Ok(format!("null exit = {op}"))
}

fn bookkeeping(
    conv: &mut dyn Converter,
    meter: &Meter,
    sizes: impl Iterator<Item = (u64, MemRange)>,
) -> Result<String, Verdict> {
    for (n, r) in sizes {
        let mut s = meter.measure(|| Ok(timed(|| conv.bookkeep(r)).0))?;
        meter.emit("bookkeeping", r.len(), n, &mut s);
    }
    Ok(format!(
        "the tracker{} for one share + unshare, per size",
        if conv.name() == "pkvm" {
            " and the ledger (written through to memory)"
        } else {
            ""
        }
    ))
}

/// One aligned range with the ABI's page-size hint (`tag`: `2m`, `1g`).
fn hinted(
    conv: &mut dyn Converter,
    meter: &Meter,
    r: MemRange,
    tag: &str,
) -> Result<String, Verdict> {
    let issued = conv.calls_for(r, Target::Shared);
    let n = r.len() / conv.granule();
    bare_in(conv, r, |conv| {
        let (mut sh, mut un) = meter.measure2(|| {
            Ok((
                bare(conv, r, Target::Shared)?,
                bare(conv, r, Target::Private)?,
            ))
        })?;
        meter.emit(&format!("share_{tag}"), r.len(), n, &mut sh);
        meter.emit(&format!("unshare_{tag}"), r.len(), n, &mut un);
        Ok(format!(
            "{r} as {} call(s) from {}",
            issued.count, issued.first
        ))
    })
}

/// A 1 GiB-aligned 1 GiB range of free RAM, if there is one.
fn gib_range(test_ram: &convtest_proto::range::RangeList) -> Option<MemRange> {
    test_ram
        .iter()
        .map(|r| r.align_inward(GIB))
        .find(|r| r.len() >= GIB)
        .map(|r| MemRange::from_len(r.start, GIB))
        .inspect(|&r| Current::first_touch(r))
}
