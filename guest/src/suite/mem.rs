//! Memory access patterns over free RAM: write every word, then verify every
//! word, and report the first mismatch with its physical address.

use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use crate::arch::{Current, Platform};
use crate::report::tdiag;
use convtest_proto::prng::mix;
use convtest_proto::range::{MemRange, RangeList};

const WORD: u64 = 8;

/// Free RAM to cover: ranges in address order, cut at `plan.mem_bytes`
/// (0 = everything), word-aligned.
fn coverage(ctx: &Ctx) -> RangeList {
    let mut budget = if ctx.plan.mem_bytes == 0 {
        u64::MAX
    } else {
        ctx.plan.mem_bytes
    };
    let mut sorted = ctx.test_ram;
    sorted.sort();
    let mut out = RangeList::new();
    for r in sorted.iter() {
        let r = r.align_inward(WORD);
        if budget == 0 {
            break;
        }
        if r.is_empty() {
            continue;
        }
        let take = MemRange::from_len(r.start, r.len().min(budget));
        budget -= take.len();
        Current::first_touch(take);
        // Capacity equals the source list's, so this cannot overflow.
        let _ = out.push(take);
    }
    out
}

/// Writes `value(pa)` to every word of the coverage, then reads all back.
fn run_pattern(ctx: &Ctx, value: impl Fn(u64) -> u64) -> Verdict {
    let cover = coverage(ctx);
    if cover.is_empty() {
        return fail!(
            "no free RAM to test (mem={} bytes requested)",
            ctx.plan.mem_bytes
        );
    }
    for r in cover.iter() {
        for pa in (r.start..r.end).step_by(WORD as usize) {
            let va = ctx.boot.phys_to_virt(pa) as *mut u64;
            // SAFETY: `pa` is word-aligned free RAM (not kernel, boot data or
            // heap), mapped at `phys_offset`; nothing else references it.
            unsafe { va.write_volatile(value(pa)) };
        }
    }
    let (mut mismatches, mut first) = (0u64, None);
    for r in cover.iter() {
        for pa in (r.start..r.end).step_by(WORD as usize) {
            let va = ctx.boot.phys_to_virt(pa) as *const u64;
            // SAFETY: as above; written by the first pass.
            let got = unsafe { va.read_volatile() };
            let want = value(pa);
            if got != want {
                mismatches += 1;
                first.get_or_insert((pa, want, got));
            }
        }
    }
    let words = cover.total() / WORD;
    tdiag!(
        "{} KiB in {} range(s), {} words written and verified",
        cover.total() >> 10,
        cover.len(),
        words
    );
    match first {
        Some((pa, want, got)) => {
            fail!(
                "{mismatches} of {words} words wrong; first at phys {pa:#x}: expected {want:#018x}, read {got:#018x}"
            )
        }
        None => Verdict::Pass,
    }
}

pub fn walking_ones(ctx: &mut Ctx) -> Verdict {
    run_pattern(ctx, |pa| 1u64 << ((pa / WORD) % 64))
}

pub fn address_in_address(ctx: &mut Ctx) -> Verdict {
    run_pattern(ctx, |pa| pa)
}

pub fn random(ctx: &mut Ctx) -> Verdict {
    let seed = ctx.plan.seed;
    run_pattern(ctx, move |pa| mix(seed ^ pa))
}
