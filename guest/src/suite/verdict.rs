//! What a test returns, and the `fail!` shorthand for it.

use alloc::string::String;

pub enum Verdict {
    Pass,
    /// Passed, with something the reader must know printed on the result
    /// line (e.g. the host's side rested on VMM bookkeeping only).
    PassNoted(String),
    Fail(String),
    Skip(String),
}

/// `Verdict::Fail` with a formatted reason.
macro_rules! fail {
    ($($arg:tt)*) => { $crate::suite::verdict::Verdict::Fail(alloc::format!($($arg)*)) };
}
pub(crate) use fail;
