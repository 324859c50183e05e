//! The crash path until the kernel registers its own (`arch::hooks`): the
//! crash line straight to COM1, then power off. The line has the shape the
//! kernel's own crash path prints, so a run that ends here is judged the
//! same way.

use convtest_proto::ktap::CRASH_PREFIX;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set by the first crash: a crash while printing one just stops.
static CRASHING: AtomicBool = AtomicBool::new(false);

struct Com1;

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        super::serial::console_write(s.as_bytes());
        Ok(())
    }
}

pub fn early(what: fmt::Arguments<'_>) -> ! {
    if CRASHING.swap(true, Ordering::SeqCst) {
        super::power::power_off(false);
    }
    let _ = fmt::write(&mut Com1, format_args!("\n{CRASH_PREFIX}{what}\n"));
    super::power::power_off(false)
}
