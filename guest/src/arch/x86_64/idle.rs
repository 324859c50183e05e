//! How a secondary CPU waits for CPU 0's next job: halted with interrupts
//! on, woken by a fixed IPI ([`WAKE_VECTOR`]) that CPU 0 sends after it posts
//! the job. Not spinning matters on a nested platform: an idle CPU that
//! spins keeps its vCPU in guest mode all the time, and under QEMU TCG's
//! emulated SVM (the nested x86 lanes) the own VMM's other vCPU then ends in
//! a triple fault about once in 20 boots — never once in 128 boots with the
//! second vCPU left waiting for its SIPI (docs/known-problems.md).
//!
//! No wake-up is lost: `sti; hlt` takes a pending interrupt only after the
//! HLT has begun (STI's one-instruction interrupt shadow), and an IPI that
//! came while interrupts were off waits in the APIC until then.

use super::apic;

/// The wake IPI's vector (no device interrupt uses vectors here).
pub const WAKE_VECTOR: u8 = 0xf0;
/// The APIC's spurious-interrupt vector: a handler that only returns.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Run once on each secondary CPU, after its IDT is loaded: lets its APIC
/// take the wake IPI. False: it cannot, and the CPU spins instead.
pub fn init_secondary() -> bool {
    if apic::enable_x2apic().is_err() {
        return false;
    }
    apic::accept_interrupts(SPURIOUS_VECTOR);
    true
}

/// Waits until an interrupt arrives (at worst a spurious one): the caller
/// re-checks what it waits for.
pub fn wait() {
    // SAFETY: interrupts are enabled only for the HLT, and the only ones
    // that can arrive are the wake IPI and the APIC's spurious vector, whose
    // IDT entries (idt.rs) return after the EOI; `cli` restores the
    // interrupts-off state the rest of the kernel runs in.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nostack)) };
}

/// Wakes every halted secondary CPU. From CPU 0 only.
pub fn wake_others() {
    apic::send_all_but_self(WAKE_VECTOR);
}
