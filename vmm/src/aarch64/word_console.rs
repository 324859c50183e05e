//! The word console (`convtest_proto::word_console`): up to eight console
//! bytes per MMIO access, beside the 16550. Its output goes through the same
//! console tap as the UART's (one stream, one host-check service), and the
//! answers to requests completed on it are read back through its RX word.
//! Refused (`--vmm-console uart`), its ID reads 0 and every other access is
//! ignored: the guest then stays on its UART.

use super::super::console::ConsoleTap;
use super::super::hostcheck::HostView;
use super::super::stream::ConsoleStream;
use convtest_proto::range::MemRange;
use convtest_proto::word_console::{MAGIC, REG_ID, REG_RX, REG_TX, RX_MAX, rx_word, tx_bytes};
use std::collections::VecDeque;

/// The page after the 16550's; one page so the guest may map it whole.
pub const MMIO: MemRange = MemRange::new(0x0900_1000, 0x0900_2000);

pub fn owns(addr: u64) -> bool {
    MMIO.contains(addr)
}

pub struct WordConsole {
    served: bool,
    /// Host-check answers not yet read by the guest.
    pending: VecDeque<u8>,
    /// Whether the guest read the ID (asked for the device).
    pub asked: bool,
    /// Accesses to the device (each one an exit).
    pub exits: u64,
}

impl WordConsole {
    pub fn new(served: bool) -> Self {
        WordConsole {
            served,
            pending: VecDeque::new(),
            asked: false,
            exits: 0,
        }
    }

    /// `served`, `refused`; for the facts.
    pub fn state(&self) -> &'static str {
        if self.served { "served" } else { "refused" }
    }

    /// A guest store of `data` at `addr`: TX bytes go to the tap, whose
    /// answers queue for RX. Returns whether the guest printed anything.
    pub fn write(
        &mut self,
        addr: u64,
        data: &[u8],
        tap: &mut ConsoleTap,
        out: &mut dyn ConsoleStream,
        view: &dyn HostView,
    ) -> bool {
        self.exits += 1;
        let bytes = tx_bytes(data);
        if !self.served || addr - MMIO.start != REG_TX || bytes.is_empty() {
            return false;
        }
        let acks = tap.feed(bytes, out, view);
        let acks = tap.admit(self.pending.len(), acks);
        self.pending.extend(acks);
        true
    }

    /// A guest load at `addr` into `data` (zeros unless it is an 8-byte
    /// load of ID or RX from a served device).
    pub fn read(&mut self, addr: u64, data: &mut [u8]) {
        self.exits += 1;
        data.fill(0);
        let reg = addr - MMIO.start;
        if reg == REG_ID {
            self.asked = true;
        }
        if !self.served || data.len() != 8 {
            return;
        }
        let word = match reg {
            REG_ID => MAGIC,
            REG_RX => {
                let head: Vec<u8> = self.pending.iter().take(RX_MAX).copied().collect();
                let (word, n) = rx_word(&head);
                self.pending.drain(..n);
                word
            }
            _ => 0,
        };
        data.copy_from_slice(&word.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostcheck::tests::FlatView;
    use crate::stream::Relayed;
    use convtest_proto::word_console::{rx_bytes, tx_stores};

    fn load(c: &mut WordConsole, reg: u64) -> u64 {
        let mut d = [0xffu8; 8];
        c.read(MMIO.start + reg, &mut d);
        u64::from_le_bytes(d)
    }

    #[test]
    fn served_output_reaches_the_tap_and_answers_come_back_seven_bytes_at_a_time() {
        let view = FlatView::new(0x1000, 0x2000);
        let mut tap = ConsoleTap::default();
        let mut out = Relayed::new(Vec::new());
        let mut c = WordConsole::new(true);
        assert_eq!(load(&mut c, REG_ID), MAGIC);
        assert!(c.asked);
        for s in tx_stores(b"ok 1 x\n# convtest-req 1 scan 0x5\n") {
            let data = &s.value.to_le_bytes()[..usize::from(s.width)];
            assert!(c.write(MMIO.start + REG_TX, data, &mut tap, &mut out, &view));
        }
        let shown = String::from_utf8_lossy(out.get_ref()).into_owned();
        assert!(
            shown.starts_with(
                "ok 1 x\n# convtest-req 1 scan 0x5\n# convtest-host: scan convtest-ack 1 ok"
            ),
            "{shown}"
        );
        let mut typed = Vec::new();
        loop {
            let (bytes, n) = rx_bytes(load(&mut c, REG_RX));
            if n == 0 {
                break;
            }
            assert!(n <= 7);
            typed.extend_from_slice(&bytes[..n]);
        }
        let typed = String::from_utf8(typed).unwrap();
        assert!(typed.starts_with("convtest-ack 1 ok enforced"), "{typed}");
        assert!(typed.ends_with('\n'));
        assert_eq!(load(&mut c, 0x18), 0, "no register there");
    }

    #[test]
    fn refused_it_reads_zero_and_drops_output() {
        let view = FlatView::new(0x1000, 0x2000);
        let mut tap = ConsoleTap::default();
        let mut out = Relayed::new(Vec::new());
        let mut c = WordConsole::new(false);
        assert_eq!(load(&mut c, REG_ID), 0);
        assert!(c.asked);
        assert!(!c.write(
            MMIO.start + REG_TX,
            b"lost\n\0\0\0",
            &mut tap,
            &mut out,
            &view
        ));
        assert!(out.get_ref().is_empty());
        assert_eq!(load(&mut c, REG_RX), 0);
        assert_eq!((c.state(), c.exits), ("refused", 3));
        assert!(!owns(MMIO.start - 1) && owns(MMIO.start) && !owns(MMIO.end));
    }
}
