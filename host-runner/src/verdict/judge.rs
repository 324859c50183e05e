//! The judge: what a run means, from the guest's KTAP first and the way the
//! VM ended second. A pass needs positive evidence (the plan-complete marker
//! with counts that match the parsed results); everything else fails, with a
//! reason a developer can act on.

use super::ending::{Ending, ExitHint};
use super::explain::{
    failed_names, last_line, qualified_name, status, stderr_tail, triple_fault, vmm_end,
};
use super::judgement::{Judgement, Verdict};
use crate::ktap::{Log, TestResult};
use convtest_proto::catalog;
use convtest_proto::ktap::Outcome;
use convtest_proto::plan::Plan;

/// What one finished run left behind, as the judge reads it.
pub struct FinishedRun<'a> {
    pub log: &'a Log,
    pub ending: &'a Ending,
    /// The plan as the guest received it: what was asked for (tests,
    /// reboots, which features were turned off).
    pub plan: &'a str,
    /// Last lines the VMM printed on stderr, for errors before any output.
    pub vmm_stderr: &'a str,
}

pub fn judge(f: &FinishedRun<'_>) -> Judgement {
    let log = f.log;
    let last = last_line(log);
    // Before anything the output says: it cannot be taken at its word.
    if let Some(why) = super::origin::forged(log) {
        return Judgement::fail(why);
    }
    if log.boot_logs.is_empty() {
        return match f.ending {
            Ending::TimedOut { after } => Judgement::fail(format!(
                "timed out after {} s before the guest printed KTAP; last console line: {last}",
                after.as_secs()
            )),
            Ending::Exited {
                code,
                hint: ExitHint::VmmError,
            } => Judgement {
                verdict: Verdict::Error,
                reason: format!(
                    "the VMM exited with {} before the guest printed KTAP{}",
                    status(*code),
                    stderr_tail(f.vmm_stderr)
                ),
            },
            Ending::Exited { code, .. } => Judgement::fail(format!(
                "the VM ended ({}) before the guest printed KTAP; last console line: {last}",
                status(*code)
            )),
        };
    }
    if let Some(crash) = &log.crash {
        let running = failed_names(log);
        let during = if running.is_empty() {
            String::new()
        } else {
            format!(" during {running}")
        };
        return Judgement::fail(format!("guest crashed{during}: {crash}"));
    }
    let (code, hint) = match f.ending {
        Ending::TimedOut { after } => {
            let what = if log.done.is_some() {
                "plan completed but the guest did not power off"
            } else {
                "guest hung"
            };
            return Judgement::fail(format!(
                "{what}: timed out after {} s; last console line: {last}",
                after.as_secs()
            ));
        }
        Ending::Exited { code, hint } => (*code, *hint),
    };
    let plan = Plan::parse(f.plan).plan;
    let series = series_problem(log, &plan, code, &last);
    let failed = log.count(Outcome::Fail);
    if failed > 0 {
        let first = log.tests.iter().find(|t| t.result == Outcome::Fail);
        let why = first
            .filter(|t| !t.reason.is_empty())
            .map_or(String::new(), |t| {
                format!(" ({}: {})", qualified_name(log, t), t.reason)
            });
        let failures = format!("{failed} test(s) failed: {}{why}", failed_names(log));
        // A boot cut short comes first: later boots' failures may only be
        // its echo (the next boot misses what the cut one never wrote).
        return Judgement::fail(match series {
            Some(s) => format!("{s}; then {failures}"),
            None => failures,
        });
    }
    if let Some(why) = series {
        return Judgement::fail(why);
    }
    if let Some(why) = super::origin::unserved_answers(log) {
        return Judgement::fail(why);
    }
    if let Some(why) = offered_but_unused(log) {
        return Judgement::fail(why);
    }
    if let Some(why) = unexcused_conv_skip(log, &plan) {
        return Judgement::fail(why);
    }
    match hint {
        ExitHint::Success => Judgement {
            verdict: Verdict::Pass,
            reason: String::new(),
        },
        ExitHint::Failure => Judgement::fail(format!(
            "KTAP reports no failure but the guest powered off with its failure status ({})",
            status(code)
        )),
        ExitHint::VmmError | ExitHint::Unexpected => Judgement::fail(format!(
            "the plan completed but the VMM exited with {}{}",
            status(code),
            stderr_tail(f.vmm_stderr)
        )),
    }
}

/// The VMM offered a conversion ABI (it served MAP_GPA_RANGE, or ran a pKVM
/// protected VM) but the guest found no converter: guest and platform
/// disagree, and a run that passes while testing nothing is the worst answer.
fn offered_but_unused(log: &Log) -> Option<String> {
    if log.header_value("converter") != Some("none") {
        return None;
    }
    let offered = match (log.vmm_fact("map_gpa_range"), log.vmm_fact("vm_type")) {
        (Some("on"), _) => "served KVM_HC_MAP_GPA_RANGE exits (vmm.map_gpa_range=on)",
        (_, Some("protected")) => "ran a pKVM protected VM (vmm.vm_type=protected)",
        _ => return None,
    };
    let probe = log
        .diagnostics
        .iter()
        .find_map(|d| d.strip_prefix("probe: "))
        .unwrap_or("the guest printed no probe finding");
    Some(format!(
        "the VMM {offered} but the guest found no converter ({probe}): no conversion was tested"
    ))
}

/// Every boot the plan expects, each with its index, its plan-complete
/// marker and counts that match what it printed, and the tests the plan
/// selects for that boot; the first problem names the boot.
fn series_problem(log: &Log, plan: &Plan<'_>, code: Option<i32>, last: &str) -> Option<String> {
    let expected = plan.reboots as usize + 1;
    let series = expected > 1;
    let name = |i: usize| {
        if series {
            format!("boot {i} (of {expected})")
        } else {
            "the guest".to_string()
        }
    };
    for (i, b) in log.boot_logs.iter().enumerate() {
        if i >= expected {
            return Some(format!(
                "unplanned reset: boot {i} started but the plan has {} reboot(s); boot {} reset instead of powering off",
                plan.reboots,
                i - 1
            ));
        }
        if series && b.index() != Some(i as u32) {
            return Some(format!(
                "{} called itself boot {} (boot_from={}): neither its own boot record nor the host's boot= told it which boot it is",
                name(i),
                b.index().map_or("?".to_string(), |n| n.to_string()),
                b.header_value("boot_from").unwrap_or("?")
            ));
        }
        let Some(done) = &b.done else {
            return Some(if i + 1 < log.boot_logs.len() {
                format!(
                    "{} ended without its plan-complete marker: the next boot started (a crash or an unplanned reset{})",
                    name(i),
                    triple_fault(log)
                )
            } else {
                format!(
                    "{} stopped ({}{}) without the plan-complete marker; last console line: {last}",
                    name(i),
                    status(code),
                    vmm_end(log)
                )
            });
        };
        let Some(counts) = done.counts else {
            return Some(format!("malformed plan-complete marker: {}", done.raw));
        };
        let printed = crate::ktap::Counts::of(log.boot_tests(i));
        if counts != printed {
            return Some(format!(
                "{} counted pass={} fail={} skip={} but printed pass={} fail={} skip={}",
                name(i),
                counts.pass,
                counts.fail,
                counts.skip,
                printed.pass,
                printed.fail,
                printed.skip
            ));
        }
        if let Some(why) = selection_mismatch(log.boot_tests(i), plan, i as u32) {
            return Some(if series {
                format!("{}: {why}", name(i))
            } else {
                why
            });
        }
    }
    (log.boot_logs.len() < expected).then(|| {
        format!(
            "the guest booted {} time(s); the plan expects {expected}: boot {} never started",
            log.boot_logs.len(),
            log.boot_logs.len()
        )
    })
}

/// Every test the plan selects for boot `boot` must be reported exactly
/// once; anything missing, extra or repeated is named.
fn selection_mismatch(tests: &[TestResult], plan: &Plan<'_>, boot: u32) -> Option<String> {
    let selected: Vec<&str> =
        catalog::selected_in_boot(plan.tests, plan.inject.is_some(), boot, plan.reboots)
            .map(|t| t.name)
            .collect();
    let times = |name: &str| tests.iter().filter(|t| t.name == name).count();
    let missing: Vec<&str> = selected.iter().copied().filter(|n| times(n) < 1).collect();
    let repeated: Vec<&str> = selected.iter().copied().filter(|n| times(n) > 1).collect();
    let mut extra: Vec<&str> = tests
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !selected.contains(n))
        .collect();
    extra.dedup();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("selected but not reported: {}", missing.join(", ")));
    }
    if !repeated.is_empty() {
        parts.push(format!("reported more than once: {}", repeated.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("reported but not selected: {}", extra.join(", ")));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "the plan selected {} test(s) (tests={}); {}",
            selected.len(),
            plan.tests,
            parts.join("; ")
        )
    })
}

/// A guest that found a converter may skip a conversion test only when the
/// plan itself turned the test's feature off (host=off, bench=off, fewer
/// CPUs than it needs).
fn unexcused_conv_skip(log: &Log, plan: &Plan<'_>) -> Option<String> {
    let converter = log.header_value("converter").filter(|c| *c != "none")?;
    let unexcused: Vec<String> = log
        .tests
        .iter()
        .filter(|t| {
            (t.name.starts_with("conv.")
                || t.name.starts_with("reset.")
                || t.name.starts_with("stress."))
                && t.result == Outcome::Skip
        })
        .filter(|t| {
            catalog::find(&t.name).is_none_or(|def| {
                !((def.needs_host && !plan.host)
                    || (def.needs_bench && !plan.bench)
                    || plan.cpus < def.min_cpus)
            })
        })
        .map(|t| format!("{} ({})", t.name, t.reason))
        .collect();
    (!unexcused.is_empty()).then(|| {
        format!(
            "the guest found the {converter} converter but skipped {}: a conversion test may \
             only skip when the plan turned its feature off (host=off, bench=off, cpus=)",
            unexcused.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap::parse_all;
    use std::time::Duration;

    const GOOD: &str = include_str!("../../tests/fixtures/x86_pvh_pass.ktap");
    /// What the fixture's guest was asked to run (it predates conv.reset_private and conv.cost).
    const PLAN: &str = "tests=boot.*,heap.*,mem.*,exc.*,clock.*,conv.share_verify,conv.unshare_private,conv.content,conv.rejects,conv.sizes,conv.flipflop";
    const OK: Ending = Ending::Exited {
        code: Some(33),
        hint: ExitHint::Success,
    };

    fn judge_text(text: &str, ending: &Ending) -> Judgement {
        judge(&FinishedRun {
            log: &parse_all(text.as_bytes()),
            ending,
            plan: PLAN,
            vmm_stderr: "",
        })
    }

    #[test]
    fn complete_run_passes() {
        let j = judge_text(GOOD, &OK);
        assert_eq!(
            j,
            Judgement {
                verdict: Verdict::Pass,
                reason: String::new()
            }
        );
        assert_eq!(j.verdict.exit_code(), 0);
    }

    #[test]
    fn missing_done_marker_fails() {
        let text = GOOD.replace("# convtest-done: pass=11 fail=0 skip=6\n", "");
        let j = judge_text(&text, &OK);
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.reason.contains("plan-complete marker"), "{}", j.reason);
        assert!(
            j.reason.contains("ok 6 conv"),
            "names the last line: {}",
            j.reason
        );
    }

    #[test]
    fn a_stop_without_the_marker_names_the_own_vmms_end() {
        let text = GOOD.replace(
            "# convtest-done: pass=11 fail=0 skip=6\n",
            "# convtest-vmm: exits=9 end_vcpu=1 end=reset\n",
        );
        let j = judge_text(&text, &OK);
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.reason
                .contains("(exit status 33; the VMM: end=reset by vCPU 1)"),
            "{}",
            j.reason
        );
        assert!(j.reason.contains("ok 6 conv"), "{}", j.reason);
    }

    #[test]
    fn count_mismatch_fails() {
        let j = judge_text(&GOOD.replace("pass=11", "pass=12"), &OK);
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.reason.contains("pass=12") && j.reason.contains("pass=11"),
            "{}",
            j.reason
        );
        let j = judge_text(&GOOD.replace("skip=6", "skip=six"), &OK);
        assert!(j.reason.contains("malformed"), "{}", j.reason);
    }

    #[test]
    fn failed_test_fails_with_its_reason() {
        let text = GOOD
            .replace(
                "    ok 3 mem.random",
                "    not ok 3 mem.random # mismatch at 0x2000",
            )
            .replace("pass=11 fail=0", "pass=10 fail=1");
        let j = judge_text(
            &text,
            &Ending::Exited {
                code: Some(35),
                hint: ExitHint::Failure,
            },
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert_eq!(
            j.reason,
            "1 test(s) failed: mem.random (mem.random: mismatch at 0x2000)"
        );
    }

    #[test]
    fn crash_reason_is_the_crash_line() {
        let text = "KTAP version 1\n1..1\n    # Subtest: inject\n    1..1\n\
                    # convtest-crash: #PF vector 14 addr=0xdeadbeef000 pc=0x102030\n\
                    \x20   not ok 1 inject.requested # crashed (see convtest-crash line)\n";
        let j = judge_text(
            text,
            &Ending::Exited {
                code: Some(35),
                hint: ExitHint::Failure,
            },
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert_eq!(
            j.reason,
            "guest crashed during inject.requested: # convtest-crash: #PF vector 14 addr=0xdeadbeef000 pc=0x102030"
        );
    }

    #[test]
    fn timeout_names_seconds_and_last_line() {
        let text = "KTAP version 1\n1..1\n    # Subtest: inject\n    # spinning forever on purpose (inject=hang)\n";
        let j = judge_text(
            text,
            &Ending::TimedOut {
                after: Duration::from_secs(15),
            },
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.reason.contains("timed out after 15 s"), "{}", j.reason);
        assert!(
            j.reason.contains("spinning forever on purpose"),
            "{}",
            j.reason
        );
        // Even a completed plan fails when the guest never powers off.
        let j = judge_text(
            GOOD,
            &Ending::TimedOut {
                after: Duration::from_secs(9),
            },
        );
        assert!(
            j.reason
                .starts_with("plan completed but the guest did not power off"),
            "{}",
            j.reason
        );
    }

    #[test]
    fn no_ktap_at_all() {
        let j = judge_text(
            "SeaBIOS (version 1.16)\n",
            &Ending::TimedOut {
                after: Duration::from_secs(5),
            },
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.reason.contains("SeaBIOS"), "{}", j.reason);
        let log = parse_all(b"");
        let ending = Ending::Exited {
            code: Some(1),
            hint: ExitHint::VmmError,
        };
        let stderr = "qemu-system-x86_64: -M bogus: unsupported machine type\n";
        let j = judge(&FinishedRun {
            log: &log,
            ending: &ending,
            plan: PLAN,
            vmm_stderr: stderr,
        });
        assert_eq!(j.verdict, Verdict::Error);
        assert!(
            j.reason.contains("unsupported machine type"),
            "{}",
            j.reason
        );
        assert_eq!(j.verdict.exit_code(), 2);
    }

    #[test]
    fn reset_before_ktap_is_a_guest_failure_not_an_error() {
        let j = judge_text(
            "SeaBIOS\n",
            &Ending::Exited {
                code: Some(0),
                hint: ExitHint::Unexpected,
            },
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.reason.contains("exit status 0") && j.reason.contains("SeaBIOS"),
            "{}",
            j.reason
        );
    }

    #[test]
    fn exit_status_contradicting_ktap_fails() {
        let j = judge_text(
            GOOD,
            &Ending::Exited {
                code: Some(35),
                hint: ExitHint::Failure,
            },
        );
        assert_eq!(j.verdict, Verdict::Fail);
        let j = judge_text(
            GOOD,
            &Ending::Exited {
                code: Some(1),
                hint: ExitHint::Unexpected,
            },
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(j.reason.contains("exit status 1"));
    }

    /// One boot of a `tests=boot.plan` series on a lane with no converter.
    fn boot_text(index: u32, reboots: u32, done: bool, with: &[&str]) -> String {
        let mut t = format!(
            "KTAP version 1\n# convtest: arch=x86_64 converter=none boot={index} boot_from=record\n1..3\n\
             \x20   # Subtest: boot\n    1..1\n    ok 1 boot.plan\nok 1 boot\n"
        );
        let (mut pass, mut skip) = (1, 0);
        if with.contains(&"reset") {
            t += "    # Subtest: reset\n    1..3\n    ok 1 reset.content\n\
                  \x20   ok 2 reset.private_again # SKIP no converter\n\
                  \x20   ok 3 reset.calls # SKIP no converter\nok 2 reset\n";
            pass += 1;
            skip += 2;
        }
        if index < reboots {
            t += "    # Subtest: reboot\n    1..1\n    ok 1 reboot.leave_dirty\nok 3 reboot\n";
            pass += 1;
        }
        if done {
            t += &format!("# convtest-done: pass={pass} fail=0 skip={skip}\n");
        }
        t
    }

    /// Boot `index` of the series with its reset.content failed for `why`.
    fn reset_content_failed(index: u32, reboots: u32, why: &str) -> String {
        boot_text(index, reboots, true, &["reset"])
            .replace(
                "ok 1 reset.content",
                &format!("not ok 1 reset.content # {why}"),
            )
            .replace("pass=2 fail=0", "pass=1 fail=1")
    }

    /// `text` judged as a clean exit of `plan`.
    fn judge_planned(text: &str, plan: &str) -> Judgement {
        let log = parse_all(text.as_bytes());
        judge(&FinishedRun {
            log: &log,
            ending: &OK,
            plan,
            vmm_stderr: "",
        })
    }

    fn series(reboots: u32, boots: &[(u32, bool, &[&str])]) -> Judgement {
        let text: String = boots
            .iter()
            .map(|&(i, done, with)| boot_text(i, reboots, done, with))
            .collect();
        judge_planned(&text, &format!("tests=boot.plan reboots={reboots}"))
    }

    #[test]
    fn every_boot_of_a_series_is_judged_and_named() {
        const R: &[&str] = &["reset"];
        let j = series(2, &[(0, true, &[]), (1, true, R), (2, true, R)]);
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
        let j = series(1, &[(0, true, &[]), (1, true, R)]);
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
        let bad = [
            (
                series(2, &[(0, true, &[]), (1, true, R)]),
                "booted 2 time(s); the plan expects 3: boot 2 never started",
            ),
            (
                series(0, &[(0, true, &[]), (0, true, &[])]),
                "unplanned reset: boot 1 started but the plan has 0 reboot(s)",
            ),
            (
                series(2, &[(0, true, &[]), (0, true, R), (1, true, R)]),
                "boot 1 (of 3) called itself boot 0",
            ),
            (
                series(2, &[(0, true, &[]), (1, false, R), (2, true, R)]),
                "boot 1 (of 3) ended without its plan-complete marker: the next boot started",
            ),
            (
                series(2, &[(0, true, &[]), (1, true, &[]), (2, true, R)]),
                "boot 1 (of 3): the plan selected 5 test(s)",
            ),
            (
                series(1, &[(0, true, &[]), (1, false, R)]),
                "boot 1 (of 2) stopped (exit status 33) without the plan-complete marker",
            ),
        ];
        for (j, want) in bad {
            assert_eq!(j.verdict, Verdict::Fail);
            assert!(j.reason.contains(want), "want {want:?} in {:?}", j.reason);
        }
    }

    #[test]
    fn a_boot_cut_by_a_triple_fault_comes_before_the_failure_it_caused() {
        let text = boot_text(0, 2, true, &[])
            + &boot_text(1, 2, false, &["reset"])
            + "# convtest-vmm: triple_fault_vcpu=0 exit_before=io:0x3f8 rip=0xfff0\n\
               # convtest-vmm: crumbs=read crumbs_cpu0=test:reset.calls/9 crumbs_cpu1=idle_after_job:1/2 exceptions=0\n"
            + &reset_content_failed(2, 2, "canary missing");
        let j = judge_planned(&text, "tests=boot.plan reboots=2");
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.reason.starts_with(
                "boot 1 (of 3) ended without its plan-complete marker: the next boot started \
                 (a crash or an unplanned reset; the VMM saw vCPU 0 triple-fault: its last exit \
                 io:0x3f8, cpu0=test:reset.calls/9, cpu1=idle_after_job:1/2, exceptions=0); \
                 then 1 test(s) failed: boot2.reset.content"
            ),
            "{}",
            j.reason
        );
    }

    #[test]
    fn a_failure_in_a_series_names_its_boot() {
        let text = boot_text(0, 1, true, &[]) + &reset_content_failed(1, 1, "private page wiped");
        let j = judge_planned(&text, "tests=boot.plan reboots=1");
        assert!(
            j.reason.contains("boot1.reset.content: private page wiped"),
            "{}",
            j.reason
        );
    }

    fn conv_run(results: &str, converter: &str) -> String {
        format!(
            "KTAP version 1\n# convtest: arch=x86_64 converter={converter}\n1..1\n    # Subtest: conv\n{results}\
             # convtest-done: pass={} fail=0 skip={}\n",
            results.matches("    ok").count() - results.matches("# SKIP").count(),
            results.matches("# SKIP").count()
        )
    }

    fn judge_plan(text: &str, plan: &str) -> Judgement {
        judge(&FinishedRun {
            log: &parse_all(text.as_bytes()),
            ending: &OK,
            plan,
            vmm_stderr: "",
        })
    }

    #[test]
    fn every_selected_test_exactly_once() {
        let two = "    ok 1 conv.content\n    ok 2 conv.rejects\n";
        let plan = "tests=conv.content,conv.rejects host=on";
        assert_eq!(
            judge_plan(&conv_run(two, "none"), plan).verdict,
            Verdict::Pass
        );
        let j = judge_plan(&conv_run("    ok 1 conv.content\n", "none"), plan);
        assert!(
            j.reason.contains("selected but not reported: conv.rejects"),
            "{}",
            j.reason
        );
        let dup = "    ok 1 conv.content\n    ok 2 conv.rejects\n    ok 3 conv.rejects\n";
        let j = judge_plan(&conv_run(dup, "none"), plan);
        assert!(
            j.reason.contains("reported more than once: conv.rejects"),
            "{}",
            j.reason
        );
        let extra = "    ok 1 conv.content\n    ok 2 conv.rejects\n    ok 3 conv.sizes\n";
        let j = judge_plan(&conv_run(extra, "none"), plan);
        assert!(
            j.reason.contains("reported but not selected: conv.sizes"),
            "{}",
            j.reason
        );
    }

    #[test]
    fn a_converter_with_a_skipped_conv_test_fails_unless_the_plan_turned_it_off() {
        let skipped = "    ok 1 conv.share_verify # SKIP plan has host=off\n    ok 2 conv.cost # SKIP plan has bench=off\n";
        let tests = "tests=conv.share_verify,conv.cost";
        // Without a converter the skips are the probe's finding: fine.
        let j = judge_plan(&conv_run(skipped, "none"), &format!("{tests} host=on"));
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
        let j = judge_plan(
            &conv_run(skipped, "pkvm"),
            &format!("{tests} host=on bench=on"),
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.reason
                .contains("pkvm converter but skipped conv.share_verify")
                && j.reason.contains("conv.cost"),
            "{}",
            j.reason
        );
        let j = judge_plan(
            &conv_run(skipped, "pkvm"),
            &format!("{tests} host=off bench=off"),
        );
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.reason);
    }

    #[test]
    fn a_vmm_offering_conversions_to_a_guest_that_found_none_fails() {
        let text = "# convtest-vmm: arch=x86_64 memory=emulated-private map_gpa_range=on\n\
            KTAP version 1\n# convtest: arch=x86_64 hypervisor=none converter=none\n\
            # probe: no hypervisor (CPUID.1:ECX bit 31 clear) offers a conversion ABI\n1..1\n\
            \x20   # Subtest: conv\n    ok 1 conv.content # SKIP no hypervisor\n\
            # convtest-done: pass=0 fail=0 skip=1\n";
        let j = judge_plan(text, "tests=conv.content host=on");
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.reason.contains("served KVM_HC_MAP_GPA_RANGE")
                && j.reason.contains("CPUID.1:ECX bit 31 clear"),
            "{}",
            j.reason
        );
        let off = text.replace("map_gpa_range=on", "map_gpa_range=off");
        assert_eq!(
            judge_plan(&off, "tests=conv.content host=on").verdict,
            Verdict::Pass
        );
        let pvm = "# convtest-vmm: arch=aarch64 vm_type=protected\n".to_string()
            + &text.replace(
                "# convtest-vmm: arch=x86_64 memory=emulated-private map_gpa_range=on\n",
                "",
            );
        assert!(
            judge_plan(&pvm, "tests=conv.content host=on")
                .reason
                .contains("pKVM protected VM")
        );
    }

    /// The run that passed on Debian 6.12 while testing nothing: the old VMM
    /// left CPUID.1:ECX[31] clear, so the guest never looked for KVM.
    #[test]
    fn recorded_612_run_without_the_hypervisor_bit_fails() {
        let raw = include_bytes!("../../tests/fixtures/x86_nested_612_no_hypervisor_bit.console");
        let log = parse_all(raw);
        let j = judge(&FinishedRun {
            log: &log,
            ending: &OK,
            plan: "tests=* seed=0x5eed iters=1000 mem=16777216 boot=0 reboots=0 host=on bench=on",
            vmm_stderr: "",
        });
        assert_eq!(j.verdict, Verdict::Fail);
        assert_eq!(
            j.reason,
            "the VMM served KVM_HC_MAP_GPA_RANGE exits (vmm.map_gpa_range=on) but the guest found \
             no converter (no hypervisor (CPUID.1:ECX bit 31 clear) offers a conversion ABI): no \
             conversion was tested"
        );
    }

    #[test]
    fn recorded_aarch64_crash_console() {
        // Raw serial output of the EL2 lane with inject=fault, recorded from QEMU.
        let raw = include_bytes!("../../tests/fixtures/aarch64_el2_crash.raw");
        let log = parse_all(raw);
        assert_eq!(log.header_value("mode"), Some("el1-from-el2"));
        assert_eq!(log.count(Outcome::Pass), 3);
        let ending = Ending::Exited {
            code: Some(0),
            hint: ExitHint::Success,
        };
        let j = judge(&FinishedRun {
            log: &log,
            ending: &ending,
            plan: PLAN,
            vmm_stderr: "",
        });
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(
            j.reason.starts_with(
                "guest crashed during inject.requested: # convtest-crash: EL1h sync exception"
            ),
            "{}",
            j.reason
        );
    }
}
