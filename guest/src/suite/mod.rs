//! Platform-neutral tests. Each gets the [`Ctx`] and returns a [`Verdict`]
//! whose text says what was checked and what was seen; they reach the
//! hardware only through the arch layer's `Platform`, `BootInfo` and the
//! `Converter` seam.

mod bench;
mod boot;
mod clock;
mod conv;
mod ctx;
mod exc;
mod heap;
mod inject;
mod mem;
mod smp;
mod verdict;

pub use ctx::Ctx;
pub use verdict::Verdict;
use verdict::fail;

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
        n if n.starts_with("conv.") || n.starts_with("stress.") || n.starts_with("hostile.") => {
            conv::run(n, ctx)
        }
        n if n.starts_with("reset.") || n.starts_with("reboot.") => conv::run_reboot(n, ctx),
        n if n.starts_with("bench.") => bench::run(n, ctx),
        other => fail!("catalog names {other} but the guest has no such test"),
    }
}
