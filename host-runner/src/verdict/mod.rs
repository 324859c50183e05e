//! The verdict on one run: what it means (judgement.rs), decided by the
//! judge (judge.rs) from the KTAP log and how the VM ended (ending.rs), with
//! a reason worded by explain.rs.

mod ending;
mod explain;
mod judge;
mod judgement;
mod origin;

pub use ending::{Ending, ExitHint};
pub use explain::qualified_name;
pub use judge::{FinishedRun, judge};
pub use judgement::{Judgement, Verdict};
