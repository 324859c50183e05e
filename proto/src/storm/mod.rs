//! Seeded conversion storms: a long random sequence of conversions, guest
//! accesses and host checks over one area, and the model that predicts what
//! the platform must answer to every one of them.
//!
//! The sequence is a pure function of the seed and the model, and the model
//! is a pure function of the seed and the ABI's rules, so one seed always
//! gives one sequence on one ABI: a failure names its operation index and
//! `replay=` stops a re-run right after it. Nothing here touches memory;
//! the guest executes each `Op` and compares the platform with `Model`.

mod generator;
mod model;
mod touch;

pub use generator::{Op, Storm, straddles};
pub use model::{ConversionOutcome, Fill, Model, Rule};
pub use touch::{Pattern, TouchOrder, touch_order};
