//! `convtest matrix`: the default suite on each L1 kernel of the nested
//! lane, one row per kernel — what KVM offered (capabilities), which memory
//! mode the VMM chose from that, what the conversion tests did, what their
//! host checks rest on, and what a conversion costs. Each row is a whole
//! `convtest run --backend nested --l1 <kernel>`, judged the same way.

use crate::accel::Host;
use crate::cli::{Cli, Command, MatrixArgs};
use crate::config;
use crate::report::{LaneEvidence, RunRecord};
use crate::verdict::Verdict;
use clap::{Parser, ValueEnum};
use convtest_proto::arch::Arch;
use convtest_proto::ktap::Outcome;
use serde::Serialize;
use std::fmt::Write;
use std::time::Instant;

/// One kernel's row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The `--l1` name asked for.
    pub l1: String,
    /// `uname -r` in the L1.
    pub kernel: String,
    /// Which build it is: `pinned`, `explicit` (`--l1 NAME=ABI`) or
    /// `newest-of-series` (the pin was in neither the cache nor the
    /// archive); `-` for an L1 that did not say.
    pub l1_build: String,
    /// The table's pinned build of the kernel.
    pub l1_pinned: String,
    pub verdict: Verdict,
    pub reason: String,
    /// Every capability the VMM probed, `number:value` (from its `cap.*`
    /// facts; `-` when there are none).
    pub caps: String,
    pub memory: String,
    pub backing: String,
    pub map_gpa_range: String,
    pub conv_pass: usize,
    pub conv_fail: usize,
    pub conv_skip: usize,
    /// `enforced`, `bookkeeping` or `none`.
    pub evidence: &'static str,
    /// share+unshare of one page and the no-op call, p50 in ns (`None`:
    /// not measured, or the counter frequency was unknown).
    pub share_unshare_ns: Option<u64>,
    pub noop_ns: Option<u64>,
    pub total_ms: u64,
}

impl Row {
    fn of(l1: &str, r: &RunRecord) -> Row {
        let log = &r.log;
        let fact = |facts: &[(String, String)], k: &str| {
            facts
                .iter()
                .find(|(key, _)| key == k)
                .map_or("-".to_string(), |(_, v)| v.clone())
        };
        let conv = |o: Outcome| {
            log.tests
                .iter()
                .filter(|t| t.name.starts_with("conv.") && t.result == o)
                .count()
        };
        let p50 = |prefix: &str| {
            log.bench
                .iter()
                .find(|b| b.op.starts_with(prefix))
                .and_then(|b| b.ns_p50)
                .filter(|&ns| ns != 0)
        };
        Row {
            l1: l1.to_string(),
            kernel: fact(&log.l1, "kernel"),
            l1_build: fact(&log.l1, "l1_build"),
            l1_pinned: fact(&log.l1, "l1_pinned"),
            verdict: r.judgement.verdict,
            reason: r.judgement.reason.clone(),
            caps: caps(&log.vmm).unwrap_or_else(|| "-".into()),
            memory: fact(&log.vmm, "memory"),
            backing: fact(&log.vmm, "backing"),
            map_gpa_range: fact(&log.vmm, "map_gpa_range"),
            conv_pass: conv(Outcome::Pass),
            conv_fail: conv(Outcome::Fail),
            conv_skip: conv(Outcome::Skip),
            evidence: LaneEvidence::of(log).level,
            share_unshare_ns: p50("share_unshare"),
            noop_ns: p50("noop"),
            total_ms: r.timing.total.as_millis() as u64,
        }
    }
}

/// `201:0x1000,231:0x1,…` from the `cap.<NAME>=<n>:<value>@<fd>` facts.
fn caps(facts: &[(String, String)]) -> Option<String> {
    let mut probed: Vec<(u32, i64)> = facts
        .iter()
        .filter_map(|(k, v)| convtest_proto::wire::CapFact::parse(k, v))
        .map(|c| (c.number, c.value))
        .collect();
    probed.sort_unstable();
    (!probed.is_empty()).then(|| {
        probed
            .iter()
            .map(|&(n, v)| {
                let sign = if v < 0 { "-" } else { "" };
                format!("{n}:{sign}{:#x}", v.unsigned_abs())
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

#[derive(Serialize)]
struct Report<'a> {
    verdict: Verdict,
    arch: &'a str,
    kernels: &'a [Row],
}

pub fn main(args: &MatrixArgs) -> i32 {
    let arch = args.arch.unwrap_or(Arch::X86_64);
    let names: Vec<String> = if args.kernels.is_empty() {
        crate::backend::nested::KNOWN_L1
            .iter()
            .filter(|k| k.supports(arch))
            .filter_map(|k| k.name.to_possible_value().map(|v| v.get_name().to_string()))
            .collect()
    } else {
        args.kernels.clone()
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut kcidb = crate::report::kcidb::Document::new(&args.kcidb.kcidb_origin, "matrix");
    for (i, name) in names.iter().enumerate() {
        if !args.quiet {
            eprintln!(
                "convtest matrix: [{}/{}] --l1 {name} (default suite, nested)",
                i + 1,
                names.len()
            );
        }
        let mut line = vec![
            "convtest".to_string(),
            "run".into(),
            "--backend".into(),
            "nested".into(),
            "--arch".into(),
            arch.as_str().into(),
            "--l1".into(),
            name.clone(),
            "--timeout".into(),
            args.timeout.to_string(),
        ];
        if args.quiet {
            line.push("--quiet".into());
        }
        let run_args = match Cli::try_parse_from(&line).map(|c| c.command) {
            Ok(Command::Run(a)) => a,
            Ok(_) | Err(_) => {
                eprintln!("convtest matrix: --kernels {name}: not a kernel `--l1` accepts");
                return 2;
            }
        };
        let config = match config::resolve(&run_args, &Host::probe()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("convtest matrix: --l1 {name}: {e}");
                return 2;
            }
        };
        let record = crate::run::execute(&config);
        kcidb.add_run(&record, &format!("{}.{name}", record.lane));
        let row = Row::of(name, &record);
        if !args.quiet {
            eprintln!(
                "convtest matrix: --l1 {name}: {} in {:.0} s{}",
                row.verdict.label(),
                row.total_ms as f64 / 1000.0,
                if row.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", row.reason)
                }
            );
        }
        rows.push(row);
    }
    let all_pass = rows.iter().all(|r| r.verdict == Verdict::Pass);
    print!("{}", render(&rows));
    if let Some(path) = &args.json {
        let report = Report {
            verdict: if all_pass {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            arch: arch.as_str(),
            kernels: &rows,
        };
        // Plain data with string keys: serialization cannot fail.
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        if let Err(e) = crate::report::write_file(path, text.as_bytes()) {
            eprintln!("convtest matrix: {e}");
            return 2;
        }
    }
    if let Some(path) = &args.kcidb.kcidb
        && let Err(e) = crate::report::write_file(path, kcidb.to_json().as_bytes())
    {
        eprintln!("convtest matrix: {e}");
        return 2;
    }
    println!(
        "{}  convtest matrix: {} kernel(s), {:.0} s",
        if all_pass { "PASS" } else { "FAIL" },
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if all_pass { 0 } else { 1 }
}

fn micros(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{} µs", n / 1000))
}

/// The table a person reads: one kernel a row.
pub fn render(rows: &[Row]) -> String {
    let header = [
        "kernel",
        "capabilities (cap:value)",
        "memory",
        "conv p/f/s",
        "evidence",
        "share+unshare",
        "no-op",
        "verdict",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                match r.l1_build.as_str() {
                    "newest-of-series" => format!("{} (NOT the pin {})", r.kernel, r.l1_pinned),
                    _ => r.kernel.clone(),
                },
                r.caps.clone(),
                format!("{} ({})", r.memory, r.backing),
                format!("{}/{}/{}", r.conv_pass, r.conv_fail, r.conv_skip),
                r.evidence.to_string(),
                micros(r.share_unshare_ns),
                micros(r.noop_ns),
                r.verdict.label().to_string(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, cell) in width.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, c: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in c.iter().zip(&width).enumerate() {
            let sep = if i == 0 { "" } else { "  " };
            let _ = write!(l, "{sep}{cell:<w$}");
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&mut s, &header);
    for c in &cells {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        line(&mut s, &refs);
    }
    for r in rows.iter().filter(|r| r.l1_build == "newest-of-series") {
        let _ = writeln!(
            s,
            "{}: the newest build of the series; the pinned {} is in neither the cache nor the archive",
            r.kernel, r.l1_pinned
        );
    }
    for r in rows.iter().filter(|r| !r.reason.is_empty()) {
        let _ = writeln!(s, "{}: {}", r.kernel, r.reason);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_kernel_with_every_column() {
        let row = |kernel: &str, memory: &str, skip: usize, verdict| Row {
            l1: "debian-x".into(),
            kernel: kernel.into(),
            l1_build: "pinned".into(),
            l1_pinned: "-".into(),
            verdict,
            reason: if verdict == Verdict::Pass {
                String::new()
            } else {
                "boom".into()
            },
            caps: "201:0x1000,235:0x1".into(),
            memory: memory.into(),
            backing: "anonymous".into(),
            map_gpa_range: "on".into(),
            conv_pass: 8 - skip,
            conv_fail: 0,
            conv_skip: skip,
            evidence: "bookkeeping",
            share_unshare_ns: Some(280_000),
            noop_ns: None,
            total_ms: 20_000,
        };
        let t = render(&[
            row("7.3.4+deb13-amd64", "emulated-private", 0, Verdict::Pass),
            row("6.1.0-41-amd64", "emulated-private", 8, Verdict::Fail),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("kernel") && lines[0].ends_with("verdict"),
            "{t}"
        );
        assert!(
            lines[1].contains("8/0/0") && lines[1].contains("280 µs"),
            "{t}"
        );
        assert!(
            lines[2].contains("0/0/8") && lines[2].ends_with("FAIL"),
            "{t}"
        );
        assert_eq!(lines[3], "6.1.0-41-amd64: boom");
        let moved = Row {
            l1_build: "newest-of-series".into(),
            l1_pinned: "6.12.117+deb12".into(),
            ..row("6.12.118+deb12-amd64", "emulated-private", 0, Verdict::Pass)
        };
        let t = render(&[moved]);
        assert!(
            t.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("6.12.118+deb12-amd64 (NOT the pin 6.12.117+deb12)")),
            "{t}"
        );
        assert!(
            t.contains(
                "6.12.118+deb12-amd64: the newest build of the series; the pinned 6.12.117+deb12 is in neither the cache nor the archive"
            ),
            "{t}"
        );
    }
}
