//! PSCI power control over the SMCCC conduit. Neither call carries a status:
//! QEMU exits 0 after SYSTEM_OFF, so the verdict comes from the KTAP stream.

use super::smccc;

const SYSTEM_OFF: u32 = 0x8400_0008;
const SYSTEM_RESET: u32 = 0x8400_0009;

/// Asks firmware to power off; returns only if it refused or no conduit exists.
pub fn system_off() {
    let _ = smccc::call(SYSTEM_OFF, 0, 0, 0);
}

/// Asks firmware to reset; returns only if it refused or no conduit exists.
pub fn system_reset() {
    let _ = smccc::call(SYSTEM_RESET, 0, 0, 0);
}

/// Where power control failed: stop the CPU for good.
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}
