//! `--from PATH`: the lanes of a report written before, shown again
//! without booting anything — this command's own `--json`, or a
//! `convtest run --json` report (one lane, its `bench[]`).

use super::error::BenchError;
use super::judged::{LaneResult, RunOutcome};
use crate::ktap::Bench;
use crate::verdict::Verdict;
use serde::Deserialize;
use std::path::Path;

/// A bench entry as both reports write it (`ktap::Bench`'s fields).
#[derive(Deserialize)]
struct BenchIn {
    op: String,
    size_bytes: Option<u64>,
    pages: Option<u64>,
    iters: Option<u64>,
    ns_p50: Option<u64>,
    ns_p99: Option<u64>,
    ns_min: Option<u64>,
    cycles_p50: Option<u64>,
    cycles_p99: Option<u64>,
    cycles_min: Option<u64>,
    lane: Option<String>,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    boot: Option<usize>,
}

impl From<BenchIn> for Bench {
    fn from(b: BenchIn) -> Bench {
        Bench {
            op: b.op,
            size_bytes: b.size_bytes,
            pages: b.pages,
            iters: b.iters,
            ns_p50: b.ns_p50,
            ns_p99: b.ns_p99,
            ns_min: b.ns_min,
            cycles_p50: b.cycles_p50,
            cycles_p99: b.cycles_p99,
            cycles_min: b.cycles_min,
            lane: b.lane,
            test: b.test,
            boot: b.boot,
        }
    }
}

/// One lane of either report.
#[derive(Deserialize)]
struct LaneIn {
    lane: Option<String>,
    /// `convtest bench`: the lane's verdict (`error`: it could not run).
    verdict: Option<String>,
    reason: Option<String>,
    /// `convtest bench`: the run's own verdict.
    run_verdict: Option<String>,
    ran_as: Option<String>,
    total_ms: Option<u64>,
    /// `convtest run`: its timing.
    timing: Option<TimingIn>,
    #[serde(default)]
    bench: Vec<BenchIn>,
}

#[derive(Deserialize)]
struct TimingIn {
    total_ms: Option<u64>,
}

#[derive(Deserialize)]
struct ReportIn {
    lanes: Option<Vec<LaneIn>>,
    #[serde(flatten)]
    run: LaneIn,
}

fn verdict(s: Option<&str>) -> Verdict {
    match s {
        Some("pass") => Verdict::Pass,
        Some("error") => Verdict::Error,
        _ => Verdict::Fail,
    }
}

impl LaneIn {
    fn into_result(self, bench_report: bool) -> LaneResult {
        let lane = self.lane.unwrap_or_else(|| "unnamed".into());
        let reason = self.reason.unwrap_or_default();
        let outcome = if bench_report && self.run_verdict.is_none() {
            // This command wrote no run verdict: the lane never ran.
            RunOutcome::CannotRun(
                reason
                    .strip_prefix("cannot run here: ")
                    .unwrap_or(&reason)
                    .to_string(),
            )
        } else {
            let v = if bench_report {
                self.run_verdict.as_deref()
            } else {
                self.verdict.as_deref()
            };
            RunOutcome::Ran {
                verdict: verdict(v),
                // The bench report's reason is about the lane, not the run.
                reason: if bench_report { String::new() } else { reason },
                ran_as: self.ran_as.unwrap_or_else(|| lane.clone()),
                total_ms: self
                    .total_ms
                    .or(self.timing.and_then(|t| t.total_ms))
                    .unwrap_or(0),
            }
        };
        LaneResult {
            lane,
            outcome,
            bench: self.bench.into_iter().map(Bench::from).collect(),
        }
    }
}

/// The lanes in `text` (read from `path`, named in errors).
pub fn parse(path: &Path, text: &str) -> Result<Vec<LaneResult>, BenchError> {
    let report: ReportIn = serde_json::from_str(text).map_err(|e| BenchError::From {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let lanes = match report.lanes {
        Some(lanes) => lanes.into_iter().map(|l| l.into_result(true)).collect(),
        None if !report.run.bench.is_empty() || report.run.lane.is_some() => {
            vec![report.run.into_result(false)]
        }
        None => Vec::new(),
    };
    if lanes.is_empty() {
        return Err(BenchError::From {
            path: path.to_path_buf(),
            detail: "neither a `convtest bench --json` report (lanes[]) nor a `convtest run \
                     --json` report (lane, bench[])"
                .into(),
        });
    }
    Ok(lanes)
}

pub fn read(path: &Path) -> Result<Vec<LaneResult>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::From {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::super::judged::Judged;
    use super::super::{json, sample};
    use super::*;

    #[test]
    fn reads_back_its_own_report() {
        let mut lanes: Vec<Judged> = sample::three_passed(7);
        lanes[0] = Judged::of(LaneResult {
            lane: "nested-x86-swprot".into(),
            outcome: RunOutcome::CannotRun("no pahole".into()),
            bench: Vec::new(),
        });
        let text = json::render(&lanes);
        let back = parse(Path::new("b.json"), &text).expect("parses");
        let again: Vec<Judged> = back.into_iter().map(Judged::of).collect();
        assert_eq!(again, lanes);
    }

    #[test]
    fn reads_a_run_report_and_refuses_anything_else() {
        let run = r#"{"verdict":"fail","reason":"bench.bounce failed","lane":"nested-x86",
            "timing":{"total_ms":3000},"bench":[{"op":"null_exit","size_bytes":0,"pages":1,
            "iters":9,"cycles_p50":5,"cycles_p99":6,"cycles_min":4,"lane":"nested-x86"}]}"#;
        let l = parse(Path::new("r.json"), run).expect("a run report");
        assert_eq!(l.len(), 1);
        assert_eq!(
            l[0].outcome,
            RunOutcome::Ran {
                verdict: Verdict::Fail,
                reason: "bench.bounce failed".into(),
                ran_as: "nested-x86".into(),
                total_ms: 3000
            }
        );
        assert_eq!(l[0].bench[0].cycles_p50, Some(5));
        let e = parse(Path::new("x.json"), "{}").expect_err("nothing to show");
        assert!(e.to_string().contains("x.json"), "{e}");
        let e = parse(Path::new("y.json"), "[").expect_err("not JSON");
        assert!(e.to_string().starts_with("--from y.json:"), "{e}");
    }
}
