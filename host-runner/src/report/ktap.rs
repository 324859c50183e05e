//! The saved KTAP (`--ktap PATH`): the guest's console from its first
//! `KTAP version 1` on, with terminal escapes and `\r` removed, so kunit.py
//! or a lab's KTAP reader can take it as is. A run that never reached KTAP
//! saves nothing but a comment saying so.
//!
//! A reboot series prints one KTAP stream per boot on the console. Saved
//! as they are, they would be several documents in one file, and a reader
//! stops after the first (kunit.py counts only boot 0). So a run with more
//! than one boot is saved as ONE document with one subtest per boot
//! (`boot0`, `boot1`, …), each boot's own stream nested four spaces deeper
//! under a `# Subtest:` header, and a result line per boot: `ok` when every
//! test of that boot passed or skipped and the boot printed its
//! plan-complete marker, `not ok` with the reason otherwise.

use super::RunRecord;
use crate::ktap::{BootLog, Log};
use convtest_proto::ktap::{INDENT, Outcome, VERSION_LINE};

pub fn render(r: &RunRecord) -> String {
    let log = &r.log;
    if log.ktap_lines.is_empty() {
        let last = log.last_line.as_deref().unwrap_or("(nothing)");
        return format!("# convtest: the guest printed no KTAP; last console line: {last}\n");
    }
    let streams = boot_streams(&log.ktap_lines);
    if streams.len() < 2 {
        let mut s = log.ktap_lines.join("\n");
        s.push('\n');
        return s;
    }
    let mut s = format!(
        "{VERSION_LINE}\n# convtest: a reboot series of {} boots, one subtest per boot\n1..{}\n",
        streams.len(),
        streams.len()
    );
    for (i, lines) in streams.iter().enumerate() {
        let name = format!("boot{i}");
        for (j, line) in lines.iter().enumerate() {
            if line.is_empty() {
                s.push('\n');
            } else {
                s.push_str(&format!("{INDENT}{line}\n"));
            }
            if j == 0 {
                s.push_str(&format!("{INDENT}# Subtest: {name}\n"));
            }
        }
        match boot_failure(log, i) {
            None => s.push_str(&format!("ok {} {name}\n", i + 1)),
            Some(why) => s.push_str(&format!("not ok {} {name} # {why}\n", i + 1)),
        }
    }
    s
}

/// The saved lines cut at each top-level `KTAP version 1`: one stream per
/// boot, each starting with its version line.
fn boot_streams(lines: &[String]) -> Vec<&[String]> {
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.as_str() == VERSION_LINE)
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let end = starts.get(k + 1).copied().unwrap_or(lines.len());
            &lines[start..end]
        })
        .collect()
}

/// Why boot `i` is not ok, or None when every test it reported passed or
/// skipped and it printed its plan-complete marker.
fn boot_failure(log: &Log, i: usize) -> Option<String> {
    let Some(boot) = log.boot_logs.get(i) else {
        return Some("the runner read no boot here".into());
    };
    let end = log
        .boot_logs
        .get(i + 1)
        .map_or(log.tests.len(), |b: &BootLog| b.first_test);
    let failed = log.tests[boot.first_test.min(end)..end]
        .iter()
        .filter(|t| t.result == Outcome::Fail)
        .count();
    if let Some(crash) = &boot.crash {
        return Some(format!("crashed: {crash}"));
    }
    if failed > 0 {
        return Some(format!("{failed} test(s) failed"));
    }
    if boot.done.is_none() {
        return Some("ended without its plan-complete marker".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;
    use crate::verdict::Verdict;

    #[test]
    fn saved_ktap_is_the_clean_stream() {
        let good = include_str!("../../tests/fixtures/x86_pvh_pass.ktap");
        let noisy = format!("\x1b[2JSeaBIOS\r\n{}", good.replace('\n', "\r\n"));
        let saved = render(&sample(&noisy, Verdict::Pass, ""));
        assert_eq!(saved, good.trim_start_matches('\n'));
    }

    #[test]
    fn no_ktap_says_so() {
        let saved = render(&sample("Booting from ROM..\r\n", Verdict::Fail, "x"));
        assert_eq!(
            saved,
            "# convtest: the guest printed no KTAP; last console line: Booting from ROM..\n"
        );
    }

    /// A three-boot series (QEMU TCG, `--reboots 2`) becomes one document:
    /// its plan counts the boots, each boot is a named subtest holding its
    /// own stream unchanged four spaces deeper, and every result line of
    /// every boot is in it — what kunit.py needs to count them all.
    #[test]
    fn a_reboot_series_is_one_document_with_a_subtest_per_boot() {
        let raw = include_str!("../../tests/fixtures/x86_qemu_reboots2.ktap");
        let r = sample(raw, Verdict::Pass, "");
        let saved = render(&r);
        let lines: Vec<&str> = saved.lines().collect();
        assert_eq!(lines[0], "KTAP version 1");
        assert_eq!(
            lines.iter().filter(|l| **l == "KTAP version 1").count(),
            1,
            "one top-level version line"
        );
        assert!(lines.contains(&"1..3"));
        for (i, name) in ["boot0", "boot1", "boot2"].iter().enumerate() {
            let header = format!("    # Subtest: {name}");
            let at = lines.iter().position(|l| *l == header).expect("header");
            assert_eq!(lines[at - 1], "    KTAP version 1");
            assert!(lines.contains(&format!("ok {} {name}", i + 1).as_str()));
        }
        // Every leaf result of every boot is in the document, 8 spaces deep
        // (the guest's cases are 4 deep in their own stream).
        let leaves = lines
            .iter()
            .filter(|l| l.starts_with("        ok ") || l.starts_with("        not ok "))
            .count();
        assert_eq!(leaves, r.log.tests.len());
        assert!(
            r.log
                .tests
                .iter()
                .any(|t| t.boot == 2 && t.name.starts_with("reset."))
        );
        // Nothing of the original streams is lost, only indented.
        let original: Vec<&str> = raw.lines().filter(|l| !l.is_empty()).collect();
        let nested: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("    "))
            .filter(|l| !l.starts_with("# Subtest: "))
            .collect();
        assert_eq!(nested, original);
    }

    #[test]
    fn a_boot_that_failed_or_was_cut_is_not_ok_with_the_reason() {
        let raw = include_str!("../../tests/fixtures/x86_qemu_reboots2.ktap");
        let failed = raw.replacen("    ok 1 reset.", "    not ok 1 reset.", 1);
        let saved = render(&sample(&failed, Verdict::Fail, "x"));
        assert!(
            saved.contains("\nnot ok 2 boot1 # 1 test(s) failed\n"),
            "{saved}"
        );
        let cut = &raw[..raw.rfind("# convtest-done").expect("marker")];
        let saved = render(&sample(cut, Verdict::Fail, "x"));
        assert!(
            saved.contains("\nnot ok 3 boot2 # ended without its plan-complete marker\n"),
            "{saved}"
        );
    }
}
