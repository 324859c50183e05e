//! The guest's console: the shared 16550 behind MMIO exits, registers one
//! byte apart (reg-shift 0), at the layout's address ([`MMIO`] for the own
//! layout, `crosvm_layout::SERIAL` for crosvm's).

use super::super::uart16550::{REGS, Uart16550};
use convtest_proto::range::MemRange;

/// Below RAM, where QEMU virt has its PL011; one page so the guest's
/// identity map may treat it as a whole Device page.
pub const MMIO: MemRange = MemRange::new(0x0900_0000, 0x0900_1000);

/// A guest store of `data` (1..=8 bytes) at `off` into the UART's window:
/// the low byte goes to the register; stores past the 8 registers are
/// ignored.
pub fn write(uart: &mut Uart16550, off: u64, data: &[u8]) {
    if let (true, Some(&b)) = (off < REGS, data.first()) {
        uart.write(off as u8, b);
    }
}

/// A guest load at `off` into the UART's window: the register in the low
/// byte, zeros above.
pub fn read(uart: &mut Uart16550, off: u64, data: &mut [u8]) {
    data.fill(0);
    if let (true, Some(b)) = (off < REGS, data.first_mut()) {
        *b = uart.read(off as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thr_stores_reach_the_output_and_input_reaches_rbr() {
        let mut u = Uart16550::default();
        write(&mut u, 1, &[0x0f, 0, 0, 0]);
        let mut ier = [0xffu8; 4];
        read(&mut u, 1, &mut ier);
        assert_eq!(
            ier,
            [0x0f, 0, 0, 0],
            "IER stored from the low byte, zeros above"
        );
        let mut lsr = [0u8; 4];
        read(&mut u, 5, &mut lsr);
        assert_eq!(lsr[0] & 0x20, 0x20, "THR empty");
        write(&mut u, REGS, &[1]);
    }
}
