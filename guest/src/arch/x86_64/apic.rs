//! The boot CPU's local APIC, only to send the INIT and start-up IPIs that
//! start the other CPUs.
//!
//! x2APIC, not xAPIC: the ICR is one 64-bit MSR write with the full
//! destination APIC ID, so there is no MMIO page at 0xFEE00000 to map
//! uncached (the PVH identity map is write-back 2 MiB pages, the bootloader's
//! physical-memory window is its own) and no delivery-status bit to poll.
//! QEMU offers it under TCG (`-cpu max`, CPUID.1:ECX[21] set) and KVM always
//! does; without the CPUID bit [`enable_x2apic`] refuses rather than guess.
//! Only the boot CPU switches to x2APIC mode; the others keep whatever mode
//! they start in, nothing here uses their APICs.

use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_EN: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;
const X2APIC_ID: u32 = 0x802;
const X2APIC_ICR: u32 = 0x830;
const CPUID1_ECX_X2APIC: u32 = 1 << 21;

/// ICR low words (delivery mode, level, trigger), as Linux sends them.
pub const INIT_ASSERT: u32 = 0x0000_c500; // level trigger, assert, INIT
pub const INIT_DEASSERT: u32 = 0x0000_8500; // level trigger, de-assert, INIT
const STARTUP: u32 = 0x0000_0600;

/// ICR low word of a start-up IPI: the CPU starts in real mode at
/// `vector << 12`.
pub fn startup(vector: u8) -> u32 {
    STARTUP | u32::from(vector)
}

/// Puts the boot CPU's local APIC into x2APIC mode (enabling it first if the
/// firmware left it globally disabled) and returns its x2APIC ID.
pub fn enable_x2apic() -> Result<u32, &'static str> {
    if super::cpu::cpuid(1, 0).ecx & CPUID1_ECX_X2APIC == 0 {
        return Err(
            "CPUID.1:ECX[21] clear: no x2APIC, and this build sends INIT/SIPI through x2APIC MSRs only",
        );
    }
    let mut base = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (CPUID says
    // x2APIC, so there is one). Going disabled -> xAPIC -> x2APIC is the
    // architectural order (EN before EXTD); the base address bits are kept.
    // Nothing else in this kernel uses the APIC, so no xAPIC MMIO access can
    // be in flight.
    unsafe {
        let v = base.read();
        if v & APIC_BASE_EN == 0 {
            base.write(v | APIC_BASE_EN);
        }
        if v & APIC_BASE_EXTD == 0 {
            base.write(v | APIC_BASE_EN | APIC_BASE_EXTD);
        }
    }
    // SAFETY: the APIC is in x2APIC mode now, where the ID MSR is readable.
    let id = unsafe { Msr::new(X2APIC_ID).read() };
    Ok(id as u32)
}

/// Sends one IPI: `low` = ICR bits 31:0, to x2APIC ID `dest`.
/// Only after [`enable_x2apic`] succeeded.
pub fn send(dest: u32, low: u32) {
    let mut icr = Msr::new(X2APIC_ICR);
    // SAFETY: the boot CPU's APIC is in x2APIC mode (the caller enabled it),
    // so the ICR MSR exists; the messages sent are INIT and start-up IPIs to
    // another CPU, which do not affect this one.
    unsafe { icr.write(u64::from(dest) << 32 | u64::from(low)) };
}
