//! The crash path until the kernel registers its own (`arch::hooks`): the
//! crash line straight to the console UART, then power off. The line has
//! the shape the kernel's own crash path prints, so a run that ends here is
//! judged the same way.

use convtest_proto::ktap::CRASH_PREFIX;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set by the first crash: a crash while printing one just stops.
static CRASHING: AtomicBool = AtomicBool::new(false);

struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        super::uart::console_write(s.as_bytes());
        Ok(())
    }
}

pub fn early(what: fmt::Arguments<'_>) -> ! {
    if CRASHING.swap(true, Ordering::SeqCst) {
        super::power::power_off(false);
    }
    let _ = fmt::write(&mut Uart, format_args!("\n{CRASH_PREFIX}{what}\n"));
    super::power::power_off(false)
}
