//! Several inner runs out of one L1 boot: the L1 (6–18 s of TCG) boots once
//! and /init runs each `convtest vmm …` in turn, each with its own time
//! limit, on the same guest payload. The console is split per run on
//! /init's run_begin / run_end lines (split.rs) and every run gets its own
//! end (watch.rs).

use super::boot;
use super::collect::Collector;
use super::inner_run::{InnerRun, check, outer_timeout};
use super::split::{Event, Part, Splitter};
use super::watch::{self, L1End};
use crate::backend::process;
use crate::backend::run_end::RunEnd;
use crate::backend::spec::BootSpec;
use crate::error::Error;
use std::time::Duration;

#[derive(Debug)]
pub struct RunOutput {
    pub label: String,
    /// [`BatchOutput::l1_console`] followed by this run's lines, its
    /// run_begin line to its run_end line (or to where the L1 ended): a KTAP
    /// reader fed this sees the L1 facts and the run's `vmm_exit=`, exactly
    /// as from a one-run L1.
    pub console: Vec<u8>,
    /// How the run ended; never a success unless its run_end said so.
    pub end: RunEnd,
    /// /init's measure of the run, spawn to reap.
    pub run_ms: Option<u64>,
    /// When its run_begin / run_end line arrived, since QEMU started.
    pub began_at: Option<Duration>,
    pub ended_at: Option<Duration>,
}

/// How the outer QEMU (the whole L1) ended.
#[derive(Debug)]
pub struct L1Ended {
    /// QEMU's exit status; None if killed (`timed_out`, or a signal).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The timeout it ran under: [`outer_timeout`].
    pub timeout: Duration,
    /// QEMU's own stderr (also at the end of each run's stderr).
    pub stderr: String,
    /// From QEMU's spawn to its reaping.
    pub wall: Duration,
}

#[derive(Debug)]
pub struct BatchOutput {
    /// The L1 console before the first run_begin: its boot and /init's
    /// `# convtest-l1:` facts (kernel=, kvm=, boot_ms=, modules=) or why it
    /// gave up. Also at the head of every run's console.
    pub l1_console: Vec<u8>,
    /// One per [`InnerRun`], in order, whether or not it ran.
    pub runs: Vec<RunOutput>,
    /// L1 lines after the first run_begin outside any run (a failed
    /// power-off, a panic between runs); normally empty.
    pub l1_tail: Vec<u8>,
    /// The outer QEMU command line.
    pub command: String,
    pub l1_ended: L1Ended,
}

/// Boots one L1 for all of `runs` and returns each run's console and end.
///
/// `spec` is the one guest (payload, arch, L1 options); its `cmdline` and
/// `vmm` are not used (each run's argv carries them) and its `timeout` is
/// the L1's allowance: QEMU runs under [`outer_timeout`]`(spec.timeout,
/// runs)`. `progress` gets the console line by line as it arrives, with
/// the part it belongs to.
///
/// Errors are the runner's (bad run list, L1 assets, QEMU not starting);
/// whatever happens inside the L1 is in the runs' ends.
pub fn run_many(
    spec: &BootSpec<'_>,
    runs: &[InnerRun],
    progress: &mut dyn FnMut(Part, &[u8]),
) -> Result<BatchOutput, Error> {
    check(runs)?;
    let timeout = outer_timeout(spec.timeout, runs);
    let mut split = Splitter::new(runs.iter().map(|r| r.label.clone()).collect());
    let mut seen = Collector::new(runs.len(), true);
    let mut sink = |ev: Event<'_>| {
        seen.event(&ev);
        if let Event::Line(part, bytes) | Event::Rest(part, bytes) = ev {
            progress(part, bytes);
        }
    };
    let booted = boot::boot(spec, runs, timeout, &mut |bytes: &[u8]| {
        split.feed(bytes, &mut sink);
        Vec::new()
    })?;
    split.finish(&mut sink);
    Ok(gather(spec, runs, timeout, booted, seen))
}

/// The one-run case, for `Nested::run`: the console goes to `console`
/// unchanged as it arrives; the run's end comes back.
pub fn run_one(
    spec: &BootSpec<'_>,
    run: InnerRun,
    timeout: Duration,
    console: &mut dyn FnMut(&[u8]) -> Vec<u8>,
) -> Result<RunEnd, Error> {
    let runs = [run];
    check(&runs)?;
    let mut split = Splitter::new(vec![runs[0].label.clone()]);
    let mut seen = Collector::new(1, false);
    let booted = boot::boot(spec, &runs, timeout, &mut |bytes: &[u8]| {
        split.feed(bytes, &mut |ev| seen.event(&ev));
        console(bytes)
    })?;
    split.finish(&mut |ev| seen.event(&ev));
    let mut out = gather(spec, &runs, timeout, booted, seen);
    // gather returns one output per run.
    Ok(out.runs.remove(0).end)
}

fn gather(
    spec: &BootSpec<'_>,
    runs: &[InnerRun],
    timeout: Duration,
    booted: boot::Booted,
    seen: Collector,
) -> BatchOutput {
    let facts: Vec<_> = seen.runs.iter().map(|r| &r.facts).collect();
    let limits: Vec<Duration> = runs.iter().map(|r| r.limit).collect();
    let ends = watch::endings(
        &facts,
        &limits,
        &L1End {
            arch: spec.arch,
            finished: &booted.finished,
            timeout,
            command: &booted.command,
            before: &seen.before,
            after: &seen.after,
        },
    );
    let outputs = runs
        .iter()
        .zip(seen.runs)
        .zip(ends)
        .map(|((run, r), end)| RunOutput {
            label: run.label.clone(),
            console: [seen.preamble.as_slice(), &r.console].concat(),
            end,
            run_ms: r.facts.run_ms,
            began_at: r
                .began_at
                .map(|t| t.saturating_duration_since(booted.spawned)),
            ended_at: r
                .ended_at
                .map(|t| t.saturating_duration_since(booted.spawned)),
        })
        .collect();
    let (exit_code, timed_out) = match booted.finished.end {
        process::End::Exited(status) => (status.code(), false),
        process::End::TimedOut => (None, true),
    };
    BatchOutput {
        l1_console: seen.preamble,
        runs: outputs,
        l1_tail: seen.tail,
        command: booted.command,
        l1_ended: L1Ended {
            exit_code,
            timed_out,
            timeout,
            stderr: booted.finished.stderr,
            wall: booted.wall,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Boot, Machine};
    use crate::verdict::{Ending, ExitHint};
    use convtest_proto::arch::Arch;
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::ExitStatus;
    use std::time::Instant;

    fn run(label: &str, limit_ms: u64) -> InnerRun {
        InnerRun {
            label: label.into(),
            vmm_args: vec!["vmm".into()],
            limit: Duration::from_millis(limit_ms),
        }
    }

    #[test]
    fn each_run_gets_the_preamble_and_only_its_own_lines() {
        let runs = [run("boot", 5000), run("conv", 5000), run("mem", 5000)];
        let console = "\
# convtest-l1: kernel=7.3.4 kvm=stock boot_ms=3000\n\
# convtest-l1: run_begin=boot run_index=0 runs=3\n\
ok 1 boot.plan\n\
# convtest-l1: run_end=boot vmm_exit=33 run_ms=900\n\
# convtest-l1: run_begin=conv run_index=1 runs=3\n\
not ok 1 conv.sizes\n\
# convtest-l1: run_end=conv vmm_exit=35 run_ms=800\n\
stray\n\
# convtest-l1: run_begin=mem run_index=2 runs=3\n\
ok 1 mem.x";
        let mut split = Splitter::new(runs.iter().map(|r| r.label.clone()).collect());
        let mut seen = Collector::new(runs.len(), true);
        let mut progress = Vec::new();
        for chunk in console.as_bytes().chunks(5) {
            split.feed(chunk, &mut |ev| {
                seen.event(&ev);
                if let Event::Line(p, b) = ev {
                    progress.push((p, b.to_vec()));
                }
            });
        }
        split.finish(&mut |ev| seen.event(&ev));
        let spec = crate::backend::spec::test_spec(
            Arch::X86_64,
            Boot::Pvh,
            Machine::Microvm,
            Path::new("/payload"),
        );
        let booted = boot::Booted {
            finished: process::Finished {
                end: process::End::Exited(ExitStatus::from_raw(0)),
                stderr: String::new(),
            },
            command: "qemu …".into(),
            spawned: Instant::now(),
            wall: Duration::from_secs(9),
        };
        let out = gather(&spec, &runs, Duration::from_secs(60), booted, seen);
        let preamble = "# convtest-l1: kernel=7.3.4 kvm=stock boot_ms=3000\n";
        assert_eq!(String::from_utf8_lossy(&out.l1_console), preamble);
        let text = |i: usize| String::from_utf8_lossy(&out.runs[i].console).into_owned();
        assert_eq!(
            text(0),
            format!(
                "{preamble}# convtest-l1: run_begin=boot run_index=0 runs=3\nok 1 boot.plan\n\
                 # convtest-l1: run_end=boot vmm_exit=33 run_ms=900\n"
            )
        );
        assert!(text(1).starts_with(preamble) && text(1).contains("not ok 1 conv.sizes\n"));
        assert!(!text(1).contains("boot.plan") && !text(1).contains("stray"));
        assert!(text(2).ends_with("run_index=2 runs=3\nok 1 mem.x"));
        assert_eq!(String::from_utf8_lossy(&out.l1_tail), "stray\n");
        assert_eq!(out.runs[0].run_ms, Some(900));
        assert_eq!(
            out.runs
                .iter()
                .map(|r| r.label.as_str())
                .collect::<Vec<_>>(),
            ["boot", "conv", "mem"]
        );
        assert!(matches!(
            out.runs[0].end.ending,
            Ending::Exited {
                hint: ExitHint::Success,
                ..
            }
        ));
        assert!(matches!(
            out.runs[2].end.ending,
            Ending::Exited {
                hint: ExitHint::Unexpected,
                ..
            }
        ));
        assert!(out.runs[2].began_at.is_some() && out.runs[2].ended_at.is_none());
        assert_eq!(
            (out.l1_ended.exit_code, out.l1_ended.timed_out),
            (Some(0), false)
        );
        // Progress saw every line, whole, in its part.
        let lines: usize = console.lines().count();
        assert_eq!(
            progress.len(),
            lines - 1,
            "the last partial line comes at finish"
        );
        assert!(
            progress
                .iter()
                .all(|(_, b)| b.ends_with(b"\n") && b.iter().filter(|&&c| c == b'\n').count() == 1)
        );
        assert_eq!(progress[0].0, Part::L1);
        assert_eq!(progress[5].0, Part::Run(1));
    }
}
