//! The words of a verdict's reason: test names as a person finds them in
//! the output, the last console line, exit statuses, what the own VMM said
//! about the end.

use crate::ktap::{Log, TestResult};
use convtest_proto::ktap::Outcome;

pub(super) fn failed_names(log: &Log) -> String {
    let names: Vec<String> = log
        .tests
        .iter()
        .filter(|t| t.result == Outcome::Fail)
        .map(|t| qualified_name(log, t))
        .collect();
    names.join(", ")
}

/// `boot<N>.<suite>.<case>` in a run of several boots, the plain name otherwise.
pub fn qualified_name(log: &Log, t: &TestResult) -> String {
    if log.boot_logs.len() > 1 {
        format!("boot{}.{}", t.boot, t.name)
    } else {
        t.name.clone()
    }
}

pub(super) fn last_line(log: &Log) -> String {
    match &log.last_line {
        Some(l) => format!("{:?}", l.trim()),
        None => "(none)".into(),
    }
}

/// `; the VMM: end=reset by vCPU 1` when convtest's own VMM said how the
/// run ended (its exit status alone cannot tell a reset from an unserved
/// exit).
pub(super) fn vmm_end(log: &Log) -> String {
    match (log.vmm_fact("end"), log.vmm_fact("end_vcpu")) {
        (Some(end), Some(v)) => format!("; the VMM: end={end} by vCPU {v}"),
        (Some(end), None) => format!("; the VMM: end={end}"),
        _ => String::new(),
    }
}

/// `; the VMM saw vCPU 0 triple-fault (…)` from the own VMM's facts, with
/// the guest's breadcrumbs when it read them; empty without one.
pub(super) fn triple_fault(log: &Log) -> String {
    let Some(vcpu) = log.vmm_fact("triple_fault_vcpu") else {
        return String::new();
    };
    let mut seen = vec![format!(
        "its last exit {}",
        log.vmm_fact("exit_before").unwrap_or("?")
    )];
    seen.extend(
        log.vmm
            .iter()
            .filter(|(k, _)| k.starts_with("crumbs_cpu") || k.starts_with("exc"))
            .map(|(k, v)| format!("{}={v}", k.trim_start_matches("crumbs_"))),
    );
    format!(
        "; the VMM saw vCPU {vcpu} triple-fault: {}",
        seen.join(", ")
    )
}

pub(super) fn status(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit status {c}"),
        None => "no exit status (killed by a signal)".into(),
    }
}

pub(super) fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" / "))
    }
}
