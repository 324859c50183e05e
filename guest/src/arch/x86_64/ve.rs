//! #VE, the virtualization exception a TD takes where a normal guest would
//! exit: CPUID leaves the TDX module does not answer, port and MMIO access,
//! HLT, MSRs. The entry saves every general register into a [`TrapFrame`],
//! the handler asks the TDX module what happened (`TDG.VP.VEINFO.GET`) and
//! the `tdx-guest` crate's `handle_virtual_exception` serves it through
//! `TDG.VP.VMCALL` and moves RIP past the instruction. Only a TD ever
//! raises #VE, so the handler needs no mode check.

use crate::arch::hooks;
use core::arch::naked_asm;
use tdx_guest::TdxTrapFrame;

/// The general registers as the entry pushed them (r15 lowest), then the
/// CPU's interrupt frame (no error code for #VE).
#[repr(C)]
pub struct TrapFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The IDT's #VE entry. Register contract: the CPU pushed SS, RSP, RFLAGS,
/// CS, RIP with RSP 16-byte aligned; the 15 pushes below keep it aligned
/// for the call; everything is restored before IRETQ. The red zone is off
/// on this target, so the interrupted code had nothing below its RSP.
#[unsafe(naked)]
pub extern "C" fn entry() {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
        "push r15",
        "mov rdi, rsp",
        "call {handler}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "iretq",
        handler = sym handler,
    )
}

extern "C" fn handler(frame: &mut TrapFrame) {
    match tdx_guest::tdcall::get_veinfo() {
        Ok(info) => tdx_guest::handle_virtual_exception(frame, &info),
        Err(e) => hooks::fatal(format_args!(
            "x86 exception vector=20 #VE at rip={:#x}: TDG.VP.VEINFO.GET answered {e:?}",
            frame.rip
        )),
    }
}

macro_rules! regs {
    ($($get:ident $set:ident;)*) => {
        impl TdxTrapFrame for TrapFrame {
            $(
                fn $get(&self) -> usize {
                    self.$get as usize
                }
                fn $set(&mut self, v: usize) {
                    self.$get = v as u64;
                }
            )*
        }
    };
}

regs! {
    rax set_rax; rbx set_rbx; rcx set_rcx; rdx set_rdx; rsi set_rsi; rdi set_rdi;
    rip set_rip; r8 set_r8; r9 set_r9; r10 set_r10; r11 set_r11; r12 set_r12;
    r13 set_r13; r14 set_r14; r15 set_r15; rbp set_rbp;
}
