//! Port-I/O devices besides the UART: isa-debug-exit at 0xf4 and the PC
//! reset control register at 0xcf9.

pub const DEBUG_EXIT_PORT: u16 = 0xf4;
pub const RESET_PORT: u16 = 0xcf9;
/// Bit 2 of 0xcf9 starts the reset (0x06 = hard reset).
const RESET_BIT: u8 = 0x04;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortEnd {
    /// Exit status as QEMU's isa-debug-exit reports it: (value << 1) | 1.
    DebugExit(i32),
    Reset,
}

/// Whether a device of this VMM answers at `port` (besides COM1).
pub fn claimed(port: u16) -> bool {
    port == DEBUG_EXIT_PORT || port == RESET_PORT
}

/// What a guest OUT to a non-UART port means for the run.
pub fn out(port: u16, data: &[u8]) -> Option<PortEnd> {
    let first = *data.first()?;
    match port {
        DEBUG_EXIT_PORT => {
            let mut v = [0u8; 4];
            let n = data.len().min(4);
            v[..n].copy_from_slice(&data[..n]);
            let value = u32::from_le_bytes(v);
            Some(PortEnd::DebugExit(((value << 1) | 1) as i32))
        }
        RESET_PORT if first & RESET_BIT != 0 => Some(PortEnd::Reset),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_codes_match_qemu() {
        assert_eq!(out(0xf4, &[0x10]), Some(PortEnd::DebugExit(33)));
        assert_eq!(out(0xf4, &[0x11, 0, 0, 0]), Some(PortEnd::DebugExit(35)));
    }

    #[test]
    fn reset_only_on_the_reset_bit() {
        assert_eq!(out(0xcf9, &[0x06]), Some(PortEnd::Reset));
        assert_eq!(out(0xcf9, &[0x02]), None);
        assert_eq!(out(0x80, &[0x06]), None);
    }
}
