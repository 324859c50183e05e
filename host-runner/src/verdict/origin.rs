//! Whose word a run rests on: a guest line that would have read as a host
//! layer's (the relay between guest and runner marked it forged) fails the
//! run naming it, and every host answer the runner counted must be one the
//! VMM says it served, kind by kind.

use crate::ktap::Log;
use convtest_proto::hostcheck::{AnswerCounts, AnswerKind};

/// Lines of each kind the reason quotes at most.
const QUOTED: usize = 3;

/// The guest printed lines only a host layer may print.
pub(super) fn forged(log: &Log) -> Option<String> {
    if log.forged.is_empty() {
        return None;
    }
    let series = log.boot_logs.len() > 1;
    let quoted: Vec<String> = log
        .forged
        .iter()
        .take(QUOTED)
        .map(|f| {
            let place = match (&f.test, series) {
                (Some(t), true) => format!("during boot{}.{t}", f.boot),
                (Some(t), false) => format!("during {t}"),
                (None, true) => format!("in boot {}, outside any test", f.boot),
                (None, false) => "outside any test".to_string(),
            };
            format!("{place}: {:?}", f.line)
        })
        .collect();
    let more = log.forged.len().saturating_sub(QUOTED);
    Some(format!(
        "the guest printed {} line(s) only the host side may print (a VMM, L1 or host-check line; \
         passed on as `# convtest-forged:`): {}{}",
        log.forged.len(),
        quoted.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    ))
}

/// The VMM's count of the host answers it served, when it gave all of them.
fn served(log: &Log) -> Option<AnswerCounts> {
    let mut c = AnswerCounts::default();
    for (i, k) in AnswerKind::ALL.into_iter().enumerate() {
        c.0[i] = log.vmm_fact(k.fact_key())?.parse().ok()?;
    }
    Some(c)
}

fn counts(c: &AnswerCounts) -> String {
    AnswerKind::ALL
        .iter()
        .map(|k| format!("{}={}", k.as_str(), c.get(*k)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every host answer the runner counted was served by the VMM.
pub(super) fn unserved_answers(log: &Log) -> Option<String> {
    if let Some(bad) = log.malformed_host_lines.first() {
        return Some(format!(
            "{} host-answer line(s) the runner cannot read, the first: {bad:?}",
            log.malformed_host_lines.len()
        ));
    }
    let counted = log.host_answers;
    match served(log) {
        None if counted.total() == 0 => None,
        None => Some(format!(
            "the console carries {} host answer(s) ({}) but the VMM did not say how many it served \
             (no host_verify=, host_scan=, host_noread=, host_unparsable= facts)",
            counted.total(),
            counts(&counted)
        )),
        Some(s) if s != counted => Some(format!(
            "the VMM says it served {} but the console carries {}: a host answer was counted that \
             the VMM did not give, or one it gave is missing",
            counts(&s),
            counts(&counted)
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap::parse_all;

    const RUN: &str = "KTAP version 1\n1..1\n    # Subtest: conv\n    1..1\n\
        \x20   # convtest-req 1 verify 0x1000 0x1000 0x5\n\
        # convtest-host: verify convtest-ack 1 ok enforced 4096 bytes hold the pattern\n\
        \x20   ok 1 conv.share_verify\nok 1 conv\n";

    fn facts(verify: u32) -> String {
        format!(
            "# convtest-vmm: host_checks={verify} host_verify={verify} host_scan=0 host_noread=0 host_unparsable=0\n"
        )
    }

    #[test]
    fn answers_the_vmm_served_agree_with_the_console() {
        let log = parse_all(format!("{RUN}{}", facts(1)).as_bytes());
        assert_eq!(log.host_answers.get(AnswerKind::Verify), 1);
        assert_eq!(unserved_answers(&log), None);
        assert_eq!(forged(&log), None);
    }

    #[test]
    fn an_answer_the_vmm_did_not_serve_fails_naming_the_counts() {
        let log = parse_all(format!("{RUN}{}", facts(0)).as_bytes());
        let why = unserved_answers(&log).expect("a mismatch");
        assert!(
            why.contains("served verify=0") && why.contains("carries verify=1"),
            "{why}"
        );
        let log = parse_all(RUN.as_bytes());
        assert!(
            unserved_answers(&log)
                .expect("no count")
                .contains("did not say how many")
        );
        let log = parse_all(b"# convtest-host: convtest-ack 1 ok enforced old form\n");
        assert!(
            unserved_answers(&log)
                .expect("unreadable")
                .contains("cannot read")
        );
    }

    #[test]
    fn forged_lines_are_named_with_the_test_they_came_in() {
        let text = RUN.replace(
            "    ok 1 conv.share_verify",
            "# convtest-forged:     # convtest-host: verify convtest-ack 2 ok enforced forged\n    ok 1 conv.share_verify",
        ) + "# convtest-forged: # convtest-l1: run_end=x vmm_exit=33\n";
        let log = parse_all(text.as_bytes());
        assert_eq!(log.tests[0].forged.len(), 1);
        let why = forged(&log).expect("forged");
        assert!(
            why.starts_with("the guest printed 2 line(s) only the host side may print"),
            "{why}"
        );
        assert!(
            why.contains(
                "during conv.share_verify: \"# convtest-host: verify convtest-ack 2 ok enforced forged\""
            ),
            "{why}"
        );
        assert!(
            why.contains("outside any test: \"# convtest-l1: run_end=x vmm_exit=33\""),
            "{why}"
        );
        // The forged answer is no answer: not counted, not the test's evidence.
        assert_eq!(log.host_answers.total(), 1);
    }
}
