//! The SIPI trampoline: 16-bit real mode to 64-bit long mode for a secondary
//! CPU, ending in a jump to the kernel-text landing (`Params::entry`, in
//! smp.rs) that switches to the boot CPU's page tables and stack.
//!
//! The blob `ap_tramp_start..ap_tramp_end` is never executed where it is
//! linked: [`install`] copies it to a 4 KiB page `T` below 1 MiB, and the
//! SIPI vector `T >> 12` starts the CPU at `T` (CS = T >> 4, IP = 0). It is
//! position-independent: the real-mode code takes its own base from CS and
//! fills in the linear addresses it needs (GDT base in `ap_tramp_gdt_ptr`,
//! far-jump offsets in `ap_tramp_pm32_ptr`/`ap_tramp_lm64_ptr`), in its own
//! page. It uses no stack. Registers: ESI (then RBX) = T throughout; CPUID
//! clobbers EAX..EDX; at the `jmp` into kernel text the ones listed below.
//!
//! Modes: real mode -> `lgdt` of the blob's own GDT (0x08 32-bit code, 0x10
//! data, 0x18 64-bit code), CR0.PE, far jump -> 32-bit protected mode:
//! claim the block, CR4.PAE, CR3 = `temp_cr3`, EFER = `efer`, CR0 = `cr0`
//! (paging on: compatibility mode) -> far jump to 0x18: 64-bit mode, still
//! at T -> `jmp` to `convtest_ap_start64` in kernel text.
//!
//! Memory contract (the [`Params`] block at the end of the copy, written by
//! the boot CPU before the SIPI, read by the starting CPU):
//! - `state`: [`IDLE`]; `ARMED + apic_id` addressed to one CPU; the CPU
//!   whose CPUID.1:EBX[31:24] APIC ID matches moves it to [`CLAIMED`] with
//!   `lock cmpxchg` (any other CPU, e.g. one whose start timed out and that
//!   wakes late, parks in `cli; hlt` without touching anything), then to
//!   [`COPIED`] once it holds every field in registers, after which the boot
//!   CPU may reuse the block.
//! - `temp_cr3`: physical PML4, below 4 GiB (loaded by a 32-bit `mov`), that
//!   maps the page `T` to itself and the kernel like the boot CPU's tables.
//! - `cr0`: the boot CPU's CR0 (PG, PE, WP, ...), loaded to enable paging.
//! - `efer`: EFER low half with LME set (and NXE/SCE as on the boot CPU).
//! - `cpu`, `arg`: passed to `ap_entry` (cpu index, its descriptor tables).
//! - `stack_top`: the CPU's own stack, 16-byte aligned.
//! - `cr3`: the boot CPU's CR3, loaded in kernel text (any address).
//! - `entry`: address of the landing (`convtest_ap_start64`) in kernel text.
//!
//! Register contract at the `jmp` to `entry` (64-bit mode, this blob's GDT,
//! interrupts off, CR4 = PAE|OSFXSR|OSXMMEXCPT): RDI = cpu, RSI = arg,
//! RDX = stack_top, RCX = cr3.

use core::mem::{offset_of, size_of};

pub const IDLE: u32 = 0;
pub const CLAIMED: u32 = 1;
pub const COPIED: u32 = 2;
/// `ARMED + apic_id`: the block waits for that CPU (APIC IDs < 256).
pub const ARMED: u32 = 0x100;

/// The parameter block at the end of the trampoline copy (see the module
/// comment for each field's meaning).
#[repr(C)]
pub struct Params {
    pub state: u32,
    pub temp_cr3: u32,
    pub cr0: u32,
    pub efer: u32,
    pub cpu: u64,
    pub arg: u64,
    pub stack_top: u64,
    pub cr3: u64,
    pub entry: u64,
}

core::arch::global_asm!(
    ".pushsection .rodata.ap_trampoline, \"a\"",
    ".balign 16",
    ".code16",
    "ap_tramp_start:",
    "cli",
    "cld",
    "mov %cs, %ax",
    "mov %ax, %ds",
    "movzwl %ax, %esi",
    "shl $4, %esi", // ESI = T, the linear base of this copy, from here to the end
    "leal (ap_tramp_gdt - ap_tramp_start)(%esi), %eax",
    "movl %eax, (ap_tramp_gdt_ptr + 2 - ap_tramp_start)",
    "leal (ap_tramp_pm32 - ap_tramp_start)(%esi), %eax",
    "movl %eax, (ap_tramp_pm32_ptr - ap_tramp_start)",
    "leal (ap_tramp_lm64 - ap_tramp_start)(%esi), %eax",
    "movl %eax, (ap_tramp_lm64_ptr - ap_tramp_start)",
    "lgdtl (ap_tramp_gdt_ptr - ap_tramp_start)",
    "mov %cr0, %eax",
    "or $1, %eax", // PE
    "mov %eax, %cr0",
    "ljmpl *(ap_tramp_pm32_ptr - ap_tramp_start)",
    //
    ".code32",
    "ap_tramp_pm32:",
    "mov $0x10, %eax",
    "mov %eax, %ds",
    "mov %eax, %es",
    "mov %eax, %ss",
    "xor %eax, %eax",
    "mov %eax, %fs",
    "mov %eax, %gs",
    // Claim the block: state ARMED + my APIC ID -> CLAIMED, or park.
    "mov $1, %eax",
    "cpuid",
    "shr $24, %ebx",
    "lea {armed}(%ebx), %eax",
    "mov ${claimed}, %edx",
    "lock cmpxchg %edx, (ap_tramp_params - ap_tramp_start + {p_state})(%esi)",
    "jne 3f",
    // CR4: PAE (5), OSFXSR (9), OSXMMEXCPT (10); the rest in ap_entry.
    "mov %cr4, %eax",
    "or $0x620, %eax",
    "mov %eax, %cr4",
    "mov (ap_tramp_params - ap_tramp_start + {p_temp_cr3})(%esi), %eax",
    "mov %eax, %cr3",
    "mov $0xc0000080, %ecx", // EFER
    "mov (ap_tramp_params - ap_tramp_start + {p_efer})(%esi), %eax",
    "xor %edx, %edx",
    "wrmsr",
    "mov (ap_tramp_params - ap_tramp_start + {p_cr0})(%esi), %eax",
    "mov %eax, %cr0", // paging on: compatibility mode, T is identity-mapped
    "ljmpl *(ap_tramp_lm64_ptr - ap_tramp_start)(%esi)",
    "3:",
    "cli",
    "hlt",
    "jmp 3b",
    //
    ".code64",
    "ap_tramp_lm64:",
    "mov %esi, %ebx", // zero-extends: upper halves are undefined after the mode switch
    "mov (ap_tramp_params - ap_tramp_start + {p_cpu})(%rbx), %rdi",
    "mov (ap_tramp_params - ap_tramp_start + {p_arg})(%rbx), %rsi",
    "mov (ap_tramp_params - ap_tramp_start + {p_stack})(%rbx), %rdx",
    "mov (ap_tramp_params - ap_tramp_start + {p_cr3})(%rbx), %rcx",
    "mov (ap_tramp_params - ap_tramp_start + {p_entry})(%rbx), %rax",
    "movl ${copied}, (ap_tramp_params - ap_tramp_start + {p_state})(%rbx)",
    "jmp *%rax",
    //
    ".balign 8",
    "ap_tramp_gdt:",
    ".quad 0",
    ".quad 0x00cf9a000000ffff", // 0x08: 32-bit code, flat
    ".quad 0x00cf92000000ffff", // 0x10: data, flat
    ".quad 0x00af9a000000ffff", // 0x18: 64-bit code
    "ap_tramp_gdt_end:",
    "ap_tramp_gdt_ptr:",
    ".word ap_tramp_gdt_end - ap_tramp_gdt - 1",
    ".long 0", // base: filled in by the real-mode code
    "ap_tramp_pm32_ptr:",
    ".long 0", // offset: filled in by the real-mode code
    ".word 0x08",
    "ap_tramp_lm64_ptr:",
    ".long 0", // offset: filled in by the real-mode code
    ".word 0x18",
    ".balign 8",
    ".global ap_tramp_params",
    "ap_tramp_params:",
    ".skip {params_size}",
    ".global ap_tramp_end",
    "ap_tramp_end:",
    ".global ap_tramp_start",
    ".popsection",
    armed = const ARMED,
    claimed = const CLAIMED,
    copied = const COPIED,
    p_state = const offset_of!(Params, state),
    p_temp_cr3 = const offset_of!(Params, temp_cr3),
    p_cr0 = const offset_of!(Params, cr0),
    p_efer = const offset_of!(Params, efer),
    p_cpu = const offset_of!(Params, cpu),
    p_arg = const offset_of!(Params, arg),
    p_stack = const offset_of!(Params, stack_top),
    p_cr3 = const offset_of!(Params, cr3),
    p_entry = const offset_of!(Params, entry),
    params_size = const size_of::<Params>(),
    options(att_syntax),
);

unsafe extern "C" {
    // Symbols of the blob above: only their addresses mean anything.
    static ap_tramp_start: u8;
    static ap_tramp_params: u8;
    static ap_tramp_end: u8;
}

fn blob() -> (*const u8, usize, usize) {
    let start = &raw const ap_tramp_start;
    let len = &raw const ap_tramp_end as usize - start as usize;
    let params = &raw const ap_tramp_params as usize - start as usize;
    (start, len, params)
}

/// Copies the blob to the start of `page` (the virtual address of the
/// trampoline page) and returns its parameter block, `state` = IDLE.
///
/// # Safety
/// `page` must be a mapped, writable 4 KiB page of RAM that nothing else
/// uses, and no CPU may be running the trampoline in it.
pub unsafe fn install(page: *mut u8) -> *mut Params {
    let (start, len, params) = blob();
    assert!(
        len <= 4096,
        "trampoline blob is {len} bytes, more than a page"
    );
    // SAFETY: the blob is `len` bytes of .rodata; `page` holds 4096 writable
    // bytes per the caller; the two cannot overlap (rodata vs free RAM).
    unsafe { core::ptr::copy_nonoverlapping(start, page, len) };
    // SAFETY: `params` is the 8-aligned offset of the Params-sized slot
    // inside the copied blob (`.balign 8` + `.skip size_of::<Params>()`).
    let p = unsafe { page.add(params) }.cast::<Params>();
    // SAFETY: as above; no CPU reads it yet.
    unsafe { (&raw mut (*p).state).write_volatile(IDLE) };
    p
}
