//! `print!`-style output to the first console. Writes go to the arch layer's
//! console (`Platform::console_write`); `kprint!`/`kprintln!` and the KTAP line writers hold a spin
//! lock for a whole line so CPUs never interleave inside one, and gather the
//! line first: the platform gets it in one write instead of one per
//! formatted piece (on a console that carries several bytes per exit, every
//! write costs at least one exit). The crash path skips the lock: it must be
//! able to print from inside an exception, even one taken while this CPU
//! (or a dead one) held it.

use crate::arch::{Current, Platform};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_counted(s.as_bytes());
        Ok(())
    }
}

/// One platform write, its cost counted.
fn write_counted(bytes: &[u8]) {
    let t = Current::cycles();
    Current::console_write(bytes);
    let spent = Current::cycles().saturating_sub(t);
    SPENT.fetch_add(spent, Ordering::Relaxed);
    BYTES.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    LINES.fetch_add(lines, Ordering::Relaxed);
}

/// What the console cost this boot, as the guest sees it: the time inside
/// the platform's write (every exit it takes included), in counter ticks.
static SPENT: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LINES: AtomicU64 = AtomicU64::new(0);

/// Bytes and lines written so far and the counter ticks their writes took.
#[derive(Clone, Copy, Debug)]
pub struct Spent {
    pub bytes: u64,
    pub lines: u64,
    pub ticks: u64,
}

pub fn spent() -> Spent {
    Spent {
        bytes: BYTES.load(Ordering::Relaxed),
        lines: LINES.load(Ordering::Relaxed),
        ticks: SPENT.load(Ordering::Relaxed),
    }
}

static LOCKED: AtomicBool = AtomicBool::new(false);
/// Set once the run is ending through the crash path: the lock is off.
static CRASHING: AtomicBool = AtomicBool::new(false);

/// The run starts ending through the crash path: from now on nobody waits
/// for the console (the crashing CPU, or a dead one, may hold it). True
/// when it already was ending (a crash while reporting a crash).
pub fn begin_crash() -> bool {
    CRASHING.swap(true, Ordering::SeqCst)
}

/// Whether the run is ending through the crash path (the lock is off).
pub fn crashing() -> bool {
    CRASHING.load(Ordering::Acquire)
}

/// Bytes a line guard gathers before it writes (a longer line goes out in
/// pieces of this size).
const LINE_BUF: usize = 256;

/// Holds the console for one line and gathers it; dropped, it writes what
/// it gathered and lets the next CPU print.
pub struct LineGuard {
    held: bool,
    buf: [u8; LINE_BUF],
    len: usize,
}

/// Takes the console lock (or not, once the run is crashing).
pub fn lock() -> LineGuard {
    let held = loop {
        if crashing() {
            break false;
        }
        if LOCKED
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            break true;
        }
        core::hint::spin_loop();
    };
    LineGuard {
        held,
        buf: [0; LINE_BUF],
        len: 0,
    }
}

impl LineGuard {
    fn flush(&mut self) {
        if self.len > 0 {
            write_counted(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl fmt::Write for LineGuard {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == LINE_BUF {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for LineGuard {
    fn drop(&mut self) {
        self.flush();
        if self.held {
            LOCKED.store(false, Ordering::Release);
        }
    }
}

/// `print!` to the console, the line under the lock.
macro_rules! kprint {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut line = $crate::console::lock();
        let _ = write!(line, $($arg)*);
    }};
}
pub(crate) use kprint;

/// `println!` to the console, the line under the lock.
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut line = $crate::console::lock();
        let _ = writeln!(line, $($arg)*);
    }};
}
pub(crate) use kprintln;
