//! The hostile traffic's raw accesses (`hostile.vmm`): port I/O to any
//! port and loads/stores at addresses no RAM is behind, one function each.
//! Every one exits to the VMM (no in-kernel device claims them with one
//! vCPU), which must answer and go on.
//!
//! Register contract: `in`/`out` take the port in dx and the value in
//! al/ax/eax; the MMIO accesses are plain `mov`s of 1, 2, 4 or 8 bytes,
//! which KVM's emulator decodes for the exit.

use core::arch::asm;

/// `in` of `size` (1, 2, 4; anything else reads 4) bytes from `port`.
pub fn port_in(port: u16, size: u8) -> u32 {
    // SAFETY: port input touches no memory of ours; the VMM answers every
    // port the hostile traffic names (it never names COM1, whose receive
    // FIFO carries the host's acks).
    unsafe {
        match size {
            1 => {
                let v: u8;
                asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags));
                u32::from(v)
            }
            2 => {
                let v: u16;
                asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags));
                u32::from(v)
            }
            _ => {
                let v: u32;
                asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags));
                v
            }
        }
    }
}

/// `out` of `size` (1, 2, 4) bytes of `value` to `port`.
pub fn port_out(port: u16, size: u8, value: u32) {
    // SAFETY: port output touches no memory of ours. The callers never
    // name the ports that end the run or carry the console
    // (convtest_proto::hostile::port_is_lifeline).
    unsafe {
        match size {
            1 => {
                asm!("out dx, al", in("dx") port, in("al") value as u8, options(nomem, nostack, preserves_flags))
            }
            2 => {
                asm!("out dx, ax", in("dx") port, in("ax") value as u16, options(nomem, nostack, preserves_flags))
            }
            _ => {
                asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
            }
        }
    }
}

/// A load of `size` bytes at `va`.
///
/// # Safety
/// `va` is mapped, aligned to `size`, and no RAM is behind it (an MMIO
/// exit, never memory of the kernel's).
pub unsafe fn load(va: u64, size: u8) -> u64 {
    // SAFETY: the caller's contract: a mapped, aligned address that is no
    // memory of ours.
    unsafe {
        match size {
            1 => u64::from((va as *const u8).read_volatile()),
            2 => u64::from((va as *const u16).read_volatile()),
            4 => u64::from((va as *const u32).read_volatile()),
            _ => (va as *const u64).read_volatile(),
        }
    }
}

/// A store of `size` bytes of `value` at `va`.
///
/// # Safety
/// As for [`load`].
pub unsafe fn store(va: u64, size: u8, value: u64) {
    // SAFETY: as for `load`.
    unsafe {
        match size {
            1 => (va as *mut u8).write_volatile(value as u8),
            2 => (va as *mut u16).write_volatile(value as u16),
            4 => (va as *mut u32).write_volatile(value as u32),
            _ => (va as *mut u64).write_volatile(value),
        }
    }
}
