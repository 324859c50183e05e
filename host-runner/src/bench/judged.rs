//! A lane's run and its bench lines, judged: did it run, did the run
//! pass, and is the data complete enough to answer the question.

use super::analysis::LaneAnalysis;
use crate::ktap::Bench;
use crate::verdict::Verdict;
use serde::Serialize;

/// How a lane's `convtest run` went, before its data is looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// convtest could not run this lane on this machine (a missing tool,
    /// QEMU, a kvm.ko it cannot build): said loudly, never a quiet skip.
    CannotRun(String),
    Ran {
        verdict: Verdict,
        /// Why the run's verdict is not pass (empty when it is).
        reason: String,
        /// The lane name `run::lane_name` gave the run; a run that came out
        /// as another lane measured another platform.
        ran_as: String,
        total_ms: u64,
    },
}

/// One lane: its name as asked, how its run went, every bench line.
#[derive(Clone, Debug, PartialEq)]
pub struct LaneResult {
    pub lane: String,
    pub outcome: RunOutcome,
    pub bench: Vec<Bench>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LaneVerdict {
    /// Ran, the run passed, the data is complete.
    Pass,
    /// Ran, but the run failed or data is missing.
    Fail,
    /// Could not run here.
    Error,
}

impl LaneVerdict {
    pub fn label(self) -> &'static str {
        match self {
            LaneVerdict::Pass => "PASS",
            LaneVerdict::Fail => "FAIL",
            LaneVerdict::Error => "CANNOT RUN HERE",
        }
    }
}

/// A lane with its analysis and verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    pub result: LaneResult,
    pub analysis: LaneAnalysis,
    pub verdict: LaneVerdict,
    /// Everything that keeps the lane from a pass, each naming what.
    pub problems: Vec<String>,
}

impl Judged {
    pub fn of(result: LaneResult) -> Judged {
        let analysis = LaneAnalysis::of(&result.bench);
        let mut problems = Vec::new();
        let verdict = match &result.outcome {
            RunOutcome::CannotRun(why) => {
                problems.push(format!("cannot run here: {why}"));
                LaneVerdict::Error
            }
            RunOutcome::Ran {
                verdict,
                reason,
                ran_as,
                ..
            } => {
                if *verdict != Verdict::Pass {
                    problems.push(format!(
                        "the bench run {}: {}",
                        verdict.label(),
                        if reason.is_empty() {
                            "no reason given"
                        } else {
                            reason
                        }
                    ));
                }
                if *ran_as != result.lane {
                    problems.push(format!(
                        "the run came out as lane {ran_as}, not {}: its numbers are another platform's",
                        result.lane
                    ));
                }
                problems.extend(analysis.missing());
                if problems.is_empty() {
                    LaneVerdict::Pass
                } else {
                    LaneVerdict::Fail
                }
            }
        };
        Judged {
            result,
            analysis,
            verdict,
            problems,
        }
    }

    /// The reason line: the problems joined (empty on a pass).
    pub fn reason(&self) -> String {
        self.problems.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    fn ran(lane: &str, verdict: Verdict, ran_as: &str) -> LaneResult {
        LaneResult {
            lane: lane.into(),
            outcome: RunOutcome::Ran {
                verdict,
                reason: if verdict == Verdict::Pass {
                    String::new()
                } else {
                    "bench.bounce failed".into()
                },
                ran_as: ran_as.into(),
                total_ms: 1,
            },
            bench: sample::lane(lane, sample::Shape::X86Stock),
        }
    }

    #[test]
    fn a_complete_passing_run_passes() {
        let j = Judged::of(ran("nested-x86", Verdict::Pass, "nested-x86"));
        assert_eq!(j.verdict, LaneVerdict::Pass, "{:?}", j.problems);
        assert_eq!(j.reason(), "");
    }

    #[test]
    fn a_failed_run_another_lane_or_missing_data_fail_naming_it() {
        let j = Judged::of(ran("nested-x86", Verdict::Fail, "nested-x86"));
        assert_eq!(j.verdict, LaneVerdict::Fail);
        assert_eq!(j.reason(), "the bench run FAIL: bench.bounce failed");
        let j = Judged::of(ran("nested-x86-swprot", Verdict::Pass, "nested-x86"));
        assert!(
            j.reason().contains("came out as lane nested-x86"),
            "{}",
            j.reason()
        );
        let mut r = ran("nested-x86", Verdict::Pass, "nested-x86");
        r.bench.retain(|b| b.op != "io_round_trip");
        let j = Judged::of(r);
        assert_eq!(j.verdict, LaneVerdict::Fail);
        assert!(j.reason().contains("io_round_trip at 0"), "{}", j.reason());
    }

    #[test]
    fn a_lane_that_cannot_run_says_so() {
        let j = Judged::of(LaneResult {
            lane: "nested-x86-swprot".into(),
            outcome: RunOutcome::CannotRun("kvm.ko build tools missing: bc, pahole".into()),
            bench: Vec::new(),
        });
        assert_eq!(j.verdict, LaneVerdict::Error);
        assert_eq!(j.verdict.label(), "CANNOT RUN HERE");
        assert_eq!(
            j.reason(),
            "cannot run here: kvm.ko build tools missing: bc, pahole"
        );
    }
}
