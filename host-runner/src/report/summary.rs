//! What a person reads: one line per test as it arrives, a per-suite table
//! at the end and the verdict line last.

use super::RunRecord;
use crate::ktap::{Outcome, TestResult};
use convtest_proto::catalog::suite_of;
use std::fmt::Write;

/// The live line for one finished test.
pub fn test_line(t: &TestResult) -> String {
    let mut s = format!("  {}  {}", t.result.label(), t.name);
    if !t.reason.is_empty() {
        let _ = write!(s, "  ({})", t.reason);
    }
    s
}

/// Per-suite counts, a total and the verdict line.
pub fn table(r: &RunRecord) -> String {
    let mut rows: Vec<(&str, [usize; 3])> = Vec::new();
    for t in &r.log.tests {
        let suite = suite_of(&t.name);
        let i = match rows.iter().position(|(s, _)| *s == suite) {
            Some(i) => i,
            None => {
                rows.push((suite, [0; 3]));
                rows.len() - 1
            }
        };
        rows[i].1[column(t.result)] += 1;
    }
    let width = rows
        .iter()
        .map(|(s, _)| s.len())
        .max()
        .unwrap_or(0)
        .max("suite".len());
    let mut s = String::new();
    if !rows.is_empty() {
        let _ = writeln!(
            s,
            "{:<width$}  {:>4}  {:>4}  {:>4}",
            "suite", "pass", "fail", "skip"
        );
        let mut total = [0usize; 3];
        for (suite, c) in &rows {
            let _ = writeln!(s, "{suite:<width$}  {:>4}  {:>4}  {:>4}", c[0], c[1], c[2]);
            for k in 0..3 {
                total[k] += c[k];
            }
        }
        let _ = writeln!(
            s,
            "{:<width$}  {:>4}  {:>4}  {:>4}",
            "total", total[0], total[1], total[2]
        );
    }
    s.push_str(&verdict_line(r));
    s.push('\n');
    s
}

pub fn verdict_line(r: &RunRecord) -> String {
    let first = r.timing.first_line.map_or(String::new(), |d| {
        format!(", first KTAP line after {:.2} s", d.as_secs_f64())
    });
    let mut s = format!(
        "{}  {} {} {} ({}), {:.2} s{first}",
        r.judgement.verdict.label(),
        r.arch,
        r.boot,
        r.machine,
        r.accel,
        r.timing.total.as_secs_f64()
    );
    if !r.judgement.reason.is_empty() {
        let _ = write!(s, "\n  reason: {}", r.judgement.reason);
    }
    s
}

fn column(o: Outcome) -> usize {
    match o {
        Outcome::Pass => 0,
        Outcome::Fail => 1,
        Outcome::Skip => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;
    use crate::verdict::Verdict;

    const GOOD: &str = include_str!("../../tests/fixtures/x86_pvh_pass.ktap");

    #[test]
    fn table_counts_per_suite() {
        let t = table(&sample(GOOD, Verdict::Pass, ""));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "suite  pass  fail  skip");
        assert_eq!(lines[1], "boot      3     0     0");
        assert_eq!(lines[6], "conv      0     0     6");
        assert_eq!(lines[7], "total    11     0     6");
        assert_eq!(
            lines[8],
            "PASS  x86_64 pvh microvm (tcg), 1.23 s, first KTAP line after 0.41 s"
        );
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn failure_shows_the_reason() {
        let t = table(&sample("", Verdict::Error, "qemu-system-x86_64 not found"));
        assert_eq!(
            t,
            "ERROR  x86_64 pvh microvm (tcg), 1.23 s, first KTAP line after 0.41 s\n  reason: qemu-system-x86_64 not found\n"
        );
    }

    #[test]
    fn live_lines() {
        let log = crate::ktap::parse_all(GOOD.as_bytes());
        assert_eq!(test_line(&log.tests[0]), "  PASS  boot.plan");
        assert_eq!(
            test_line(&log.tests[11]),
            "  SKIP  conv.share_verify  (hypervisor TCGTCGTCGTCG offers no conversion ABI)"
        );
    }
}
