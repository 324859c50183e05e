//! convtest guest kernel. Layers, each unaware of the ones above:
//! `arch` (boot, console, exceptions, counter, power, trap instructions:
//! the `Platform` trait), `console`, `report` (KTAP lines and the crash
//! path), `conv` (the `Converter` seam over each hypervisor's
//! `ConversionAbi`), `suite` (platform-neutral tests) and `kmain`, which
//! drives them; `smp`, `hostcheck`, `heap`, `persist` and `series` sit
//! between the arch layer and the suites. `boot` (what an entry hands over)
//! and `crumbs` (the breadcrumb table a VMM reads) are leaves any layer may
//! use. This file wires the arch layer to the kernel: the entry it hands
//! the boot CPU to, and the crash path.
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

use arch::{Current, Platform};
use boot::BootInfo;

arch::kernel_main!(start);

/// Where every boot entry hands over, once it built `boot`: the kernel's
/// crash path first (from here on an exception fails the running test),
/// then the kernel.
fn start(boot: &'static BootInfo) -> ! {
    Current::set_fatal_handler(report::fatal);
    kmain::kmain(boot)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    report::crash(
        format_args!("panic: {}", info.message()),
        info.location().map(|l| (l.file(), l.line())),
    )
}
