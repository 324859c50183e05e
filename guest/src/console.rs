//! `print!`-style output to the first console. Writes go to the arch layer's
//! polled UART (`Platform::console_write`); `kprint!`/`kprintln!` and the KTAP line writers hold a spin
//! lock for a whole line so CPUs never interleave inside one. The crash path
//! skips the lock: it must be able to print from inside an exception, even
//! one taken while this CPU (or a dead one) held it.

use crate::arch::{Current, Platform};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let t = Current::cycles();
        Current::console_write(s.as_bytes());
        let spent = Current::cycles().saturating_sub(t);
        SPENT.fetch_add(spent, Ordering::Relaxed);
        BYTES.fetch_add(s.len() as u64, Ordering::Relaxed);
        let lines = s.bytes().filter(|&b| b == b'\n').count() as u64;
        LINES.fetch_add(lines, Ordering::Relaxed);
        Ok(())
    }
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

/// Holds the console for one line; dropped, it lets the next CPU print.
pub struct LineGuard {
    held: bool,
}

/// Takes the console lock (or not, once the run is crashing).
pub fn lock() -> LineGuard {
    loop {
        if crashing() {
            return LineGuard { held: false };
        }
        if LOCKED
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return LineGuard { held: true };
        }
        core::hint::spin_loop();
    }
}

impl Drop for LineGuard {
    fn drop(&mut self) {
        if self.held {
            LOCKED.store(false, Ordering::Release);
        }
    }
}

/// `print!` to the console, the line under the lock.
macro_rules! kprint {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _line = $crate::console::lock();
        let _ = write!($crate::console::Console, $($arg)*);
    }};
}
pub(crate) use kprint;

/// `println!` to the console, the line under the lock.
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _line = $crate::console::lock();
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}
pub(crate) use kprintln;
