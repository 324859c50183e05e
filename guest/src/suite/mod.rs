//! Platform-neutral tests. Each returns a `Verdict` whose text says what was
//! checked and what was seen; they reach the hardware only through `arch`'s
//! contract functions, `BootInfo` and the `Converter` seam.

mod bench;
mod boot;
mod clock;
mod conv;
mod exc;
mod heap;
mod inject;
mod mem;
mod smp;

use crate::boot::BootInfo;
use crate::conv::{Converter, NoConverter};
use alloc::boxed::Box;
use alloc::string::String;
use convtest_proto::plan::Parsed;
use convtest_proto::plan::Plan;
use convtest_proto::range::{MemRange, RangeList};

pub struct Ctx {
    pub boot: &'static BootInfo,
    pub parsed: Parsed<'static>,
    pub plan: Plan<'static>,
    /// Free RAM minus the heap: what memory tests may overwrite.
    pub test_ram: RangeList,
    pub heap: MemRange,
    pub converter: Result<Box<dyn Converter>, NoConverter>,
    /// What secondary CPU bring-up did (wanted 0: the plan named one CPU).
    pub smp: crate::smp::Report,
}

pub enum Verdict {
    Pass,
    /// Passed, with something the reader must know printed on the result
    /// line (e.g. the host's side rested on VMM bookkeeping only).
    PassNoted(String),
    Fail(String),
    Skip(String),
}

/// `Verdict::Fail` with a formatted reason.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::suite::Verdict::Fail(alloc::format!($($arg)*)) };
}

pub fn run(name: &str, ctx: &mut Ctx) -> Verdict {
    match name {
        "boot.plan" => boot::plan(ctx),
        "boot.ram_map" => boot::ram_map(ctx),
        "boot.kernel_in_ram" => boot::kernel_in_ram(ctx),
        "smp.online" => smp::online(ctx),
        "heap.stress" => heap::stress(ctx),
        "heap.large" => heap::large(ctx),
        "mem.walking_ones" => mem::walking_ones(ctx),
        "mem.address_in_address" => mem::address_in_address(ctx),
        "mem.random" => mem::random(ctx),
        "exc.trap_roundtrip" => exc::trap_roundtrip(ctx),
        "clock.monotonic" => clock::monotonic(ctx),
        "clock.frequency" => clock::frequency(ctx),
        "inject.requested" => inject::requested(ctx),
        n if n.starts_with("conv.") || n.starts_with("stress.") => conv::run(n, ctx),
        n if n.starts_with("reset.") || n.starts_with("reboot.") => conv::run_reboot(n, ctx),
        n if n.starts_with("bench.") => bench::run(n, ctx),
        other => fail!("catalog names {other} but the guest has no such test"),
    }
}
