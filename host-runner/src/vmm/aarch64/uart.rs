//! The guest's console: vm-superio's 16550A behind MMIO exits, registers
//! one byte apart (reg-shift 0). Output collects in a buffer the run loop
//! hands to the console tap; the tap's acks are typed into the receive FIFO.
//! No interrupt line: the guest polls LSR.

use convtest_proto::range::MemRange;
use std::io;
use vm_superio::{Serial, Trigger};

/// Below RAM, where QEMU virt has its PL011; one page so the guest's
/// identity map may treat it as a whole Device page.
pub const MMIO: MemRange = MemRange::new(0x0900_0000, 0x0900_1000);
/// The 8 registers of a 16550 at stride 1.
const REGS: u64 = 8;

pub struct NoIrq;

impl Trigger for NoIrq {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Uart {
    uart: Serial<NoIrq, vm_superio::serial::NoEvents, Vec<u8>>,
}

impl Default for Uart {
    fn default() -> Self {
        Uart {
            uart: Serial::new(NoIrq, Vec::new()),
        }
    }
}

impl Uart {
    pub fn owns(addr: u64) -> bool {
        MMIO.contains(addr)
    }

    /// A guest store of `data` (1..=8 bytes) at `addr`: the low byte goes to
    /// the register; stores past the 8 registers are ignored.
    pub fn write(&mut self, addr: u64, data: &[u8]) {
        let off = addr - MMIO.start;
        if let (true, Some(&b)) = (off < REGS, data.first()) {
            // The only error is the trigger's, and ours cannot fail.
            let _ = self.uart.write(off as u8, b);
        }
    }

    /// A guest load: the register in the low byte, zeros above.
    pub fn read(&mut self, addr: u64, data: &mut [u8]) {
        let off = addr - MMIO.start;
        data.fill(0);
        if let (true, Some(b)) = (off < REGS, data.first_mut()) {
            *b = self.uart.read(off as u8);
        }
    }

    /// Output since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.uart.writer_mut())
    }

    /// Queues input; what does not fit the FIFO now is returned.
    pub fn type_in<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let n = self.uart.enqueue_raw_bytes(bytes).unwrap_or(0);
        &bytes[n..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thr_stores_reach_the_output_and_input_reaches_rbr() {
        let mut u = Uart::default();
        u.write(MMIO.start, b"o");
        u.write(MMIO.start, &[b'k', 0, 0, 0]);
        assert_eq!(u.take_output(), b"ok");
        assert_eq!(u.type_in(b"y"), b"");
        let mut lsr = [0u8; 4];
        u.read(MMIO.start + 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "LSR data ready");
        assert_eq!(&lsr[1..], &[0, 0, 0]);
        let mut rbr = [0u8];
        u.read(MMIO.start, &mut rbr);
        assert_eq!(rbr, *b"y");
        assert!(!Uart::owns(MMIO.start - 1) && Uart::owns(MMIO.start + 7) && !Uart::owns(MMIO.end));
    }
}
