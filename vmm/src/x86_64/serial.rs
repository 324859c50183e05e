//! COM1 at 0x3f8: the shared 16550 behind port I/O.

use super::super::uart16550::{REGS, Uart16550};

pub const COM1: u16 = 0x3f8;

pub fn owns(port: u16) -> bool {
    (COM1..COM1 + REGS as u16).contains(&port)
}

/// The register offset of a COM1 port (the caller checked `owns`).
pub fn offset(port: u16) -> u8 {
    (port - COM1) as u8
}

/// A guest `out` to COM1.
pub fn out(uart: &mut Uart16550, port: u16, data: &[u8]) {
    for &b in data {
        uart.write(offset(port), b);
    }
}

/// A guest `in` from COM1 (every byte of a wide read gets the register).
pub fn input(uart: &mut Uart16550, port: u16, data: &mut [u8]) {
    let v = uart.read(offset(port));
    data.fill(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn com1_ports_map_to_registers() {
        assert!(!owns(0x3f7) && owns(0x3f8) && owns(0x3ff) && !owns(0x400));
        let mut u = Uart16550::default();
        let mut lsr = [0u8];
        input(&mut u, COM1 + 5, &mut lsr);
        assert_eq!(lsr[0] & 0x20, 0x20, "THR empty");
    }
}
