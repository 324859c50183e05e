//! Ending the run: QEMU's isa-debug-exit and the PCI reset register.
//!
//! isa-debug-exit (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`) makes
//! QEMU exit with status `(value << 1) | 1`: we write 0x10 for success
//! (exit 33) and 0x11 for failure (exit 35). Without the device the write is
//! ignored and the CPU halts; the verdict never depends on the exit status,
//! only on the KTAP the run printed.

use x86_64::instructions::port::Port;
use x86_64::instructions::{hlt, interrupts};

const DEBUG_EXIT_PORT: u16 = 0xf4;
pub const EXIT_SUCCESS: u8 = 0x10;
pub const EXIT_FAILURE: u8 = 0x11;
/// Intel PCI reset control register; 0x06 = full reset (SYS_RST | RST_CPU).
const RESET_CONTROL_PORT: u16 = 0xcf9;
const FULL_RESET: u8 = 0x06;

pub fn power_off(success: bool) -> ! {
    super::serial::flush();
    let value = if success { EXIT_SUCCESS } else { EXIT_FAILURE };
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit or unassigned; either way
    // a byte write has no effect on this kernel's memory.
    unsafe { Port::<u8>::new(DEBUG_EXIT_PORT).write(value) };
    halt_forever()
}

pub fn reboot() -> ! {
    super::serial::flush();
    // SAFETY: 0xcf9 is the chipset reset register on PC-compatible machines
    // (absent on microvm, where the write is dropped and we fall through).
    unsafe { Port::<u8>::new(RESET_CONTROL_PORT).write(FULL_RESET) };
    triple_fault()
}

/// An exception with an empty IDT cannot be delivered, nor can the #DF that
/// follows: the CPU shuts down, which every PC and VMM turns into a reset.
fn triple_fault() -> ! {
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::zero(),
    };
    // SAFETY: deliberately makes every exception undeliverable, then raises
    // one; nothing runs after this.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("ud2", options(noreturn));
    }
}

fn halt_forever() -> ! {
    loop {
        interrupts::disable();
        hlt();
    }
}
