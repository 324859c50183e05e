//! JUnit XML for CI dashboards: one `<testsuite>` per guest suite, test
//! cases named `<suite>.<case>` like everywhere else (`boot<N>.<suite>.<case>`
//! in a run of several boots, so each boot's result is its own case), and one extra case,
//! `convtest.verdict`, carrying the run's verdict: a crash or hang after
//! every printed test passed must still show red.

use super::RunRecord;
use crate::ktap::TestResult;
use crate::verdict::Verdict;
use convtest_proto::catalog::suite_of;
use convtest_proto::ktap::Outcome;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

pub const VERDICT_CASE: &str = "convtest.verdict";

pub fn render(r: &RunRecord) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new(format!("convtest {} {} {}", r.arch, r.boot, r.machine));
    report.set_time(r.timing.total);
    let mut suites: Vec<TestSuite> = Vec::new();
    for t in &r.log.tests {
        let suite = suite_of(&t.name);
        let pos = match suites.iter().position(|s| s.name.as_str() == suite) {
            Some(p) => p,
            None => {
                suites.push(TestSuite::new(suite));
                suites.len() - 1
            }
        };
        suites[pos].add_test_case(case(t, suite, &crate::verdict::qualified_name(&r.log, t)));
    }
    let mut run = TestSuite::new("convtest");
    let mut status = match r.judgement.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Verdict::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
    };
    if r.judgement.verdict != Verdict::Pass {
        status.set_message(r.judgement.reason.as_str());
    }
    let mut verdict = TestCase::new(VERDICT_CASE, status);
    verdict.set_classname("convtest").set_time(r.timing.total);
    if let Some(cmd) = &r.command {
        verdict.set_system_out(format!("{cmd}\n"));
    }
    run.add_test_case(verdict);
    suites.push(run);
    report.add_test_suites(suites);
    report.to_string()
}

/// `name`: `boot<N>.<suite>.<case>` in a run of several boots.
fn case(t: &TestResult, suite: &str, name: &str) -> TestCase {
    let mut status = match t.result {
        Outcome::Pass => TestCaseStatus::success(),
        Outcome::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Outcome::Skip => TestCaseStatus::skipped(),
    };
    if !t.reason.is_empty() {
        status.set_message(t.reason.as_str());
    }
    let mut case = TestCase::new(name, status);
    case.set_classname(suite);
    if let Some(e) = t.evidence {
        // Dashboards can tell a pass the platform enforced from one the
        // VMM's bookkeeping alone vouched for.
        case.add_property(("evidence", e.as_str()));
    }
    if !t.diagnostics.is_empty() {
        case.set_system_out(t.diagnostics.join("\n") + "\n");
    }
    case
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;
    use quick_junit::Report;

    const GOOD: &str = include_str!("../../tests/fixtures/x86_pvh_pass.ktap");

    #[test]
    fn suites_cases_and_statuses() {
        let xml = render(&sample(GOOD, Verdict::Pass, "")).expect("serializes");
        let parsed = Report::deserialize_from_str(&xml).expect("valid JUnit");
        let names: Vec<&str> = parsed.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["boot", "heap", "mem", "exc", "clock", "conv", "convtest"]
        );
        assert_eq!((parsed.tests, parsed.failures, parsed.errors), (18, 0, 0));
        let conv = &parsed.test_suites[5];
        assert_eq!(conv.skipped, 6);
        let flip = &conv.test_cases[5];
        assert_eq!(flip.name.as_str(), "conv.flipflop");
        assert_eq!(flip.classname.as_ref().map(|c| c.as_str()), Some("conv"));
        match &flip.status {
            TestCaseStatus::Skipped { message, .. } => assert_eq!(
                message.as_ref().map(|m| m.as_str()),
                Some("hypervisor TCGTCGTCGTCG offers no conversion ABI")
            ),
            other => panic!("unexpected {other:?}"),
        }
        let heap = &parsed.test_suites[1].test_cases[0];
        assert_eq!(
            heap.system_out.as_ref().map(|s| s.as_str()),
            Some("rounds=1000 live_max=64 seed=0x5eed")
        );
    }

    #[test]
    fn a_hang_after_passing_tests_is_red() {
        let cut = GOOD
            .find("    KTAP version 1\n    # Subtest: conv")
            .expect("fixture");
        let reason = "guest hung: timed out after 15 s; last console line: \"ok 5 clock\"";
        let xml = render(&sample(&GOOD[..cut], Verdict::Fail, reason)).expect("serializes");
        let parsed = Report::deserialize_from_str(&xml).expect("valid JUnit");
        assert_eq!(parsed.failures, 1);
        let verdict = &parsed.test_suites.last().expect("verdict suite").test_cases[0];
        assert_eq!(verdict.name.as_str(), VERDICT_CASE);
        match &verdict.status {
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                ..
            } => {
                assert_eq!(message.as_ref().map(|m| m.as_str()), Some(reason));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn failed_case_and_error_verdict() {
        let text = GOOD.replace(
            "    ok 3 mem.random",
            "    not ok 3 mem.random # mismatch <at> & 0x10",
        );
        let xml = render(&sample(&text, Verdict::Error, "qemu missing")).expect("serializes");
        assert!(
            xml.contains("mismatch &lt;at&gt; &amp; 0x10"),
            "escaped: {xml}"
        );
        let parsed = Report::deserialize_from_str(&xml).expect("valid JUnit");
        assert_eq!((parsed.failures, parsed.errors), (1, 1));
    }
}
