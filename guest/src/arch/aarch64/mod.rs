//! aarch64: an arm64 Image that runs at any load address, at EL1 (leaving
//! EL2 if started there), with everything about the machine from the DTB.
//!
//! Boot order: entry.rs (EL drop, FP/SIMD, bss, stack) → reloc.rs →
//! boot.rs `boot_main`: vectors, DTB, identity map + caches, console, the
//! kernel. Secondary CPUs (PSCI CPU_ON, smp.rs): secondary.rs (EL drop, the
//! boot CPU's MMU/vector/FP state, own stack) → the `main` `start_cpu` was
//! given. This file is only the [`Platform`] implementation: the files
//! below it never reach back up here.

mod boot;
mod cache;
mod dtb;
mod dtb_nops;
mod entry;
mod exceptions;
mod fatal;
mod first_touch;
mod mmio_guard;
mod mmu;
mod power;
mod probe;
mod psci;
mod reloc;
mod secondary;
mod smccc;
mod smp;
mod stray;
mod timer;
mod trap;
mod uart;
mod word_console;

use crate::arch::platform::{Platform, StartError, TrapError, TrapReport};
use crate::arch::probe::Probe;
use convtest_proto::smccc::SmcccAnswer;

/// The aarch64 platform.
pub struct Aarch64;

impl Platform for Aarch64 {
    const NAME: &'static str = "aarch64";
    const PAGE_SIZE: u64 = mmu::PAGE_SIZE;

    fn console_write(bytes: &[u8]) {
        if !word_console::write(bytes) {
            uart::console_write(bytes);
        }
    }

    fn console_pages() -> [Option<convtest_proto::range::MemRange>; 2] {
        [uart::page(), word_console::page()]
    }

    fn console_read_byte() -> Option<u8> {
        word_console::read_byte().unwrap_or_else(uart::console_read_byte)
    }

    fn flush_dcache(va: u64, len: u64) {
        cache::flush_dcache(va, len);
    }

    fn clean_dcache(va: u64, len: u64) {
        cache::clean_dcache(va, len);
    }

    fn cycles() -> u64 {
        timer::cycles()
    }

    fn cycle_freq() -> Result<u64, &'static str> {
        timer::cycle_freq()
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

    fn boot_words(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        first_touch::word(out)?;
        mmio_guard::word(out)
    }

    fn first_touch(range: convtest_proto::range::MemRange) {
        first_touch::range(range);
    }

    fn start_cpu(
        cpu: usize,
        hw_id: u64,
        stack_top: u64,
        main: fn(usize) -> !,
    ) -> Result<(), StartError> {
        smp::start_cpu(cpu, hw_id, stack_top, main)
    }

    /// Secondary CPUs spin between jobs here (WFE/SEV was slower under TCG:
    /// docs/storms.md); x86's halting idle has no arm64 half yet.
    fn idle_init() -> bool {
        false
    }

    fn idle_wait() {
        core::hint::spin_loop();
    }

    fn wake_others() {}

    fn smccc_call(fid: u32, a1: u64, a2: u64, a3: u64) -> Option<SmcccAnswer<[u64; 4]>> {
        smccc::call(fid, a1, a2, a3)
    }

    unsafe fn stray_load(va: u64, size: u8) -> u64 {
        // SAFETY: the trait's contract is `stray::load`'s.
        unsafe { stray::load(va, size) }
    }

    unsafe fn stray_store(va: u64, size: u8, value: u64) {
        // SAFETY: the trait's contract is `stray::store`'s.
        unsafe { stray::store(va, size, value) }
    }
}
