//! x86_64: PVH direct boot or `bootloader_api` entry, COM1 console, IDT with
//! an IST stack for #DF, TSC counter, isa-debug-exit power-off, secondary
//! CPUs through INIT-SIPI-SIPI (x2APIC) and a real-mode trampoline.
//!
//! Both entries call `init::init_cpu` (console, GDT/TSS, IDT) first, before
//! they parse what the loader handed over, so a malformed boot structure
//! already reaches the crash path. This file is only the [`Platform`]
//! implementation: the files below it never reach back up here.

mod alias;
mod apic;
mod armed;
mod cache;
mod coco;
mod cpu;
mod fatal;
mod gdt;
mod hypercall;
mod idle;
mod idt;
mod init;
mod msr;
mod paging;
mod power;
mod probe;
mod serial;
mod smp;
mod snp;
mod stray;
mod td_io;
mod tdcall;
mod trampoline;
mod trap;
mod vc;
mod ve;

#[cfg(feature = "bootloader")]
mod bootloader_entry;
#[cfg(not(feature = "bootloader"))]
mod pvh;
#[cfg(not(feature = "bootloader"))]
mod pvh_info;
#[cfg(not(feature = "bootloader"))]
mod pvh_paging;

use crate::arch::platform::{Platform, StartError, TrapError, TrapReport};
use crate::arch::probe::Probe;
use convtest_proto::size_walk::PageSize;
use convtest_proto::tdx::abi::{AcceptStatus, VmcallStatus};
use core::arch::x86_64::CpuidResult;

/// The x86_64 platform.
pub struct X86_64;

impl Platform for X86_64 {
    const NAME: &'static str = "x86_64";
    const PAGE_SIZE: u64 = paging::PAGE_SIZE;

    fn console_write(bytes: &[u8]) {
        if coco::in_td() {
            td_io::console_write(bytes);
        } else {
            serial::console_write(bytes);
        }
    }

    fn console_read_byte() -> Option<u8> {
        if coco::in_td() {
            td_io::console_read_byte()
        } else {
            serial::console_read_byte()
        }
    }

    fn flush_dcache(va: u64, len: u64) {
        cache::flush_dcache(va, len);
    }

    fn clean_dcache(va: u64, len: u64) {
        cache::clean_dcache(va, len);
    }

    fn cycles() -> u64 {
        cpu::cycles()
    }

    fn cycle_freq() -> Result<u64, &'static str> {
        cpu::cycle_freq()
    }

    fn power_off(success: bool) -> ! {
        power::power_off(success)
    }

    fn reboot() -> ! {
        power::reboot()
    }

    fn trap_roundtrip() -> Result<TrapReport, TrapError> {
        trap::trap_roundtrip()
    }

    fn fatal_fault() -> ! {
        trap::fatal_fault()
    }

    fn probe() -> Probe {
        probe::probe()
    }

    fn start_cpu(
        cpu: usize,
        hw_id: u64,
        stack_top: u64,
        main: fn(usize) -> !,
    ) -> Result<(), StartError> {
        smp::start_cpu(cpu, hw_id, stack_top, main)
    }

    fn idle_init() -> bool {
        idle::init_secondary()
    }

    fn idle_wait() {
        idle::wait();
    }

    fn wake_others() {
        idle::wake_others();
    }

    fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
        cpu::cpuid(leaf, subleaf)
    }

    unsafe fn stray_load(va: u64, size: u8) -> u64 {
        // SAFETY: the trait's contract is `stray::load`'s.
        unsafe { stray::load(va, size) }
    }

    unsafe fn stray_store(va: u64, size: u8, value: u64) {
        // SAFETY: the trait's contract is `stray::store`'s.
        unsafe { stray::store(va, size, value) }
    }

    fn port_in(port: u16, size: u8) -> u32 {
        stray::port_in(port, size)
    }

    fn port_out(port: u16, size: u8, value: u32) {
        stray::port_out(port, size, value);
    }

    fn vmcall(nr: u64, a0: u64, a1: u64, a2: u64) -> u64 {
        hypercall::vmcall(nr, a0, a1, a2)
    }

    fn vmmcall(nr: u64, a0: u64, a1: u64, a2: u64) -> u64 {
        hypercall::vmmcall(nr, a0, a1, a2)
    }

    fn tdx_shared_bit() -> Option<u64> {
        coco::td_shared_bit()
    }

    fn tdx_map_gpa(gpa: u64, size: u64) -> (VmcallStatus, u64) {
        tdcall::map_gpa(gpa, size)
    }

    fn tdx_accept(gpa: u64, size: PageSize) -> AcceptStatus {
        tdcall::accept(gpa, size)
    }

    fn pvalidate(gpa: u64, size: PageSize, validate: bool) -> (u64, bool) {
        snp::pvalidate(gpa.wrapping_add(paging::phys_offset()), size, validate)
    }

    fn ghcb_msr_exchange(request: u64) -> u64 {
        snp::ghcb_msr_exchange(request)
    }

    fn ghcb_gpa() -> Option<u64> {
        vc::ghcb_gpa_registered()
    }

    fn map_alias(end: u64, set: u64) -> Option<u64> {
        alias::map(end, set)
    }
}
