//! The SEV-SNP traps, one small function each, register contract beside it.

use convtest_proto::size_walk::PageSize;
use convtest_proto::snp::ghcb::MSR_GHCB;
use convtest_proto::snp::pvalidate::rmp_page_size;
use core::arch::asm;

/// PVALIDATE (F2 0F 01 FF; AMD64 APM vol. 3): rax = the page's virtual
/// address (its private mapping), ecx = 0 (4K) / 1 (2M), edx = 1 validate /
/// 0 rescind; out eax = 0, 1 (FAIL_INPUT) or 6 (FAIL_SIZEMISMATCH), rFLAGS.CF
/// = 1 when the RMP already held that state. Memory is not declared
/// untouched: the page's Validated bit changes.
pub fn pvalidate(va: u64, size: PageSize, validate: bool) -> (u64, bool) {
    let rax: u64;
    let cf: u8;
    // SAFETY: PVALIDATE changes only the RMP's Validated bit of the page at
    // `va`, which the caller owns and converts; the registers are as
    // declared; it does not touch the stack.
    unsafe {
        asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xff",
            "setc {cf}",
            cf = out(reg_byte) cf,
            inout("rax") va => rax,
            in("rcx") rmp_page_size(size),
            in("rdx") u64::from(validate),
            options(nostack),
        );
    }
    (rax & 0xffff_ffff, cf != 0)
}

/// One GHCB MSR protocol exchange: WRMSR 0xC0010130 = `request`, VMGEXIT
/// (F3 0F 01 D9, `rep vmmcall`), RDMSR 0xC0010130 = the answer. The
/// hypervisor sees only the MSR; no register but rax/rdx/rcx changes.
pub fn ghcb_msr_exchange(request: u64) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the GHCB MSR is the guest's own mailbox to the hypervisor;
    // VMGEXIT exits and resumes after itself; no stack use.
    unsafe {
        asm!(
            "wrmsr",
            ".byte 0xf3, 0x0f, 0x01, 0xd9",
            "rdmsr",
            in("ecx") MSR_GHCB,
            inout("eax") request as u32 => lo,
            inout("edx") (request >> 32) as u32 => hi,
            options(nostack),
        );
    }
    u64::from(hi) << 32 | u64::from(lo)
}

/// Writes the GHCB MSR without exiting (to point it at the GHCB page).
pub fn write_ghcb_msr(value: u64) {
    // SAFETY: WRMSR of the guest's own GHCB MSR; no memory is touched.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") MSR_GHCB,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, nomem),
        );
    }
}

/// VMGEXIT with the GHCB MSR pointing at the registered GHCB page.
pub fn vmgexit() {
    // SAFETY: exits to the hypervisor, which reads and writes the shared
    // GHCB page (hence no `nomem`) and resumes after the instruction.
    unsafe { asm!(".byte 0xf3, 0x0f, 0x01, 0xd9", options(nostack)) };
}
