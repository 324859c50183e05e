//! What a run means: pass, fail or error, and the reason.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    /// A test failed, the guest crashed or hung, or the plan did not complete.
    Fail,
    /// The guest could not be run at all.
    Error,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// Empty for a pass.
    pub reason: String,
}

impl Judgement {
    pub(super) fn fail(reason: String) -> Self {
        Judgement {
            verdict: Verdict::Fail,
            reason,
        }
    }
}
