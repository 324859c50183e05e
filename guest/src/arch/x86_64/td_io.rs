//! The COM1 console inside a TD: each byte is one `TDG.VP.VMCALL<IO>`
//! (the `tdx-guest` crate's `io_read`/`io_write`), polling the line status
//! register as the 16550 driver does, instead of an `in`/`out` that would
//! take a #VE per byte. QEMU's 16550 needs no set-up for this.

use tdx_guest::tdvmcall::{IoSize, io_read, io_write};

const DATA: u16 = 0x3f8;
const LSR: u16 = 0x3fd;
const LSR_DATA_READY: u32 = 1;
const LSR_THR_EMPTY: u32 = 1 << 5;

pub fn console_write(bytes: &[u8]) {
    for &b in bytes {
        // Bounded: a VMM that never drains the FIFO loses bytes, not the run.
        for _ in 0..100_000 {
            if io_read(IoSize::Size1, LSR).is_ok_and(|l| l & LSR_THR_EMPTY != 0) {
                break;
            }
            core::hint::spin_loop();
        }
        let _ = io_write(IoSize::Size1, DATA, u32::from(b));
    }
}

pub fn console_read_byte() -> Option<u8> {
    let lsr = io_read(IoSize::Size1, LSR).ok()?;
    if lsr & LSR_DATA_READY == 0 {
        return None;
    }
    io_read(IoSize::Size1, DATA).ok().map(|v| v as u8)
}
