//! Where PSCI CPU_ON starts every CPU but the boot one (`smp::start_cpu`
//! names this code as the entry point).
//!
//! Register contract on entry (PSCI 1.1, DEN0022, CPU_ON): MMU and caches
//! off, at the exception level the firmware chooses for the caller's world
//! (QEMU TCG: EL1 on `-M virt`, EL2 with `virtualization=on`; EL3 is not
//! supported and parks), x0 = the `context_id` argument of CPU_ON = the
//! physical address of this CPU's [`StartCtx`] (identity-mapped, so also
//! its virtual address), every other general register UNKNOWN. Nothing here
//! stores to memory before the MMU and caches are on (a store with caches off
//! could be overwritten by a dirty line another CPU holds), and the context
//! block is only read: `start_cpu` cleaned it to the point of coherency.
//!
//! Steps: mask interrupts; at EL2 do the boot CPU's EL2 set-up and drop to
//! EL1h (`entry::el2_to_el1`); at EL1 program CPACR_EL1 (FP/SIMD), MAIR,
//! TCR, TTBR0 and VBAR_EL1 with the boot CPU's values, invalidate the local
//! TLB and I-cache, write the boot CPU's SCTLR_EL1 (M, C, I on), take SP_EL1
//! = `stack_top` and call `secondary_rust(ctx)` (x0 = ctx), which never
//! returns. Registers used: x9 (scratch), x19 (ctx), then the AAPCS64 call.

use super::entry::el2_to_el1;
use core::arch::global_asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;

/// What one secondary CPU's entry code loads before its MMU is on: the boot
/// CPU's register values, its stack and its `cpu` index. Read by the asm at
/// the `offset_of!` offsets; one cache-line-aligned block per CPU, written
/// only by CPU 0 (in `smp::start_cpu`) before that CPU starts.
#[repr(C, align(64))]
pub struct StartCtx {
    pub(super) cpacr: AtomicU64,
    pub(super) mair: AtomicU64,
    pub(super) tcr: AtomicU64,
    pub(super) ttbr0: AtomicU64,
    pub(super) vbar: AtomicU64,
    pub(super) sctlr: AtomicU64,
    pub(super) stack_top: AtomicU64,
    pub(super) cpu: AtomicU64,
}

impl StartCtx {
    pub(super) const fn zero() -> StartCtx {
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

/// Where every started CPU goes (`Platform::start_cpu`'s `main`): set by
/// CPU 0 before the first CPU_ON, read with the MMU and caches on.
static MAIN: Once<fn(usize) -> !> = Once::new();

/// Records `main` for the CPUs to come (the first call's, for all of them).
pub fn set_main(main: fn(usize) -> !) {
    MAIN.call_once(|| main);
}

global_asm!(
    concat!(
        r#"
    .section .text.boot, "ax"
    .balign 4
    .global convtest_secondary_entry
convtest_secondary_entry:
    msr     daifset, #0xf
    mov     x19, x0
    mrs     x9, CurrentEL
    lsr     x9, x9, #2
    cmp     x9, #1
    b.eq    1f
    cmp     x9, #2
    b.ne    9f
"#,
        el2_to_el1!(),
        r#"
1:
    mov     x9, #0x0800
    movk    x9, #0x30d0, lsl #16
    msr     sctlr_el1, x9
    isb
    ldr     x9, [x19, #{cpacr}]
    msr     cpacr_el1, x9
    ldr     x9, [x19, #{mair}]
    msr     mair_el1, x9
    ldr     x9, [x19, #{tcr}]
    msr     tcr_el1, x9
    ldr     x9, [x19, #{ttbr0}]
    msr     ttbr0_el1, x9
    ldr     x9, [x19, #{vbar}]
    msr     vbar_el1, x9
    msr     spsel, #1
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x9, [x19, #{sctlr}]
    msr     sctlr_el1, x9
    isb
    ldr     x9, [x19, #{stack_top}]
    mov     sp, x9
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      {main}
9:
    wfe
    b       9b
"#
    ),
    cpacr = const offset_of!(StartCtx, cpacr),
    mair = const offset_of!(StartCtx, mair),
    tcr = const offset_of!(StartCtx, tcr),
    ttbr0 = const offset_of!(StartCtx, ttbr0),
    vbar = const offset_of!(StartCtx, vbar),
    sctlr = const offset_of!(StartCtx, sctlr),
    stack_top = const offset_of!(StartCtx, stack_top),
    main = sym secondary_rust,
);

unsafe extern "C" {
    /// The first instruction above: PSCI CPU_ON's entry point.
    pub static convtest_secondary_entry: u8;
}

/// Called by the code above on the CPU's own stack, MMU and caches on, at EL1.
extern "C" fn secondary_rust(ctx: &StartCtx) -> ! {
    let cpu = ctx.cpu.load(Ordering::Relaxed) as usize;
    match MAIN.get() {
        Some(main) => main(cpu),
        // Unreachable: start_cpu records `main` before any CPU_ON.
        None => loop {
            aarch64_cpu::asm::wfe();
        },
    }
}
