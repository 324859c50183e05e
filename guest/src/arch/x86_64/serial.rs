//! COM1 (16550 at I/O port 0x3f8), polled. The driver value holds no state
//! the hardware does not, so every call builds a fresh handle: no lock, and
//! the crash path can print from inside an exception handler.

use core::sync::atomic::{AtomicU8, Ordering};
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::LSR;
use uart_16550::{BaudRate, Config, Uart16550};

pub const CONSOLE: &str = "com1@0x3f8";

// SAFETY: 0x3f8..0x400 is the legacy COM1 block on every x86 PC and VMM we
// target; nothing else in this kernel drives those ports.
const COM1: Uart16550<PioBackend> = match unsafe { Uart16550::new_port(0x3f8) } {
    Ok(uart) => uart,
    Err(_) => panic!("0x3f8 + 8 registers fits in the port space"),
};

/// What `init` found: until it ran (or if it failed) bytes go out one at a
/// time, which is correct with or without a FIFO.
static MODE: AtomicU8 = AtomicU8::new(BYTEWISE);
const BYTEWISE: u8 = 0;
const FIFO: u8 = 1;

pub fn init() {
    let mut uart = COM1;
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    // An absent UART reads back 0xff: writes then land nowhere, which is all
    // a console without a device can do.
    if uart.init(config).is_ok() && uart.fifo_enabled() {
        MODE.store(FIFO, Ordering::Relaxed);
    }
}

pub fn console_write(bytes: &[u8]) {
    let mut uart = COM1;
    if MODE.load(Ordering::Relaxed) == FIFO {
        uart.send_bytes_exact(bytes);
    } else {
        for &b in bytes {
            uart.send_bytes_exact(&[b]);
        }
    }
}

pub fn console_read_byte() -> Option<u8> {
    let mut uart = COM1;
    uart.try_receive_byte().ok()
}

/// Waits (bounded) until the transmitter has shifted out the last byte, so
/// nothing is lost when the VM is switched off right after.
pub fn flush() {
    let mut uart = COM1;
    for _ in 0..100_000 {
        if uart.lsr().contains(LSR::TRANSMITTER_EMPTY) {
            return;
        }
        core::hint::spin_loop();
    }
}
