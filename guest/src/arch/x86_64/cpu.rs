//! CPUID, the time-stamp counter and its frequency, FPU/SSE enabling.

use core::arch::x86_64::{__cpuid_count, CpuidResult};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    __cpuid_count(leaf, subleaf)
}

pub fn max_basic_leaf() -> u32 {
    cpuid(0, 0).eax
}

/// Highest extended leaf (CPUID 0x80000000 EAX). Leaves above it return the
/// highest basic leaf's data on Intel, so callers compare before asking.
pub fn max_ext_leaf() -> u32 {
    cpuid(convtest_proto::cpuid::EXT_MAX_LEAF, 0).eax
}

/// CPUID.1:ECX bit 31, set by hypervisors (including TCG) for their guests.
pub fn hypervisor_bit() -> bool {
    cpuid(1, 0).ecx & (1 << 31) != 0
}

/// Highest hypervisor leaf (CPUID 0x40000000 EAX), asked only when the
/// hypervisor bit says the range exists: on bare metal those leaves alias
/// the highest basic leaf and return noise.
pub fn max_hypervisor_leaf() -> Option<u32> {
    hypervisor_bit().then(|| cpuid(convtest_proto::cpuid::HYPERVISOR_LEAF, 0).eax)
}

pub fn cycles() -> u64 {
    // SAFETY: rdtsc only reads the counter; CR4.TSD is clear, so it works at CPL 0
    // (and we are always at CPL 0).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC frequency in Hz from what the CPU or hypervisor states, most exact
/// source first: the crystal ratio (leaf 0x15) is the TSC by definition, the
/// hypervisor's kHz (0x40000010, VMware/KVM convention) is what it programmed,
/// leaf 0x16 is only the nominal base clock (equal to the TSC on Intel parts
/// with an invariant TSC).
pub fn cycle_freq() -> Result<u64, &'static str> {
    let max = max_basic_leaf();
    if max >= 0x15 {
        let l = cpuid(0x15, 0);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Ok(u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax));
        }
    }
    if max_hypervisor_leaf().is_some_and(|m| m >= 0x4000_0010) {
        let khz = cpuid(0x4000_0010, 0).eax;
        if khz != 0 {
            return Ok(u64::from(khz) * 1000);
        }
    }
    if max >= 0x16 {
        let mhz = cpuid(0x16, 0).eax & 0xffff;
        if mhz != 0 {
            return Ok(u64::from(mhz) * 1_000_000);
        }
    }
    Err("CPUID 0x15/0x16 and 0x40000010 give no TSC frequency")
}

/// FPU and SSE usable: the bootloader path may leave CR0.EM set or CR4.OSFXSR
/// clear, and code built with SSE would then fault on its first vector op.
pub fn enable_sse() {
    let cr0 = (Cr0::read() - Cr0Flags::EMULATE_COPROCESSOR - Cr0Flags::TASK_SWITCHED)
        | Cr0Flags::MONITOR_COPROCESSOR;
    let cr4 = Cr4::read() | Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE;
    // SAFETY: only the FPU/SSE control bits change; paging and protection
    // bits are written back as read.
    unsafe {
        Cr0::write(cr0);
        Cr4::write(cr4);
    }
}
