//! The guest's serial console read as KTAP v1: bytes to clean lines
//! (clean.rs), lines to results, markers and facts as they arrive
//! (parse.rs), and what was read (log.rs), which the verdict and every
//! report work from.

mod clean;
mod log;
mod parse;

pub use log::{Bench, BootLog, Counts, Done, Forged, Log, TestResult};
pub use parse::{Event, Parser, RESET_PREFIX, parse_all};
