//! The KVM hypercall trap instructions, one function each. Which one a CPU
//! needs is the caller's choice (CPUID 0 vendor: `vmmcall` on AMD/Hygon,
//! `vmcall` elsewhere); the wrong one raises #UD.
//!
//! Register contract (KVM, Documentation/virt/kvm/x86/hypercalls.rst):
//! in: rax = hypercall number, rbx = a0, rcx = a1, rdx = a2 (rsi = a3, not
//! used here); out: rax = return value. KVM preserves every other register;
//! a VMM serving the call as a KVM_EXIT_HYPERCALL writes only rax. rcx and
//! rdx are still declared clobbered so a VMM that writes them cannot break
//! the caller. Memory is not declared untouched: the call changes what the
//! guest's pages are (and possibly their bytes).
//!
//! LLVM reserves rbx, so it cannot be an asm operand: a0 goes in a scratch
//! register and is swapped into rbx around the trap.

use core::arch::asm;

/// `vmcall` (Intel VMX) with nr, a0..a2; returns rax.
pub fn vmcall(nr: u64, a0: u64, a1: u64, a2: u64) -> u64 {
    let ret: u64;
    // SAFETY: the trap exits to the hypervisor, which returns with only rax
    // (and, defensively, rcx/rdx) changed; rbx is swapped back, so the
    // compiler's rbx is intact. No stack use. The memory effects are the
    // conversion the caller asked for on pages it owns.
    unsafe {
        asm!(
            "xchg {a0}, rbx",
            "vmcall",
            "xchg {a0}, rbx",
            a0 = inout(reg) a0 => _,
            inout("rax") nr => ret,
            inout("rcx") a1 => _,
            inout("rdx") a2 => _,
            options(nostack),
        );
    }
    ret
}

/// `vmmcall` (AMD SVM) with nr, a0..a2; returns rax.
pub fn vmmcall(nr: u64, a0: u64, a1: u64, a2: u64) -> u64 {
    let ret: u64;
    // SAFETY: as for `vmcall`.
    unsafe {
        asm!(
            "xchg {a0}, rbx",
            "vmmcall",
            "xchg {a0}, rbx",
            a0 = inout(reg) a0 => _,
            inout("rax") nr => ret,
            inout("rcx") a1 => _,
            inout("rdx") a2 => _,
            options(nostack),
        );
    }
    ret
}
