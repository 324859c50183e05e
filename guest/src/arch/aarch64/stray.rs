//! The hostile traffic's raw accesses (`hostile.vmm`): loads and stores at
//! addresses no RAM is behind (Device memory in the identity map), one
//! function each. Each is a single load or store of one general register
//! without writeback, so the abort carries a valid syndrome (ISV) and KVM
//! turns it into an MMIO exit for the VMM rather than failing KVM_RUN.

use core::arch::asm;

/// A load of `size` bytes (1, 2, 4, 8) at `va`.
///
/// # Safety
/// `va` is mapped as Device memory, aligned to `size`, and no RAM is
/// behind it.
pub unsafe fn load(va: u64, size: u8) -> u64 {
    let v: u64;
    // SAFETY: the caller's contract: a mapped, aligned address that is no
    // memory of ours; one ldr of one register, no writeback.
    unsafe {
        match size {
            1 => {
                asm!("ldrb {v:w}, [{a}]", a = in(reg) va, v = out(reg) v, options(nostack, readonly))
            }
            2 => {
                asm!("ldrh {v:w}, [{a}]", a = in(reg) va, v = out(reg) v, options(nostack, readonly))
            }
            4 => {
                asm!("ldr {v:w}, [{a}]", a = in(reg) va, v = out(reg) v, options(nostack, readonly))
            }
            _ => asm!("ldr {v}, [{a}]", a = in(reg) va, v = out(reg) v, options(nostack, readonly)),
        }
    }
    v
}

/// A store of `size` bytes of `value` at `va`.
///
/// # Safety
/// As for [`load`].
pub unsafe fn store(va: u64, size: u8, value: u64) {
    // SAFETY: as for `load`; one str of one register, no writeback.
    unsafe {
        match size {
            1 => asm!("strb {v:w}, [{a}]", a = in(reg) va, v = in(reg) value, options(nostack)),
            2 => asm!("strh {v:w}, [{a}]", a = in(reg) va, v = in(reg) value, options(nostack)),
            4 => asm!("str {v:w}, [{a}]", a = in(reg) va, v = in(reg) value, options(nostack)),
            _ => asm!("str {v}, [{a}]", a = in(reg) va, v = in(reg) value, options(nostack)),
        }
    }
}
