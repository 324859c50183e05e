//! The boot CPU's local APIC, only to send the INIT and start-up IPIs that
//! start the other CPUs.
//!
//! x2APIC, not xAPIC: the ICR is one 64-bit MSR write with the full
//! destination APIC ID, so there is no MMIO page at 0xFEE00000 to map
//! uncached (the PVH identity map is write-back 2 MiB pages, the bootloader's
//! physical-memory window is its own) and no delivery-status bit to poll.
//! QEMU offers it under TCG (`-cpu max`, CPUID.1:ECX[21] set) and KVM always
//! does; without the CPUID bit [`enable_x2apic`] refuses rather than guess.
//! Every started CPU switches to x2APIC mode: the boot CPU to send, the
//! others to receive the wake IPI their idle loop halts for ([`super::idle`]).

use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_EN: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;
const X2APIC_ID: u32 = 0x802;
const X2APIC_ICR: u32 = 0x830;
const X2APIC_EOI: u32 = 0x80b;
const X2APIC_SVR: u32 = 0x80f;
/// SVR bit 8: the APIC accepts fixed interrupts (after INIT it does not).
const SVR_ENABLE: u64 = 1 << 8;
/// ICR destination shorthand 11b: every CPU but the sender.
const ALL_BUT_SELF: u32 = 0b11 << 18;
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

/// Lets this CPU's APIC accept fixed interrupts, `spurious` as its
/// spurious vector. Only after [`enable_x2apic`] succeeded on this CPU.
pub fn accept_interrupts(spurious: u8) {
    // SAFETY: this CPU's APIC is in x2APIC mode, so the SVR MSR exists;
    // every LVT entry stays masked as INIT left it, so only IPIs arrive.
    unsafe { Msr::new(X2APIC_SVR).write(SVR_ENABLE | u64::from(spurious)) };
}

/// Ends the interrupt this CPU is handling (x2APIC mode only).
pub fn eoi() {
    // SAFETY: called from the handler of a fixed interrupt this CPU's APIC
    // (in x2APIC mode) delivered; writing 0 to EOI is the architectural ack.
    unsafe { Msr::new(X2APIC_EOI).write(0) };
}

/// A fixed interrupt `vector` to every CPU but this one (x2APIC mode only;
/// CPUs still waiting for their SIPI ignore it). The shorthand makes the
/// ICR ignore the destination.
pub fn send_all_but_self(vector: u8) {
    send(0, ALL_BUT_SELF | u32::from(vector));
}

/// Sends one IPI: `low` = ICR bits 31:0, to x2APIC ID `dest`.
/// Only after [`enable_x2apic`] succeeded.
pub fn send(dest: u32, low: u32) {
    let mut icr = Msr::new(X2APIC_ICR);
    // SAFETY: the boot CPU's APIC is in x2APIC mode (the caller enabled it),
    // so the ICR MSR exists; the messages sent are INIT and start-up IPIs to
    // another CPU and the fixed wake IPI to the others, none of which
    // affects this one.
    unsafe { icr.write(u64::from(dest) << 32 | u64::from(low)) };
}
