//! KTAP output from inside the guest: test results as they finish, and the
//! crash path that turns an unexpected exception or panic into a failing
//! test line before the run ends.

use crate::arch::{Current, Platform};
use crate::console::{self, Console, kprint};
use convtest_proto::crumbs::Doing;
use convtest_proto::ktap::{self, Outcome};
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Catalog name of the running test, if any (index + 1; 0 = none). Atomics,
/// not a lock: the crash path reads them from exception context.
static CURRENT_TEST: AtomicUsize = AtomicUsize::new(0);
static CURRENT_NUMBER: AtomicUsize = AtomicUsize::new(0);

pub fn line(depth: usize, outcome: Outcome, number: usize, name: &str, reason: &str) {
    let mut line = console::lock();
    let _ = ktap::result_line(&mut line, depth, outcome, number, name, reason);
}

pub fn diag(depth: usize, args: fmt::Arguments<'_>) {
    let mut line = console::lock();
    let _ = ktap::diag_line(&mut line, depth, args);
}

/// A diagnostic at subtest depth: what a test saw, before its result line.
macro_rules! tdiag {
    ($($arg:tt)*) => { $crate::report::diag(1, format_args!($($arg)*)) };
}
pub(crate) use tdiag;

pub fn begin_test(catalog_index: usize, number: usize) {
    CURRENT_NUMBER.store(number, Ordering::SeqCst);
    CURRENT_TEST.store(catalog_index + 1, Ordering::SeqCst);
    crate::crumbs::doing(0, Doing::Test(catalog_index as u64));
}

pub fn end_test() {
    CURRENT_TEST.store(0, Ordering::SeqCst);
    crate::crumbs::doing(0, Doing::Nothing);
}

/// Ends the run after something unrecoverable: names it on a crash line,
/// fails the running test (if one is running) and powers off with failure.
/// No `convtest-done` line follows, so the runner can never call this a pass.
pub fn crash(what: fmt::Arguments<'_>, location: Option<(&str, u32)>) -> ! {
    if console::begin_crash() {
        // Crashed while reporting a crash: say nothing more, just stop.
        Current::power_off(false);
    }
    kprint!("\n");
    kprint!("{}", ktap::CRASH_PREFIX);
    let _ = fmt::write(&mut Console, what);
    if let Some((file, line)) = location {
        kprint!(" at {file}:{line}");
    }
    kprint!("\n");
    let current = CURRENT_TEST.load(Ordering::SeqCst);
    if let Some(test) = current
        .checked_sub(1)
        .and_then(|i| convtest_proto::catalog::TESTS.get(i))
    {
        let number = CURRENT_NUMBER.load(Ordering::SeqCst);
        let _ = ktap::result_line(
            &mut Console,
            1,
            Outcome::Fail,
            number,
            test.name,
            "crashed (see convtest-crash line)",
        );
    }
    Current::power_off(false)
}

/// [`crash`] without a source location: the arch layer's crash path
/// (`Platform::set_fatal_handler`).
pub fn fatal(what: fmt::Arguments<'_>) -> ! {
    crash(what, None)
}
