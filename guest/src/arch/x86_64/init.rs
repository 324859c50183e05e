//! Per-CPU setup shared by both boot entries, run first thing on the boot
//! stack.

use super::{gdt, idt, paging, serial};
use crate::arch::hooks;

/// Boot stack size on both entries (PVH: in .bss; bootloader: its config).
pub const STACK_BYTES: u64 = 256 * 1024;

/// FPU/SSE, descriptor tables and the early crash path, then the console.
/// The IDT comes before the first port access: in a TD that access takes a
/// #VE and in an SEV-ES/SNP guest a #VC (ve.rs, vc.rs serve them), and a TD
/// is detected (coco.rs) so its console goes through TDVMCALL.
/// `phys_offset` is where physical memory is mapped (0 for the PVH
/// identity map); `stack_guard` is the virtual address of the unmapped page
/// below the boot stack, named in the #DF report.
pub fn init_cpu(phys_offset: u64, stack_guard: u64) {
    super::cpu::enable_sse();
    hooks::set_early_fatal(super::fatal::early);
    paging::set_phys_offset(phys_offset);
    idt::set_stack_guard(stack_guard);
    gdt::init();
    idt::init();
    super::coco::init();
    if !super::coco::in_td() {
        serial::init();
    }
}
