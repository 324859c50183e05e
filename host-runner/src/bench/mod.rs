//! `convtest bench`: is converting a buffer private→shared in place cheaper
//! than bouncing it through a pre-shared one (swiotlb)? Per lane, one
//! `convtest run --backend nested --tests 'bench.*,conv.cost'`; its bench
//! lines become a table of latency per range size next to memcpy of the
//! same bytes and the null exit, the break-even size, throughput of both
//! paths, a log-log plot (`--svg`), Markdown (`--md`) and JSON (`--json`).
//! `--from` shows a saved report again without booting anything.
//!
//! Everything from bench lines to text is pure (`analysis`, `view`,
//! `render`, `svg`, `json`) and unit-tested on synthetic lines (`sample`).

pub mod analysis;
pub mod error;
pub mod grid;
pub mod json;
pub mod judged;
pub mod lanes;
pub mod load;
pub mod ops;
pub mod render;
#[cfg(test)]
pub mod sample;
pub mod svg;
pub mod units;
pub mod view;

use crate::accel::Host;
use crate::cli::{BenchArgs, Cli, Command};
use crate::ktap::Bench;
use crate::mutants::lane::Lane;
use clap::Parser;
use error::BenchError;
use judged::{Judged, LaneResult, LaneVerdict, RunOutcome};
use std::time::Instant;

pub fn main(args: &BenchArgs) -> i32 {
    match bench(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("convtest bench: {e}");
            2
        }
    }
}

fn bench(args: &BenchArgs) -> Result<i32, BenchError> {
    let started = Instant::now();
    let results = match &args.from {
        Some(path) => {
            if !args.lanes.is_empty() {
                // Known names only, as when running; then keep those asked.
                let asked = lanes::resolve(&args.lanes)?;
                let mut r = load::read(path)?;
                r.retain(|l| asked.iter().any(|a| a.name == l.lane));
                r
            } else {
                load::read(path)?
            }
        }
        None => {
            let lanes = lanes::resolve(&args.lanes)?;
            let total = lanes.len();
            lanes
                .iter()
                .enumerate()
                .map(|(i, lane)| run_lane(lane, i, total, args))
                .collect()
        }
    };
    let judged: Vec<Judged> = results.into_iter().map(Judged::of).collect();
    print!("{}", render::text(&judged));
    let unwritten = write_outputs(args, &judged)?;
    for u in &unwritten {
        eprintln!("convtest bench: {u}");
    }
    let mut failing: Vec<String> = judged
        .iter()
        .filter(|j| j.verdict != LaneVerdict::Pass)
        .map(|j| format!("{} {}", j.result.lane, j.verdict.label()))
        .collect();
    failing.extend(unwritten);
    let verdict = if failing.is_empty() {
        LaneVerdict::Pass
    } else {
        LaneVerdict::Fail
    };
    println!(
        "\n{}  convtest bench: {} lane(s), {:.0} s{}",
        if verdict == LaneVerdict::Pass {
            "PASS"
        } else {
            "FAIL"
        },
        judged.len(),
        started.elapsed().as_secs_f64(),
        if failing.is_empty() {
            String::new()
        } else {
            format!(" ({})", failing.join(", "))
        }
    );
    Ok(if verdict == LaneVerdict::Pass { 0 } else { 1 })
}

/// One lane's `convtest run`, in process, as `convtest matrix` does it.
fn run_lane(lane: &Lane, i: usize, total: usize, args: &BenchArgs) -> LaneResult {
    let cannot = |why: String| {
        eprintln!("convtest bench: {}: CANNOT RUN HERE: {why}", lane.name);
        LaneResult {
            lane: lane.name.to_string(),
            outcome: RunOutcome::CannotRun(why),
            bench: Vec::new(),
        }
    };
    if let Some(why) = lanes::cannot_run(lane) {
        return cannot(why);
    }
    let line = lanes::run_line(lane, args);
    let run_args = match Cli::try_parse_from(&line).map(|c| c.command) {
        Ok(Command::Run(a)) => a,
        Ok(_) | Err(_) => {
            return cannot(format!(
                "convtest could not read its own run line `{}`",
                line.join(" ")
            ));
        }
    };
    let config = match crate::config::resolve(&run_args, &Host::probe()) {
        Ok(c) => c,
        Err(e) => return cannot(e.to_string()),
    };
    if !args.quiet {
        eprintln!(
            "convtest bench: [{}/{total}] {}: {}",
            i + 1,
            lane.name,
            line[1..].join(" ")
        );
    }
    let record = crate::run::execute(&config);
    if record.judgement.verdict == crate::verdict::Verdict::Error {
        return cannot(record.judgement.reason);
    }
    if !args.quiet {
        eprintln!(
            "convtest bench: {}: run {} in {:.0} s, {} bench line(s)",
            lane.name,
            record.judgement.verdict.label(),
            record.timing.total.as_secs_f64(),
            record.log.bench.len()
        );
    }
    LaneResult {
        lane: lane.name.to_string(),
        outcome: RunOutcome::Ran {
            verdict: record.judgement.verdict,
            reason: record.judgement.reason,
            ran_as: record.lane,
            total_ms: record.timing.total.as_millis() as u64,
        },
        bench: record.log.bench,
    }
}

/// Writes the files asked for. A plot with nothing to draw is not written
/// and said (returned: it fails the command); a file that cannot be
/// written is an error.
fn write_outputs(args: &BenchArgs, judged: &[Judged]) -> Result<Vec<String>, BenchError> {
    let mut unwritten = Vec::new();
    if let Some(path) = &args.json {
        crate::report::write_file(path, json::render(judged).as_bytes())?;
    }
    if let Some(path) = &args.md {
        crate::report::write_file(path, render::markdown(judged).as_bytes())?;
    }
    if let Some(path) = &args.svg {
        let lanes: Vec<(&str, &[Bench])> = judged
            .iter()
            .map(|j| (j.result.lane.as_str(), j.result.bench.as_slice()))
            .collect();
        match svg::render(&lanes) {
            Ok(plot) => {
                for o in &plot.omitted {
                    eprintln!("convtest bench: --svg: not plotted: {o}");
                }
                crate::report::write_file(path, plot.svg.as_bytes())?;
            }
            Err(detail) => unwritten.push(
                BenchError::Plot {
                    path: path.clone(),
                    detail,
                }
                .to_string(),
            ),
        }
    }
    Ok(unwritten)
}
