//! How the VM ended, as every backend reports it to the judge.

use std::time::Duration;

/// What the backend's exit status says about the guest's own opinion
/// (isa-debug-exit value, PSCI SYSTEM_OFF). Only a hint: KTAP decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitHint {
    /// The guest powered off saying "success".
    Success,
    /// The guest powered off saying "failure".
    Failure,
    /// The VMM reported its own error (bad option, missing file): the guest
    /// never got to run.
    VmmError,
    /// Any other status (a reset with reboots disabled, a signal).
    Unexpected,
}

/// How the VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited {
        code: Option<i32>,
        hint: ExitHint,
    },
    /// The watchdog killed it.
    TimedOut {
        after: Duration,
    },
}
