//! `--json PATH`: `{verdict, lanes: [{lane, verdict, reason, bench: […],
//! break_even: {vs_warm, vs_cold}, throughput: […], ratio_one_page}]}`,
//! plus what the run said (`run_verdict`, `ran_as`, `total_ms`). Fields are
//! only ever added; `--from` reads this back.

use super::analysis::Throughput;
use super::judged::{Judged, LaneVerdict, RunOutcome};
use crate::ktap::Bench;
use crate::verdict::Verdict;
use serde::Serialize;

#[derive(Serialize)]
struct Report<'a> {
    /// `pass` only when every lane passed.
    verdict: LaneVerdict,
    lanes: Vec<Lane<'a>>,
}

#[derive(Serialize)]
struct Lane<'a> {
    lane: &'a str,
    verdict: LaneVerdict,
    reason: String,
    /// The `convtest run` verdict (`null`: the lane could not run).
    run_verdict: Option<Verdict>,
    ran_as: Option<&'a str>,
    total_ms: Option<u64>,
    bench: &'a [Bench],
    break_even: BreakEven,
    throughput: &'a [Throughput],
    /// share_unshare / noop_* p50 (`null` without both).
    ratio_one_page: Option<f64>,
}

/// The smallest size in bytes from which in place beats the bounce, at
/// every larger size too; `null` when it never does (or was not measured).
#[derive(Serialize)]
struct BreakEven {
    vs_warm: Option<u64>,
    vs_cold: Option<u64>,
}

pub fn overall(lanes: &[Judged]) -> LaneVerdict {
    if lanes.iter().all(|j| j.verdict == LaneVerdict::Pass) {
        LaneVerdict::Pass
    } else {
        LaneVerdict::Fail
    }
}

pub fn render(lanes: &[Judged]) -> String {
    let report = Report {
        verdict: overall(lanes),
        lanes: lanes
            .iter()
            .map(|j| {
                let (run_verdict, ran_as, total_ms) = match &j.result.outcome {
                    RunOutcome::CannotRun(_) => (None, None, None),
                    RunOutcome::Ran {
                        verdict,
                        ran_as,
                        total_ms,
                        ..
                    } => (Some(*verdict), Some(ran_as.as_str()), Some(*total_ms)),
                };
                Lane {
                    lane: &j.result.lane,
                    verdict: j.verdict,
                    reason: j.reason(),
                    run_verdict,
                    ran_as,
                    total_ms,
                    bench: &j.result.bench,
                    break_even: BreakEven {
                        vs_warm: j.analysis.vs_warm.bytes(),
                        vs_cold: j.analysis.vs_cold.bytes(),
                    },
                    throughput: &j.analysis.throughput,
                    ratio_one_page: j.analysis.one_page.as_ref().and_then(|o| o.ratio),
                }
            })
            .collect(),
    };
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_shape_is_the_documented_one() {
        let lanes: Vec<Judged> = sample::three_passed(5);
        let v: Value = serde_json::from_str(&render(&lanes)).expect("JSON");
        assert_eq!(v["verdict"], "pass");
        let l = &v["lanes"][1];
        let mut keys: Vec<&str> = l
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bench",
                "break_even",
                "lane",
                "ran_as",
                "ratio_one_page",
                "reason",
                "run_verdict",
                "throughput",
                "total_ms",
                "verdict"
            ]
        );
        assert_eq!(l["lane"], "nested-x86");
        assert_eq!(l["break_even"]["vs_warm"], 512 * 1024);
        assert_eq!(l["break_even"]["vs_cold"], 256 * 1024);
        assert!(l["ratio_one_page"].as_f64().is_some_and(|r| r > 2.0));
        assert_eq!(l["bench"][0]["lane"], "nested-x86");
        assert_eq!(l["throughput"][9]["size_bytes"], 2 << 20);
        assert!(l["throughput"][9]["in_place_gbps"].is_f64());
        assert!(
            v["lanes"][2]["break_even"]["vs_warm"].is_null(),
            "pKVM never"
        );
    }
}
