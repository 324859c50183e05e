//! The arm64 Image header and the first instructions: leave EL2 if the loader
//! started us there, enable FP/SIMD (Rust code uses NEON everywhere), zero
//! bss, set up the boot stack, relocate, then call `boot_main`.
//!
//! Before anything writes to the Image, one load per 4 KiB touches it from
//! its first byte upwards (first_touch.rs says why pKVM on 16 KiB hosts
//! needs that order).
//!
//! Boot protocol (Documentation/arch/arm64/booting.rst): x0 = DTB physical
//! address, MMU off, D-cache off for our image, interrupts masked, entered at
//! EL2 or EL1. The DTB pointer lives in x19 and the "came from EL2" flag in
//! x20 until `boot_main`; both are callee-saved, so `relocate` keeps them.
//! Entry at EL3 is not supported (it would need an SCR_EL3 set-up): the CPU
//! parks in the final `wfe` loop.

use core::arch::global_asm;

// Image header fields (all little-endian):
//   0  code0/code1   branch to the entry code
//   8  text_offset   0: load right at a 2 MiB-aligned base
//  16  image_size    bytes from the load address through bss, stack and page
//                    tables, so the loader keeps the DTB/initrd clear of them
//  24  flags         bit 0 = 0 little-endian, bits 1-2 = 01 4 KiB pages,
//                    bit 3 = 1 the base may be anywhere in physical memory
//  56  magic         "ARM\x64"
global_asm!(
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    b       convtest_entry
    .long   0
    .quad   0
    .quad   __image_size
    .quad   0xa
    .quad   0
    .quad   0
    .quad   0
    .ascii  "ARM\x64"
    .long   0
"#
);

// EL2 set-up before dropping to EL1, shared with the secondary CPUs' entry
// (secondary.rs): each CPU has its own EL2 registers, so each one that starts
// at EL2 runs this itself.
//   CPTR_EL2   = 0x22ff  RES1 bits only: no FP/SIMD, SVE or SME traps
//   HCR_EL2    = RW (bit 31): EL1 is AArch64; HCD (bit 29): nobody stays at
//                EL2 to answer, so `hvc` must be UNDEFINED at EL1, not vanish
//                into an EL2 vector we never installed
//   CNTHCTL_EL2 = 3      EL1 may read the physical counter and use its timer
//   CNTVOFF_EL2 = 0      virtual count = physical count
//   SPSR_EL2   = 0x3c5   EL1h with D, A, I, F masked
// SCTLR_EL1 = 0x30d00800 is its RES1 bits: MMU and caches off until mmu.rs.
//
// Asm text for `concat!`: clobbers x9, ends in `eret` to the local label `1`
// after it (`1f`), which the including code must define right after.
macro_rules! el2_to_el1 {
    () => {
        r#"
    mov     x9, #0x22ff
    msr     cptr_el2, x9
    mov     x9, #0xa0000000
    msr     hcr_el2, x9
    mov     x9, #3
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    msr     vttbr_el2, xzr
    mov     x9, #0x0800
    movk    x9, #0x30d0, lsl #16
    msr     sctlr_el1, x9
    mov     x9, #0x3c5
    msr     spsr_el2, x9
    adr     x9, 1f
    msr     elr_el2, x9
    isb
    eret
"#
    };
}
pub(super) use el2_to_el1;

global_asm!(
    concat!(
        r#"
    .section .text.boot, "ax"
    .global convtest_entry
convtest_entry:
    mov     x19, x0
    mov     x20, #0
    msr     daifset, #0xf
    mrs     x9, CurrentEL
    lsr     x9, x9, #2
    cmp     x9, #3
    b.eq    4f
    cmp     x9, #2
    b.ne    1f
    mov     x20, #1
"#,
        el2_to_el1!(),
        r#"
1:
    mov     x9, #(3 << 20)
    msr     cpacr_el1, x9
    mov     x9, #0x0800
    movk    x9, #0x30d0, lsl #16
    msr     sctlr_el1, x9
    msr     spsel, #1
    isb

    adrp    x9, __image_start
    add     x9, x9, :lo12:__image_start
    adrp    x10, __image_end
    add     x10, x10, :lo12:__image_end
5:
    cmp     x9, x10
    b.hs    6f
    ldrb    w11, [x9]
    add     x9, x9, #4096
    b       5b
6:
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
2:
    cmp     x9, x10
    b.hs    3f
    stp     xzr, xzr, [x9], #16
    b       2b
3:
    adrp    x9, __stack_top
    add     x9, x9, :lo12:__stack_top
    mov     sp, x9

    adrp    x0, __image_start
    add     x0, x0, :lo12:__image_start
    bl      {relocate}
    mov     x2, x0
    mov     x0, x19
    mov     x1, x20
    bl      {main}
4:
    wfe
    b       4b
"#
    ),
    relocate = sym super::reloc::relocate,
    main = sym super::boot::boot_main,
);
