//! convtest guest kernel. Layers, each unaware of the one above:
//! `arch` (boot, console, exceptions, counter, power, trap instructions),
//! `conv` (the `Converter` seam and hypervisor detection) and `suite`
//! (platform-neutral tests), driven by `kmain` and reported through `report`.
#![no_std]
#![no_main]
#![cfg_attr(target_arch = "x86_64", feature(abi_x86_interrupt))]

extern crate alloc;

mod arch;
mod boot;
mod console;
mod conv;
mod crumbs;
mod heap;
mod hostcheck;
mod kmain;
mod persist;
mod report;
mod series;
mod smp;
mod suite;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    report::crash(
        format_args!("panic: {}", info.message()),
        info.location().map(|l| (l.file(), l.line())),
    )
}
