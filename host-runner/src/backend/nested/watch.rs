//! How each inner run ended, from what the L1 console said about it. The
//! outer QEMU exits 0 whenever the L1 powers off, so a run's end is the
//! `vmm_exit=` on its run_end line; a run without one ended with the L1
//! (died, or killed at the outer timeout), which is never a success. The
//! inner VMM's stderr, relayed by /init as prefixed lines, becomes the
//! run's stderr, with /init's `error=…` lines.

use crate::backend::process;
use crate::backend::run_end::{RunEnd, exit_hint};
use crate::verdict::{Ending, ExitHint};
use convtest_proto::arch::Arch;
use convtest_proto::l1::marker::VmmExit;
use convtest_proto::wire::{L1_PREFIX, L1_STDERR_PREFIX};
use std::time::Duration;

/// Only this much of a line is read for facts; the console keeps it whole.
const MAX_LINE: usize = 4096;

/// What the console said about one run (or, for /init's lines outside any
/// run, about the L1).
#[derive(Debug, Default)]
pub struct RunFacts {
    /// Its run_begin line arrived.
    pub began: bool,
    /// From its run_end line.
    pub exit: Option<VmmExit>,
    /// /init's measure, from its run_end line.
    pub run_ms: Option<u64>,
    /// The inner VMM's stderr lines.
    pub vmm_stderr: String,
    /// `error=…` lines /init printed.
    pub errors: Vec<String>,
}

impl RunFacts {
    /// One whole console line of this run.
    pub fn line(&mut self, bytes: &[u8]) {
        let bytes = &bytes[..bytes.len().min(MAX_LINE)];
        let text = String::from_utf8_lossy(bytes);
        let line = text.trim_end_matches(['\n', '\r']);
        if let Some(rest) = line.strip_prefix(L1_STDERR_PREFIX) {
            self.vmm_stderr.push_str(rest);
            self.vmm_stderr.push('\n');
        } else if let Some(rest) = line.strip_prefix(L1_PREFIX)
            && rest.starts_with("error=")
        {
            self.errors.push(rest.to_string());
        }
    }
}

/// How the L1 as a whole ended.
pub struct L1End<'a> {
    pub arch: Arch,
    pub finished: &'a process::Finished,
    /// The outer QEMU's timeout.
    pub timeout: Duration,
    pub command: &'a str,
    /// /init's lines before the first run (setup) and after the last.
    pub before: &'a RunFacts,
    pub after: &'a RunFacts,
}

/// Every run's end, in order; `limits` are the runs' time limits.
pub fn endings(runs: &[&RunFacts], limits: &[Duration], l1: &L1End<'_>) -> Vec<RunEnd> {
    let all_ended = runs.iter().all(|r| r.exit.is_some());
    (0..runs.len())
        .map(|i| {
            let limit = limits.get(i).copied().unwrap_or(l1.timeout);
            let last = i + 1 == runs.len();
            let note = if all_ended && last {
                l1_hung_note(l1)
            } else {
                never_started_note(runs, i)
            };
            run_end(runs[i], limit, last, note, l1)
        })
        .collect()
}

/// All runs ended but the L1 had to be killed: the results stand, said so.
fn l1_hung_note(l1: &L1End<'_>) -> Option<String> {
    matches!(l1.finished.end, process::End::TimedOut)
        .then(|| "the L1 did not power off after the inner VMM exited".into())
}

/// Why run `i` has no run_begin, when another run's fate says.
fn never_started_note(runs: &[&RunFacts], i: usize) -> Option<String> {
    if runs[i].began {
        return None;
    }
    if runs[i + 1..].iter().any(|r| r.began) {
        return Some("/init skipped this run (no run_begin for it)".into());
    }
    let (j, last) = runs[..i].iter().enumerate().rev().find(|(_, r)| r.began)?;
    Some(match last.exit {
        None => format!("this run never started: the L1 ended during run {}", j + 1),
        Some(_) => format!("this run never started: the L1 ended after run {}", j + 1),
    })
}

fn run_end(
    run: &RunFacts,
    limit: Duration,
    last: bool,
    note: Option<String>,
    l1: &L1End<'_>,
) -> RunEnd {
    let mut stderr = run.vmm_stderr.clone();
    // /init's own trouble outside the runs matters to a run the L1 ended,
    // and to the last run (a failed power-off comes after it).
    let l1_errors = run.exit.is_none() || last;
    let errors: Vec<&String> = if l1_errors {
        (l1.before.errors.iter())
            .chain(&run.errors)
            .chain(&l1.after.errors)
            .collect()
    } else {
        run.errors.iter().collect()
    };
    for e in &errors {
        stderr.push_str(&format!("L1 /init: {e}\n"));
    }
    let (ending, exit_code) = match &run.exit {
        Some(exit) => ended(exit, limit, l1.arch, &mut stderr),
        None => ended_with_the_l1(!errors.is_empty(), l1, &mut stderr),
    };
    if let Some(note) = note {
        stderr.push_str(&note);
        stderr.push('\n');
    }
    stderr.push_str(&l1.finished.stderr);
    RunEnd {
        ending,
        exit_code,
        stderr,
        command: l1.command.to_string(),
    }
}

/// A run with a run_end line: the inner VMM's status as a QEMU-style code.
fn ended(
    exit: &VmmExit,
    limit: Duration,
    arch: Arch,
    stderr: &mut String,
) -> (Ending, Option<i32>) {
    match exit {
        VmmExit::Code(c) => (
            Ending::Exited {
                code: Some(*c),
                hint: exit_hint(arch, Some(*c)),
            },
            Some(*c),
        ),
        VmmExit::Timeout => {
            stderr.push_str(&format!(
                "/init killed the inner VMM at the run's {} s limit\n",
                limit.as_secs()
            ));
            (Ending::TimedOut { after: limit }, None)
        }
        // /init could not start it: the guest never ran, like a VMM that
        // rejected its setup.
        VmmExit::Error => (
            Ending::Exited {
                code: None,
                hint: ExitHint::VmmError,
            },
            None,
        ),
        VmmExit::Signal(_) | VmmExit::Other(_) => (
            Ending::Exited {
                code: None,
                hint: ExitHint::Unexpected,
            },
            None,
        ),
    }
}

/// A run the L1 ended before its run_end line: the outer QEMU's end, never
/// a success whatever its status.
fn ended_with_the_l1(
    init_errors: bool,
    l1: &L1End<'_>,
    stderr: &mut String,
) -> (Ending, Option<i32>) {
    match &l1.finished.end {
        process::End::TimedOut => (Ending::TimedOut { after: l1.timeout }, None),
        process::End::Exited(status) => {
            let code = status.code();
            stderr.push_str(&format!(
                "the L1 ended (QEMU {}) without the inner VMM's exit status\n",
                code.map_or("killed by a signal".to_string(), |c| format!(
                    "exit status {c}"
                ))
            ));
            let hint = if init_errors {
                // /init said why it gave up (modules, /dev/kvm): the guest
                // never ran, like a VMM that rejected its setup.
                ExitHint::VmmError
            } else {
                ExitHint::Unexpected
            };
            (Ending::Exited { code, hint }, code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::collect::Collector;
    use super::super::split::Splitter;
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    const LIMIT: Duration = Duration::from_secs(40);
    const OUTER: Duration = Duration::from_secs(100);

    /// Every run's end after `chunks` of console and the L1's `end`.
    fn ends(labels: &[&str], chunks: &[&[u8]], end: process::End) -> Vec<RunEnd> {
        let mut split = Splitter::new(labels.iter().map(|l| l.to_string()).collect());
        let mut seen = Collector::new(labels.len(), false);
        for c in chunks {
            split.feed(c, &mut |ev| seen.event(&ev));
        }
        split.finish(&mut |ev| seen.event(&ev));
        let finished = process::Finished {
            end,
            stderr: "qemu-stderr\n".into(),
        };
        let facts: Vec<&RunFacts> = seen.runs.iter().map(|r| &r.facts).collect();
        endings(
            &facts,
            &vec![LIMIT; labels.len()],
            &L1End {
                arch: Arch::X86_64,
                finished: &finished,
                timeout: OUTER,
                command: "qemu …",
                before: &seen.before,
                after: &seen.after,
            },
        )
    }

    /// The one-run console of `convtest run`, around `inner`.
    fn one(inner: &str, end: process::End) -> RunEnd {
        let console = format!(
            "# convtest-l1: kernel=7.3.4 kvm=stock boot_ms=3000\n\
             # convtest-l1: run_begin=run run_index=0 runs=1\n{inner}"
        );
        ends(&["run"], &[console.as_bytes()], end).remove(0)
    }

    /// QEMU's status is wait()'s: exit code in bits 8..16.
    fn exited(code: i32) -> process::End {
        process::End::Exited(ExitStatus::from_raw(code << 8))
    }

    fn hint(end: &RunEnd) -> Option<ExitHint> {
        match end.ending {
            Ending::Exited { hint, .. } => Some(hint),
            Ending::TimedOut { .. } => None,
        }
    }

    #[test]
    fn the_inner_vmm_code_decides() {
        let end = one(
            "# convtest-l1: run_end=run vmm_exit=33 run_ms=5\n",
            exited(0),
        );
        assert_eq!(
            end.ending,
            Ending::Exited {
                code: Some(33),
                hint: ExitHint::Success
            }
        );
        assert_eq!(end.exit_code, Some(33));
        assert_eq!(end.stderr, "qemu-stderr\n");
        assert_eq!(end.command, "qemu …");
        let end = one("# convtest-l1: run_end=run vmm_exit=35\n", exited(0));
        assert_eq!(hint(&end), Some(ExitHint::Failure));
        let end = one(
            "# convtest-l1-stderr: boom\n# convtest-l1: run_end=run vmm_exit=1\n",
            exited(0),
        );
        assert_eq!(hint(&end), Some(ExitHint::VmmError));
        assert_eq!(end.stderr, "boom\nqemu-stderr\n");
    }

    #[test]
    fn an_l1_that_ends_without_the_vmm_exit_is_unexpected() {
        // arm64 QEMU exits 0 on any power-off: that must not read as success.
        let end = one("reboot: Power down\n", exited(0));
        assert_eq!(
            end.ending,
            Ending::Exited {
                code: Some(0),
                hint: ExitHint::Unexpected
            }
        );
        assert!(end.stderr.contains("without the inner VMM's exit status"));
        // /init's own error before any run: the guest never ran, and the
        // reason is kept.
        let end = ends(&["run"], &[b"# convtest-l1: error=no-dev-kvm\n"], exited(0)).remove(0);
        assert_eq!(
            end.ending,
            Ending::Exited {
                code: Some(0),
                hint: ExitHint::VmmError
            }
        );
        assert!(
            end.stderr.starts_with("L1 /init: error=no-dev-kvm\n"),
            "{}",
            end.stderr
        );
        let end = ends(&["run"], &[b""], process::End::TimedOut).remove(0);
        assert_eq!(end.ending, Ending::TimedOut { after: OUTER });
        // The VMM finished but the L1 hung on the way down: the VMM's result stands.
        let end = one(
            "# convtest-l1: run_end=run vmm_exit=33\n",
            process::End::TimedOut,
        );
        assert_eq!(hint(&end), Some(ExitHint::Success));
        assert!(end.stderr.contains("did not power off"), "{}", end.stderr);
    }

    #[test]
    fn finds_exit_code_and_stderr_across_chunks() {
        let end = ends(
            &["run"],
            &[
                b"KTAP version 1\r\n# convtest-l1: kernel=7.3.4 kvm=st",
                b"ock\r\n# convtest-l1: run_begin=run run_in",
                b"dex=0 runs=1\r\n# convtest-l1-stderr: convtest vmm: KVM_CREATE_VM: EINVAL\r\n# convtest-l1: run_end=run vmm_ex",
                b"it=1 run_ms=7\r",
                b"\n",
            ],
            exited(0),
        )
        .remove(0);
        assert_eq!(end.exit_code, Some(1));
        assert_eq!(
            end.stderr,
            "convtest vmm: KVM_CREATE_VM: EINVAL\nqemu-stderr\n"
        );
    }

    #[test]
    fn signals_and_errors() {
        let end = one(
            "# convtest-l1: run_end=run vmm_exit=signal-9 run_ms=5\n",
            exited(0),
        );
        assert_eq!(
            end.ending,
            Ending::Exited {
                code: None,
                hint: ExitHint::Unexpected
            }
        );
        // /init could not start this run: the guest never ran.
        let end = one(
            "# convtest-l1: error=spawn errno=2\n# convtest-l1: run_end=run vmm_exit=error\n",
            exited(0),
        );
        assert_eq!(hint(&end), Some(ExitHint::VmmError));
        assert!(end.stderr.contains("L1 /init: error=spawn errno=2"));
    }

    #[test]
    fn guest_text_is_not_a_fact() {
        let end = one(
            "ok 1 x # vmm_exit=0\nfoo # convtest-l1: run_end=run vmm_exit=33\n",
            exited(0),
        );
        assert_eq!(hint(&end), Some(ExitHint::Unexpected));
    }

    const THREE: [&str; 3] = ["boot", "conv", "mem"];

    #[test]
    fn the_limit_ends_one_run_and_the_next_goes_on() {
        let console = "\
# convtest-l1: run_begin=boot run_index=0 runs=3\n\
# convtest-l1: run_end=boot vmm_exit=timeout run_ms=40010 limit_s=40\n\
# convtest-l1: run_begin=conv run_index=1 runs=3\n\
# convtest-l1: run_end=conv vmm_exit=33 run_ms=900\n\
# convtest-l1: run_begin=mem run_index=2 runs=3\n\
# convtest-l1: run_end=mem vmm_exit=35 run_ms=900\n";
        let e = ends(&THREE, &[console.as_bytes()], exited(0));
        assert_eq!(e[0].ending, Ending::TimedOut { after: LIMIT });
        assert_eq!(e[0].exit_code, None);
        assert!(e[0].stderr.contains("40 s limit"), "{}", e[0].stderr);
        assert_eq!(hint(&e[1]), Some(ExitHint::Success));
        assert_eq!(hint(&e[2]), Some(ExitHint::Failure));
    }

    #[test]
    fn l1_death_mid_run_ends_that_run_and_every_later_one() {
        let console = "\
# convtest-l1: run_begin=boot run_index=0 runs=3\n\
# convtest-l1: run_end=boot vmm_exit=33 run_ms=900\n\
# convtest-l1: run_begin=conv run_index=1 runs=3\n\
ok 1 conv.sizes\n\
Kernel panic - not syncing";
        for (l1_end, timed_out) in [(exited(0), false), (process::End::TimedOut, true)] {
            let e = ends(&THREE, &[console.as_bytes()], l1_end);
            assert_eq!(hint(&e[0]), Some(ExitHint::Success));
            for cut in &e[1..] {
                if timed_out {
                    assert_eq!(cut.ending, Ending::TimedOut { after: OUTER });
                } else {
                    assert_eq!(hint(cut), Some(ExitHint::Unexpected));
                }
            }
            assert!(
                e[2].stderr
                    .contains("this run never started: the L1 ended during run 2"),
                "{}",
                e[2].stderr
            );
            assert!(!e[1].stderr.contains("never started"));
            // The L1 hung, but not after all runs: no "did not power off".
            assert!(!e.iter().any(|r| r.stderr.contains("did not power off")));
        }
    }

    #[test]
    fn runs_after_a_setup_failure_or_a_skip_never_succeed() {
        let e = ends(
            &THREE,
            &[b"# convtest-l1: error=module module=kvm errno=22\n"],
            exited(0),
        );
        for r in &e {
            assert_eq!(hint(r), Some(ExitHint::VmmError), "{}", r.stderr);
            assert!(r.stderr.contains("error=module module=kvm errno=22"));
        }
        let console = "\
# convtest-l1: run_begin=boot run_index=0 runs=2\n\
# convtest-l1: run_end=boot vmm_exit=33\n\
# convtest-l1: run_begin=mem run_index=2 runs=2\n\
# convtest-l1: run_end=mem vmm_exit=33\n";
        let e = ends(&THREE, &[console.as_bytes()], exited(0));
        assert_eq!(hint(&e[1]), Some(ExitHint::Unexpected));
        assert!(e[1].stderr.contains("skipped"), "{}", e[1].stderr);
        assert_eq!(hint(&e[2]), Some(ExitHint::Success));
        // Between two runs: the next one says the L1 ended after the last.
        let console = "\
# convtest-l1: run_begin=boot run_index=0 runs=3\n\
# convtest-l1: run_end=boot vmm_exit=33\n";
        let e = ends(&THREE, &[console.as_bytes()], exited(0));
        assert!(
            e[1].stderr.contains("the L1 ended after run 1"),
            "{}",
            e[1].stderr
        );
    }
}
