//! The generic timer's virtual counter as the cycle counter. Entered at EL2,
//! the entry code zeroed CNTVOFF_EL2, so it equals the physical count.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};

pub fn cycles() -> u64 {
    // Without the ISB the read may be satisfied before earlier instructions
    // finish, and a timed region would look shorter than it was.
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

pub fn cycle_freq() -> Result<u64, &'static str> {
    match CNTFRQ_EL0.get() {
        0 => Err("CNTFRQ_EL0 is 0: firmware did not program the counter frequency"),
        hz => Ok(hz),
    }
}
