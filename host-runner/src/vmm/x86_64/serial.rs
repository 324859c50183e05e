//! COM1 at 0x3f8 via vm-superio's 16550A. Output collects in a buffer the
//! run loop hands to the console callback; the callback's answer is typed
//! into the receive FIFO. No interrupt line: the guest polls LSR.

use std::io;
use vm_superio::{Serial, Trigger};

pub const COM1: u16 = 0x3f8;
pub const COM1_LEN: u16 = 8;

pub struct NoIrq;

impl Trigger for NoIrq {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Com1 {
    uart: Serial<NoIrq, vm_superio::serial::NoEvents, Vec<u8>>,
}

impl Default for Com1 {
    fn default() -> Self {
        Com1 {
            uart: Serial::new(NoIrq, Vec::new()),
        }
    }
}

impl Com1 {
    pub fn owns(port: u16) -> bool {
        (COM1..COM1 + COM1_LEN).contains(&port)
    }

    pub fn write(&mut self, port: u16, value: u8) {
        // The only error is the trigger's, and ours cannot fail.
        let _ = self.uart.write((port - COM1) as u8, value);
    }

    pub fn read(&mut self, port: u16) -> u8 {
        self.uart.read((port - COM1) as u8)
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
    fn thr_writes_reach_the_output_and_input_reaches_rbr() {
        let mut c = Com1::default();
        c.write(COM1, b'o');
        c.write(COM1, b'k');
        assert_eq!(c.take_output(), b"ok");
        assert!(c.take_output().is_empty());
        assert_eq!(c.type_in(b"y"), b"");
        assert_eq!(c.read(COM1 + 5) & 1, 1, "LSR data ready");
        assert_eq!(c.read(COM1), b'y');
        assert!(!Com1::owns(0x3f7) && Com1::owns(0x3ff) && !Com1::owns(0x400));
    }
}
