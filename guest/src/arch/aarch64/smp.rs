//! Secondary CPU start over PSCI CPU_ON (see `crate::smp` for the contract,
//! secondary.rs for the entry code).
//!
//! `start_cpu` copies the boot CPU's translation and system-control state
//! into the CPU's `StartCtx` and cleans that block to the point of coherency
//! (the new CPU reads it with its MMU and caches off), then asks firmware to
//! start the CPU at `convtest_secondary_entry` with the block's address as
//! the context id.

use super::secondary::convtest_secondary_entry;
use super::{cache, psci};
use crate::boot::MAX_CPUS;
use crate::smp::StartError;
use aarch64_cpu::registers::{
    CPACR_EL1, MAIR_EL1, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1, VBAR_EL1,
};
use convtest_proto::smccc::SmcccAnswer;
use core::sync::atomic::{AtomicU64, Ordering};

/// What one secondary CPU's entry code loads before its MMU is on: the boot
/// CPU's register values, its stack and its `cpu` index. Read by the asm at
/// the `offset_of!` offsets; one cache-line-aligned block per CPU, written
/// only by CPU 0 (in `start_cpu`) before that CPU starts.
#[repr(C, align(64))]
pub struct StartCtx {
    pub(super) cpacr: AtomicU64,
    pub(super) mair: AtomicU64,
    pub(super) tcr: AtomicU64,
    pub(super) ttbr0: AtomicU64,
    pub(super) vbar: AtomicU64,
    pub(super) sctlr: AtomicU64,
    pub(super) stack_top: AtomicU64,
    cpu: AtomicU64,
}

impl StartCtx {
    const fn zero() -> StartCtx {
        StartCtx {
            cpacr: AtomicU64::new(0),
            mair: AtomicU64::new(0),
            tcr: AtomicU64::new(0),
            ttbr0: AtomicU64::new(0),
            vbar: AtomicU64::new(0),
            sctlr: AtomicU64::new(0),
            stack_top: AtomicU64::new(0),
            cpu: AtomicU64::new(0),
        }
    }
}

/// In .bss (zero), so a reboot starts with clean blocks.
static CTX: [StartCtx; MAX_CPUS] = [const { StartCtx::zero() }; MAX_CPUS];

/// Starts CPU `cpu` (MPIDR affinity `hw_id`) on `stack_top`, entering
/// `crate::smp::secondary_main(cpu)`. Returns once PSCI CPU_ON answered.
pub fn start_cpu(cpu: usize, hw_id: u64, stack_top: u64) -> Result<(), StartError> {
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

/// Called by secondary.rs on the CPU's own stack, MMU and caches on, at EL1.
pub(super) extern "C" fn secondary_rust(ctx: &StartCtx) -> ! {
    crate::smp::secondary_main(ctx.cpu.load(Ordering::Relaxed) as usize)
}
