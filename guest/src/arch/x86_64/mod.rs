//! x86_64: PVH direct boot or `bootloader_api` entry, COM1 console, IDT with
//! an IST stack for #DF, TSC counter, isa-debug-exit power-off, secondary
//! CPUs through INIT-SIPI-SIPI (x2APIC) and a real-mode trampoline.
//!
//! Both entries call [`init_cpu`] (console, GDT/TSS, IDT) first, before they
//! parse what the loader handed over, so a malformed boot structure already
//! reaches the crash path.

mod apic;
mod armed;
mod cache;
mod cpu;
mod gdt;
mod hypercall;
mod idle;
mod idt;
mod msr;
mod paging;
mod power;
mod probe;
mod serial;
mod smp;
mod trampoline;
mod trap;

#[cfg(feature = "bootloader")]
mod bootloader_entry;
#[cfg(not(feature = "bootloader"))]
mod pvh;
#[cfg(not(feature = "bootloader"))]
mod pvh_info;
#[cfg(not(feature = "bootloader"))]
mod pvh_paging;

pub use cache::{clean_dcache, flush_dcache};
pub use cpu::{cpuid, cycle_freq, cycles};
pub use hypercall::{vmcall, vmmcall};
pub use idle::{init_secondary as idle_init, wait as idle_wait, wake_others};
#[allow(
    unused_imports,
    reason = "arch contract: not every build calls reboot yet"
)]
pub use power::{fatal_fault, power_off, reboot};
pub use probe::probe;
#[allow(
    unused_imports,
    reason = "arch contract: console input is for host checks"
)]
pub use serial::{console_read_byte, console_write};
pub use smp::start_cpu;
pub use trap::trap_roundtrip;

pub const NAME: &str = "x86_64";
pub const PAGE_SIZE: u64 = 4096;
/// Boot stack size on both entries (PVH: in .bss; bootloader: its config).
const STACK_BYTES: u64 = 256 * 1024;

/// Per-CPU setup shared by both entries, run first thing on the boot stack.
/// `phys_offset` is where physical memory is mapped (0 for the PVH identity
/// map); `stack_guard` is the virtual address of the unmapped page below the
/// boot stack, named in the #DF report.
fn init_cpu(phys_offset: u64, stack_guard: u64) {
    serial::init();
    cpu::enable_sse();
    paging::set_phys_offset(phys_offset);
    idt::set_stack_guard(stack_guard);
    gdt::init();
    idt::init();
}
