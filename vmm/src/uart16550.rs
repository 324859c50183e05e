//! The guest console device both VMMs emulate: vm-superio's 16550A, with no
//! interrupt line (the guest polls LSR). Output collects in a buffer the run
//! loop hands to the console tap; acks queue here until the receive FIFO has
//! room. Each arch maps its registers (x86 ports, arm64 MMIO) to offsets 0..8.

use super::console::ConsoleTap;
use super::hostcheck::HostView;
use super::stream::ConsoleStream;
use std::io;
use vm_superio::{Serial, Trigger};

/// A 16550 has 8 registers.
pub const REGS: u64 = 8;

pub struct NoIrq;

impl Trigger for NoIrq {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Uart16550 {
    uart: Serial<NoIrq, vm_superio::serial::NoEvents, Vec<u8>>,
    /// Input not yet accepted by the receive FIFO.
    pending: Vec<u8>,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Uart16550 {
            uart: Serial::new(NoIrq, Vec::new()),
            pending: Vec::new(),
        }
    }
}

impl Uart16550 {
    /// A guest write of `value` to register `offset` (< REGS).
    pub fn write(&mut self, offset: u8, value: u8) {
        // The only error is the trigger's, and ours cannot fail.
        let _ = self.uart.write(offset, value);
    }

    pub fn read(&mut self, offset: u8) -> u8 {
        self.uart.read(offset)
    }

    /// After every exit: hands new output to the tap (which writes it to
    /// `out` and answers host checks) and types pending acks into the FIFO.
    /// Returns whether the guest printed anything.
    pub fn pump(
        &mut self,
        tap: &mut ConsoleTap,
        out: &mut dyn ConsoleStream,
        view: &dyn HostView,
    ) -> bool {
        let output = std::mem::take(self.uart.writer_mut());
        if !output.is_empty() {
            let acks = tap.feed(&output, out, view);
            let acks = tap.admit(self.pending.len(), acks);
            self.pending.extend(acks);
        }
        if !self.pending.is_empty() {
            let taken = self.uart.enqueue_raw_bytes(&self.pending).unwrap_or(0);
            self.pending.drain(..taken);
        }
        !output.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostcheck::tests::FlatView;

    #[test]
    fn output_reaches_the_console_and_acks_reach_rbr_through_a_full_fifo() {
        let view = FlatView::new(0x1000, 0x2000);
        let mut u = Uart16550::default();
        let mut tap = ConsoleTap::default();
        let mut out = crate::stream::Relayed::new(Vec::new());
        for &b in b"ok\n# convtest-req 1 scan 0x5\n" {
            u.write(0, b);
        }
        assert!(u.pump(&mut tap, &mut out, &view));
        assert!(
            out.get_ref().starts_with(
                b"ok\n# convtest-req 1 scan 0x5\n# convtest-host: scan convtest-ack 1 ok"
            ),
            "{}",
            String::from_utf8_lossy(out.get_ref())
        );
        let mut typed = Vec::new();
        // The ack is longer than the FIFO: it arrives over several pumps.
        for _ in 0..8 {
            while u.read(5) & 1 == 1 {
                typed.push(u.read(0));
            }
            assert!(!u.pump(&mut tap, &mut out, &view));
        }
        let typed = String::from_utf8(typed).unwrap();
        assert!(
            typed.starts_with("convtest-ack 1 ok enforced canary absent"),
            "{typed}"
        );
        assert!(typed.ends_with('\n'));
    }
}
