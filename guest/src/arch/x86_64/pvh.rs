//! PVH direct boot: the Xen ELF note QEMU (and Firecracker, cloud-hypervisor,
//! Xen) look for, and the 32-bit entry that reaches long mode.
//!
//! The loader enters `pvh_start32` in 32-bit protected mode, paging off,
//! flat segments, interrupts off, `ebx` = physical address of
//! `hvm_start_info`. The asm zeroes .bss (page tables and stack live there),
//! identity-maps the first 4 GiB with 2 MiB pages, enables PAE + long mode +
//! paging and SSE, jumps to 64-bit code and calls [`pvh_entry`] on the boot
//! stack. No Rust runs before SSE is on and .bss is zero.

use super::init::init_cpu;
use super::pvh_paging::{BOOT_PD, BOOT_PDPT, BOOT_PML4, BOOT_STACK, BootStack, IDENTITY_LIMIT};
use crate::arch::hooks;
use crate::boot::BootInfo;
use convtest_proto::range::MemRange;
use spin::Once;

core::arch::global_asm!(
    // XEN_ELFNOTE_PHYS32_ENTRY (18). QEMU reads the descriptor as a
    // pointer-sized value in 64-bit ELFs, so it is a .quad, as in Linux.
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",
    ".long 8",
    ".long 18",
    ".asciz \"Xen\"",
    ".balign 4",
    ".quad pvh_start32",
    ".balign 4",
    ".popsection",
    //
    ".pushsection .rodata.pvh_gdt, \"a\"",
    ".balign 16",
    "pvh_gdt:",
    ".quad 0",
    ".quad 0x00af9a000000ffff", // 0x08: 64-bit code, DPL 0
    ".quad 0x00cf92000000ffff", // 0x10: flat data
    "pvh_gdt_end:",
    ".balign 4",
    "pvh_gdt_ptr:",
    ".word pvh_gdt_end - pvh_gdt - 1",
    ".long pvh_gdt",
    ".popsection",
    //
    ".pushsection .text.pvh32, \"ax\"",
    ".code32",
    ".global pvh_start32",
    "pvh_start32:",
    "cli",
    "cld",
    "mov %ebx, %esi", // hvm_start_info, untouched until the Rust call
    // Zero .bss: __bss_start/__bss_end are page-aligned by the linker script.
    "mov $__bss_start, %edi",
    "mov $__bss_end, %ecx",
    "sub %edi, %ecx",
    "shr $2, %ecx",
    "xor %eax, %eax",
    "rep stosl",
    // PML4[0] -> PDPT; PDPT[0..4] -> 4 PDs; PD entries: 2 MiB, present, writable.
    "mov ${pdpt}, %eax",
    "or $3, %eax",
    "mov %eax, {pml4}",
    "mov ${pd}, %eax",
    "or $3, %eax",
    "xor %ecx, %ecx",
    "1:",
    "mov %eax, {pdpt}(,%ecx,8)",
    "add $4096, %eax",
    "inc %ecx",
    "cmp $4, %ecx",
    "jb 1b",
    "xor %ecx, %ecx",
    "2:",
    "mov %ecx, %eax",
    "shl $21, %eax",
    "or $0x83, %eax",
    "mov %eax, {pd}(,%ecx,8)",
    "inc %ecx",
    "cmp $2048, %ecx",
    "jb 2b",
    // CR4: PAE (5), OSFXSR (9), OSXMMEXCPT (10).
    "mov %cr4, %eax",
    "or $0x620, %eax",
    "mov %eax, %cr4",
    "mov ${pml4}, %eax",
    "mov %eax, %cr3",
    // EFER.LME
    "mov $0xc0000080, %ecx",
    "rdmsr",
    "or $0x100, %eax",
    "wrmsr",
    // CR0: PG | MP | PE on, EM (2) and TS (3) off: paging + usable FPU/SSE.
    "mov %cr0, %eax",
    "and $0xfffffff3, %eax",
    "or $0x80000003, %eax",
    "mov %eax, %cr0",
    "lgdt pvh_gdt_ptr",
    "ljmp $0x08, $pvh_start64",
    //
    ".code64",
    "pvh_start64:",
    "mov $0x10, %eax",
    "mov %eax, %ds",
    "mov %eax, %es",
    "mov %eax, %ss",
    "xor %eax, %eax",
    "mov %eax, %fs",
    "mov %eax, %gs",
    "lea {stack}+{stack_size}(%rip), %rsp",
    "mov %esi, %edi",
    "call {entry}",
    "ud2",
    ".popsection",
    pml4 = sym BOOT_PML4,
    pdpt = sym BOOT_PDPT,
    pd = sym BOOT_PD,
    stack = sym BOOT_STACK,
    stack_size = const core::mem::size_of::<BootStack>(),
    entry = sym pvh_entry,
    options(att_syntax),
);

unsafe extern "C" {
    // Linker script symbols: only their addresses mean anything.
    static __kernel_start: u8;
    static __kernel_end: u8;
}

static BOOT: Once<BootInfo> = Once::new();

/// First Rust code on the PVH path: long mode, identity map of 4 GiB, boot stack.
extern "C" fn pvh_entry(start_info: u32) -> ! {
    let guard = super::pvh_paging::guard_page();
    init_cpu(0, guard);
    super::pvh_paging::unmap_guard_page();
    let kernel = MemRange::new(
        &raw const __kernel_start as u64,
        &raw const __kernel_end as u64,
    );
    let boot = match super::pvh_info::boot_info(u64::from(start_info), kernel, IDENTITY_LIMIT) {
        Ok(b) => b,
        Err(e) => hooks::fatal(format_args!("PVH boot: {e}")),
    };
    let ram_end = boot.ram.iter().map(|r| r.end).max().unwrap_or(0);
    super::pvh_paging::map_identity_up_to(ram_end);
    hooks::enter_kernel(BOOT.call_once(|| boot))
}
