//! Sanity of what the boot path handed over: plan, RAM map, kernel placement.

use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use crate::report::tdiag;

pub fn plan(ctx: &mut Ctx) -> Verdict {
    tdiag!(
        "cmdline {:?}: {} word(s) not for convtest",
        ctx.boot.cmdline,
        ctx.parsed.foreign_words
    );
    match ctx.parsed.error {
        Some(e) => fail!("{e}"),
        None => Verdict::Pass,
    }
}

pub fn ram_map(ctx: &mut Ctx) -> Verdict {
    let ram = &ctx.boot.ram;
    for r in ram.iter() {
        tdiag!("ram {r} ({} KiB)", r.len() >> 10);
    }
    if ram.is_empty() {
        return fail!("the boot path reported no RAM range");
    }
    if let Err(e) = ram.validate() {
        return fail!("RAM map is inconsistent: {e}");
    }
    if let Err(e) = ctx.boot.reserved.validate() {
        return fail!("reserved map is inconsistent: {e}");
    }
    let free = ctx.test_ram.total();
    tdiag!(
        "{} range(s), {} KiB RAM, {} KiB free for tests",
        ram.len(),
        ram.total() >> 10,
        free >> 10
    );
    if free == 0 {
        return fail!("no RAM left for tests after kernel, boot data and heap");
    }
    Verdict::Pass
}

pub fn kernel_in_ram(ctx: &mut Ctx) -> Verdict {
    let k = ctx.boot.kernel;
    tdiag!("kernel image {k} ({} KiB)", k.len() >> 10);
    if k.is_empty() {
        return fail!("the boot path reported an empty kernel extent {k}");
    }
    if !ctx.boot.ram.covers(&k) {
        return fail!("kernel {k} is not inside one RAM range");
    }
    if let Some(r) = ctx.test_ram.iter().find(|r| r.overlaps(&k)) {
        return fail!("kernel {k} overlaps RAM handed to tests {r}");
    }
    if ctx.heap.overlaps(&k) {
        return fail!("kernel {k} overlaps the heap {}", ctx.heap);
    }
    Verdict::Pass
}
