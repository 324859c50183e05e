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
mod harness;
mod hostile;
mod overlap;
mod race;
mod reboot;
mod reset;
mod storm;
mod storm_confirm;
mod storm_cpu;
mod visibility;
pub(in crate::suite) mod window;

pub(super) use reboot::run as run_reboot;

use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use alloc::string::{String, ToString};
use harness::T;
use window::Window;

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
    let scratch = (name == "hostile.vmm").then(|| storm::area(test_ram, &win, hostile::SCRATCH));
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
        "hostile.vmm" => t.hostile(scratch.unwrap_or_else(|| Err(String::new()))),
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
    if let Some(note) = t.conv.take_note() {
        crate::report::tdiag!("{note}");
    }
    t.note_evidence(verdict)
}
