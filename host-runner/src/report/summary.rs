//! What a person reads: one line per test as it arrives, a per-suite table
//! at the end and the verdict line last.

use super::{Conversions, LaneEvidence, RunRecord};
use crate::ktap::TestResult;
use convtest_proto::catalog::suite_of;
use convtest_proto::hostcheck::Evidence;
use convtest_proto::ktap::Outcome;
use std::fmt::Write;

/// The live line for one finished test; a test whose host checks rested
/// on VMM bookkeeping says so before anything else.
pub fn test_line(t: &TestResult) -> String {
    let mut s = format!("  {}  {}", label(t.result), t.name);
    match (t.result, t.evidence) {
        (Outcome::Pass, Some(Evidence::Bookkeeping)) => s.push_str("  [BOOKKEEPING]"),
        (_, Some(e)) => {
            let _ = write!(s, "  [{}]", e.as_str());
        }
        (_, None) => {}
    }
    if !t.reason.is_empty() {
        let _ = write!(s, "  ({})", t.reason);
    }
    s
}

/// `PASS`, `FAIL`, `SKIP`.
fn label(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "SKIP",
    }
}

/// Per-suite counts (passes resting on bookkeeping counted apart), a total
/// and the verdict line.
pub fn table(r: &RunRecord) -> String {
    let mut rows: Vec<(&str, [usize; 4])> = Vec::new();
    for t in &r.log.tests {
        let suite = suite_of(&t.name);
        let i = match rows.iter().position(|(s, _)| *s == suite) {
            Some(i) => i,
            None => {
                rows.push((suite, [0; 4]));
                rows.len() - 1
            }
        };
        let col = match (t.result, t.evidence) {
            (Outcome::Pass, Some(Evidence::Bookkeeping)) => 3,
            (o, _) => column(o),
        };
        rows[i].1[col] += 1;
    }
    let width = rows
        .iter()
        .map(|(s, _)| s.len())
        .max()
        .unwrap_or(0)
        .max("suite".len());
    let bookkeeping = rows.iter().any(|(_, c)| c[3] > 0);
    let mut s = String::new();
    if !rows.is_empty() {
        let row = |s: &mut String, name: &str, c: &[usize; 4]| {
            let _ = write!(s, "{name:<width$}  {:>4}  {:>4}  {:>4}", c[0], c[1], c[2]);
            if bookkeeping {
                let _ = write!(s, "  {:>11}", c[3]);
            }
            s.push('\n');
        };
        let _ = write!(
            s,
            "{:<width$}  {:>4}  {:>4}  {:>4}",
            "suite", "pass", "fail", "skip"
        );
        if bookkeeping {
            s.push_str("  bookkeeping");
        }
        s.push('\n');
        let mut total = [0usize; 4];
        for (suite, c) in &rows {
            row(&mut s, suite, c);
            for k in 0..4 {
                total[k] += c[k];
            }
        }
        row(&mut s, "total", &total);
        if bookkeeping {
            s.push_str(
                "bookkeeping = passed, but the host's side rested on the VMM's own page \
                 tracking: nothing in the kernel or hypervisor enforced it\n",
            );
        }
    }
    s.push_str(&verdict_line(r));
    s.push('\n');
    s
}

/// One line on what the run's host-checked claims rest on.
pub fn evidence_line(log: &crate::ktap::Log) -> Option<String> {
    let e = LaneEvidence::of(log);
    match e.level {
        "none" => None,
        "enforced" => Some(format!(
            "evidence: enforced: the kernel or hypervisor decided every host check ({} test(s))",
            e.enforced.len()
        )),
        _ => Some(format!(
            "evidence: BOOKKEEPING ONLY for {}: the VMM's tracking, not the platform, hid private \
             pages (x86: --l1-swprot runs KVM-enforced private memory)",
            if e.bookkeeping.is_empty() {
                "failed tests".to_string()
            } else {
                e.bookkeeping.join(", ")
            }
        )),
    }
}

/// For a run of several boots: how many, where their indexes came from and
/// what the VMM's resets cost.
fn series_line(log: &crate::ktap::Log) -> Option<String> {
    if log.boot_logs.len() < 2 {
        return None;
    }
    let mut from: Vec<(String, usize)> = Vec::new();
    for b in &log.boot_logs[1..] {
        let f = b.header_value("boot_from").unwrap_or("?").to_string();
        match from.iter_mut().find(|(k, _)| *k == f) {
            Some(slot) => slot.1 += 1,
            None => from.push((f, 1)),
        }
    }
    let from: Vec<String> = from.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    let ns: Vec<u64> = log
        .vmm_resets
        .iter()
        .filter_map(|f| f.iter().find(|(k, _)| k == "reset_ns"))
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let vmm = if ns.is_empty() {
        String::new()
    } else {
        let policy = log.vmm_resets[0]
            .iter()
            .find(|(k, _)| k == "reset_policy")
            .map_or("?", |(_, v)| v.as_str());
        format!(
            "; VMM resets ({policy}): {} of mean {:.2} ms",
            ns.len(),
            ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1e6
        )
    };
    Some(format!(
        "boots: {}; later boots knew their index from: {}{vmm}",
        log.boot_logs.len(),
        from.join(", ")
    ))
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
    if let Some(e) = evidence_line(&r.log) {
        let _ = write!(s, "\n  {e}");
    }
    if let Some(b) = series_line(&r.log) {
        let _ = write!(s, "\n  {b}");
    }
    // A pass that tested no conversion must say so on the one line CI shows.
    if !r.log.boot_logs.is_empty()
        && let Conversions {
            exercised: false,
            why: Some(why),
        } = Conversions::of(&r.log)
    {
        let _ = write!(s, "\n  no conversion was exercised: {why}");
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
        assert!(lines[9].starts_with("  no conversion was exercised: "));
        assert_eq!(lines.len(), 10);
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
    fn bookkeeping_passes_are_counted_and_said_apart() {
        let text = "KTAP version 1\n1..1\n    # Subtest: conv\n\
            # convtest-host: noread convtest-ack 1 ok bookkeeping private in the VMM's tracking\n\
            \x20   ok 1 conv.unshare_private # bookkeeping only\n\
            # convtest-host: scan convtest-ack 2 ok enforced canary absent\n\
            \x20   ok 2 conv.share_verify\n\
            # convtest-done: pass=2 fail=0 skip=0\n";
        let r = sample(text, Verdict::Pass, "");
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "suite  pass  fail  skip  bookkeeping");
        assert_eq!(lines[1], "conv      1     0     0            1");
        assert!(
            t.contains("evidence: BOOKKEEPING ONLY for conv.unshare_private"),
            "{t}"
        );
        assert!(
            test_line(&r.log.tests[0]).starts_with("  PASS  conv.unshare_private  [BOOKKEEPING]"),
            "{}",
            test_line(&r.log.tests[0])
        );
        assert_eq!(
            test_line(&r.log.tests[1]),
            "  PASS  conv.share_verify  [enforced]"
        );
    }

    #[test]
    fn a_run_without_conversions_says_so() {
        let line = verdict_line(&sample(GOOD, Verdict::Pass, ""));
        assert!(
            line.ends_with(
                "no conversion was exercised: hypervisor TCGTCGTCGTCG offers no conversion ABI"
            ),
            "{line}"
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
