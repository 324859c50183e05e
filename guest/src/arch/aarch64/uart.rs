//! Polled console UARTs found through the DTB: Arm PL011 (QEMU virt) and
//! ns16550a-compatible over MMIO (crosvm's 8250, many SoCs). Firmware set
//! the line up; we only make sure the transmitter is enabled and interrupts
//! stay masked. Lock-free: the crash path prints from exception context.

use core::fmt::{self, Write};
use core::ptr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pl011,
    /// Registers `1 << shift` bytes apart, accessed `width` bytes wide (1 or 4).
    Ns16550 {
        shift: u8,
        width: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub kind: Kind,
    pub base: u64,
}

static UART: spin::Once<Uart> = spin::Once::new();
static NAME: spin::Once<Name> = spin::Once::new();

// PL011 registers and bits.
const PL011_DR: u64 = 0x00;
const PL011_FR: u64 = 0x18;
const PL011_CR: u64 = 0x30;
const PL011_IMSC: u64 = 0x38;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const CR_UARTEN_TXE_RXE: u32 = (1 << 0) | (1 << 8) | (1 << 9);

// 16550 register indexes and bits.
const NS_RBR_THR: u64 = 0;
const NS_IER: u64 = 1;
const NS_FCR: u64 = 2;
const NS_LSR: u64 = 5;
/// FCR: FIFOs on, both cleared.
const FCR_ENABLE_CLEAR: u32 = 0x07;
/// A 16550's transmit FIFO: after THRE this many bytes fit. Under a VMM
/// every LSR poll is an MMIO exit (~1–3 ms nested), so polling once per
/// FIFO instead of once per byte halves the console's exits.
const NS_TX_FIFO: usize = 16;
const LSR_DR: u32 = 1 << 0;
const LSR_THRE: u32 = 1 << 5;

/// Polls before giving up on a stuck transmitter: output is lost rather
/// than the run hanging inside a print.
const TX_SPIN_LIMIT: u32 = 1 << 20;

impl Uart {
    fn read(&self, reg: u64) -> u32 {
        let (addr, width) = self.reg(reg);
        // SAFETY: `addr` is a register of the UART the DTB described, mapped
        // as Device memory (or the MMU is off); reads have no side effect on
        // memory we own.
        unsafe {
            if width == 1 {
                u32::from(ptr::read_volatile(addr as *const u8))
            } else {
                ptr::read_volatile(addr as *const u32)
            }
        }
    }

    fn write(&self, reg: u64, v: u32) {
        let (addr, width) = self.reg(reg);
        // SAFETY: as in `read`.
        unsafe {
            if width == 1 {
                ptr::write_volatile(addr as *mut u8, v as u8)
            } else {
                ptr::write_volatile(addr as *mut u32, v)
            }
        }
    }

    fn reg(&self, reg: u64) -> (u64, u8) {
        match self.kind {
            Kind::Pl011 => (self.base + reg, 4),
            Kind::Ns16550 { shift, width } => (self.base + (reg << shift), width),
        }
    }

    fn init(&self) {
        match self.kind {
            Kind::Pl011 => {
                self.write(PL011_IMSC, 0);
                let cr = self.read(PL011_CR);
                if cr & CR_UARTEN_TXE_RXE != CR_UARTEN_TXE_RXE {
                    self.write(PL011_CR, cr | CR_UARTEN_TXE_RXE);
                }
            }
            Kind::Ns16550 { .. } => {
                self.write(NS_IER, 0);
                self.write(NS_FCR, FCR_ENABLE_CLEAR);
            }
        }
    }

    fn tx_ready(&self) -> bool {
        match self.kind {
            Kind::Pl011 => self.read(PL011_FR) & FR_TXFF == 0,
            Kind::Ns16550 { .. } => self.read(NS_LSR) & LSR_THRE != 0,
        }
    }

    fn wait_tx_ready(&self) {
        for _ in 0..TX_SPIN_LIMIT {
            if self.tx_ready() {
                break;
            }
            core::hint::spin_loop();
        }
    }

    fn put_all(&self, bytes: &[u8]) {
        match self.kind {
            Kind::Pl011 => {
                for &b in bytes {
                    self.wait_tx_ready();
                    self.write(PL011_DR, u32::from(b));
                }
            }
            Kind::Ns16550 { .. } => {
                for burst in bytes.chunks(NS_TX_FIFO) {
                    self.wait_tx_ready();
                    for &b in burst {
                        self.write(NS_RBR_THR, u32::from(b));
                    }
                }
            }
        }
    }

    fn get(&self) -> Option<u8> {
        let ready = match self.kind {
            Kind::Pl011 => self.read(PL011_FR) & FR_RXFE == 0,
            Kind::Ns16550 { .. } => self.read(NS_LSR) & LSR_DR != 0,
        };
        let reg = if self.kind == Kind::Pl011 {
            PL011_DR
        } else {
            NS_RBR_THR
        };
        ready.then(|| self.read(reg) as u8)
    }
}

/// Makes `u` the console. Called once, after the MMU maps it as Device.
pub fn init(u: Uart) {
    u.init();
    UART.call_once(|| u);
    NAME.call_once(|| {
        let mut n = Name::new();
        let kind = match u.kind {
            Kind::Pl011 => "pl011",
            Kind::Ns16550 { .. } => "ns16550a",
        };
        let _ = write!(n, "{kind}@{:#x}", u.base);
        n
    });
}

/// Console name for the header, e.g. `pl011@0x9000000`; `none` before init.
/// The 4 KiB page of the UART's registers, once there is one.
pub fn page() -> Option<convtest_proto::range::MemRange> {
    UART.get()
        .map(|u| convtest_proto::range::MemRange::from_len(u.base & !0xfff, 0x1000))
}

pub fn name() -> &'static str {
    NAME.get().map_or("none", Name::as_str)
}

pub fn console_write(bytes: &[u8]) {
    if let Some(u) = UART.get() {
        u.put_all(bytes);
    }
}

pub fn console_read_byte() -> Option<u8> {
    UART.get().and_then(Uart::get)
}

/// A short device name in a fixed buffer (no heap at boot).
pub(super) struct Name {
    buf: [u8; 40],
    len: usize,
}

impl Name {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; 40],
            len: 0,
        }
    }

    pub(super) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("uart")
    }
}

impl Write for Name {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
