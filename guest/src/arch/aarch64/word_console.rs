//! The word console (`convtest_proto::word_console`): up to eight console
//! bytes per MMIO store where the UART takes one byte per store plus polls.
//! Under pKVM every access is an exit to the VMM, so this cuts the cost of
//! output about eightfold (docs/lanes.md). Taken only when the DTB has the
//! node and the VMM answers its ID; otherwise the UART stays the console.
//! Lock-free like the UART: the crash path prints from exception context.

use super::uart::Name;
use convtest_proto::word_console::{self as proto, MAGIC, REG_ID, REG_RX, REG_TX};
use core::fmt::Write;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use fdt::Fdt;

/// The device's base once the VMM accepted; 0 while the UART is the console.
static BASE: AtomicU64 = AtomicU64::new(0);
/// Input from the last RX load not handed out yet: bytes 0..7, count in byte 7.
static RX_LEFT: AtomicU64 = AtomicU64::new(0);
static NAME: spin::Once<Name> = spin::Once::new();
/// The node's base when the DTB has one, taken or not.
static NODE: AtomicU64 = AtomicU64::new(0);

/// Looks for the node and asks the device (one load); takes it when the VMM
/// answers the magic. Called once, after the MMU maps it as Device.
pub fn init(fdt: &Fdt<'static>) {
    let Some(base) = fdt
        .all_nodes()
        .filter(|n| {
            n.compatible()
                .is_some_and(|c| c.all().any(|s| s == proto::COMPATIBLE))
        })
        .find_map(|n| n.reg().and_then(|mut r| r.next()))
        .map(|r| r.starting_address as u64)
    else {
        return;
    };
    NODE.store(base, Ordering::Relaxed);
    if load(base + REG_ID) != MAGIC {
        return;
    }
    BASE.store(base, Ordering::SeqCst);
    NAME.call_once(|| {
        let mut n = Name::new();
        let _ = write!(n, "word@{base:#x}");
        n
    });
}

/// Console name for the header (`word@0x9001000`), when in use.
pub fn name() -> Option<&'static str> {
    NAME.get().map(Name::as_str)
}

/// The device's 4 KiB page, when the node is in the DTB (taken or not).
pub fn page() -> Option<convtest_proto::range::MemRange> {
    let base = NODE.load(Ordering::Relaxed);
    (base != 0).then(|| convtest_proto::range::MemRange::from_len(base & !0xfff, 0x1000))
}

/// Writes `bytes` when the word console is in use; false leaves them to the UART.
pub fn write(bytes: &[u8]) -> bool {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return false;
    }
    for s in proto::tx_stores(bytes) {
        store(base + REG_TX, s);
    }
    true
}

/// The next input byte, when the word console is in use (`Some(None)`: none
/// waiting); `None` leaves reading to the UART.
pub fn read_byte() -> Option<Option<u8>> {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return None;
    }
    let mut left = RX_LEFT.load(Ordering::Relaxed);
    if left >> 56 == 0 {
        left = load(base + REG_RX);
    }
    let (bytes, n) = proto::rx_bytes(left);
    if n == 0 {
        return Some(None);
    }
    // The rest, shifted down one byte, with the count one less.
    let mut rest = [0u8; 8];
    rest[..n - 1].copy_from_slice(&bytes[1..n]);
    rest[7] = (n - 1) as u8;
    RX_LEFT.store(u64::from_le_bytes(rest), Ordering::Relaxed);
    Some(Some(bytes[0]))
}

/// An 8-byte load of a device register.
fn load(addr: u64) -> u64 {
    // SAFETY: `addr` is a register of the device the DTB described, inside
    // the identity map's Device window; the load has no effect on memory.
    unsafe { ptr::read_volatile(addr as *const u64) }
}

/// One TX store of the width the VMM reads as the byte count. Each width
/// is a single `str` of that size (a decodable MMIO access for KVM).
fn store(addr: u64, s: proto::Store) {
    // SAFETY: as in `load`; a store to TX only hands the VMM console bytes.
    unsafe {
        match s.width {
            8 => ptr::write_volatile(addr as *mut u64, s.value),
            4 => ptr::write_volatile(addr as *mut u32, s.value as u32),
            2 => ptr::write_volatile(addr as *mut u16, s.value as u16),
            _ => ptr::write_volatile(addr as *mut u8, s.value as u8),
        }
    }
}
