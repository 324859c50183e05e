//! Secondary CPU start over PSCI CPU_ON (`Platform::start_cpu`; secondary.rs
//! for the entry code).
//!
//! `start_cpu` copies the boot CPU's translation and system-control state
//! into the CPU's `StartCtx` and cleans that block to the point of coherency
//! (the new CPU reads it with its MMU and caches off), then asks firmware to
//! start the CPU at `convtest_secondary_entry` with the block's address as
//! the context id.

use super::secondary::{self, StartCtx, convtest_secondary_entry};
use super::{cache, psci};
use crate::arch::platform::StartError;
use crate::boot::MAX_CPUS;
use aarch64_cpu::registers::{
    CPACR_EL1, MAIR_EL1, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1, VBAR_EL1,
};
use convtest_proto::smccc::SmcccAnswer;
use core::sync::atomic::Ordering;

/// In .bss (zero), so a reboot starts with clean blocks.
static CTX: [StartCtx; MAX_CPUS] = [const { StartCtx::zero() }; MAX_CPUS];

/// Starts CPU `cpu` (MPIDR affinity `hw_id`) on `stack_top`, entering
/// `main(cpu)`. Returns once PSCI CPU_ON answered.
pub fn start_cpu(
    cpu: usize,
    hw_id: u64,
    stack_top: u64,
    main: fn(usize) -> !,
) -> Result<(), StartError> {
    let Some(ctx) = CTX.get(cpu).filter(|_| cpu != 0) else {
        return Err(StartError::Unsupported(
            "cpu index is 0 (the boot CPU) or beyond MAX_CPUS",
        ));
    };
    if SCTLR_EL1.read(SCTLR_EL1::M) == 0 {
        return Err(StartError::Unsupported(
            "the boot CPU runs with the MMU off: no map to share",
        ));
    }
    secondary::set_main(main);
    ctx.cpacr.store(CPACR_EL1.get(), Ordering::Relaxed);
    ctx.mair.store(MAIR_EL1.get(), Ordering::Relaxed);
    ctx.tcr.store(TCR_EL1.get(), Ordering::Relaxed);
    ctx.ttbr0.store(TTBR0_EL1.get(), Ordering::Relaxed);
    ctx.vbar.store(VBAR_EL1.get(), Ordering::Relaxed);
    ctx.sctlr.store(SCTLR_EL1.get(), Ordering::Relaxed);
    ctx.stack_top.store(stack_top, Ordering::Relaxed);
    ctx.cpu.store(cpu as u64, Ordering::Relaxed);
    // Identity map (BootInfo.phys_offset = 0): these virtual addresses are
    // the physical ones PSCI wants.
    let ctx_pa = core::ptr::from_ref(ctx) as u64;
    let entry_pa = (&raw const convtest_secondary_entry) as u64;
    // Ends with `dsb sy`: the block is in memory before the call goes out.
    cache::clean_dcache(ctx_pa, core::mem::size_of::<StartCtx>() as u64);
    match psci::cpu_on(hw_id, entry_pa, ctx_pa) {
        None => Err(StartError::Unsupported(
            "the DTB names no PSCI conduit (/psci method)",
        )),
        Some(SmcccAnswer::Undefined) => Err(StartError::Unsupported(
            "the PSCI conduit is UNDEFINED at EL1 (nothing above answers)",
        )),
        Some(SmcccAnswer::Value(0)) => Ok(()),
        Some(SmcccAnswer::Value(code)) => Err(StartError::Refused {
            call: "PSCI CPU_ON",
            code,
        }),
    }
}
