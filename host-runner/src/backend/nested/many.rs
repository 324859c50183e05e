//! Several inner runs out of one L1 boot: the L1 (6–18 s of TCG) boots once
//! and /init runs each `convtest vmm …` in turn, each with its own time
//! limit, on the same guest payload. The console is split per run on
//! /init's run_begin / run_end lines (split.rs) and every run gets its own
//! end (watch.rs).

use super::boot;
use super::collect::Collector;
use super::split::{Event, Part, Splitter};
use super::watch::{self, L1End};
use crate::backend::{BootSpec, RunEnd, process};
use crate::error::Error;
use crate::l1init::runs::valid_label;
use std::collections::HashSet;
use std::ffi::OsString;
use std::time::Duration;

/// Added to each run's limit in the outer timeout: /init's spawning,
/// killing and reaping between the limits, under TCG.
pub const RUN_SLACK: Duration = Duration::from_secs(2);

/// One inner `convtest vmm` run.
#[derive(Clone, Debug)]
pub struct InnerRun {
    /// Names the run on its run_begin / run_end lines: 1–64 of
    /// `A-Z a-z 0-9 . _ -`, unique in the list.
    pub label: String,
    /// The `convtest vmm …` argv (first element `vmm`), e.g. from
    /// `backend::vmm::vmm_args` with `l1init::PAYLOAD` as the kernel.
    pub vmm_args: Vec<OsString>,
    /// /init kills the inner VMM this long after starting it; whole
    /// seconds, rounded up.
    pub limit: Duration,
}

#[derive(Debug)]
pub struct RunOutput {
    pub label: String,
    /// [`ManyOutput::l1_console`] followed by this run's lines, its
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
pub struct ManyOutput {
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

/// The outer QEMU's timeout for `runs`: `l1_allowance` (the L1's boot,
/// module loading and power-off) plus each run's limit in whole seconds
/// plus [`RUN_SLACK`]. Runs are sequential, so no run's limit can push the
/// L1 past it unless the L1 itself is slower than its allowance.
pub fn outer_timeout(l1_allowance: Duration, runs: &[InnerRun]) -> Duration {
    runs.iter().fold(l1_allowance, |sum, r| {
        sum.saturating_add(Duration::from_secs(limit_secs(r.limit)))
            .saturating_add(RUN_SLACK)
    })
}

/// The limit /init keeps: whole seconds, rounded up, at least one.
pub fn limit_secs(limit: Duration) -> u64 {
    let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    secs.max(1)
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
) -> Result<ManyOutput, Error> {
    check(runs)?;
    let timeout = outer_timeout(spec.timeout, runs);
    let mut split = Splitter::new(runs.iter().map(|r| r.label.clone()).collect());
    let mut seen = Collector::new(runs.len(), true);
    let mut sink = |ev: Event<'_>| {
        seen.event(&ev);
        if let Event::Line(part, bytes) = ev {
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

/// Refuses a run list /init could not carry out as asked.
pub fn check(runs: &[InnerRun]) -> Result<(), Error> {
    if runs.is_empty() {
        return Err(Error::Usage("an L1 needs at least one inner run".into()));
    }
    let mut labels = HashSet::new();
    for r in runs {
        if !valid_label(&r.label) {
            return Err(Error::Usage(format!(
                "inner run label {:?}: use 1 to 64 of A-Z a-z 0-9 . _ -",
                r.label
            )));
        }
        if !labels.insert(r.label.as_str()) {
            return Err(Error::Usage(format!(
                "inner run label {:?} is used twice; each run's console is found by its label",
                r.label
            )));
        }
        if r.limit.is_zero() {
            return Err(Error::Usage(format!(
                "inner run {:?} has a zero time limit",
                r.label
            )));
        }
    }
    Ok(())
}

fn gather(
    spec: &BootSpec<'_>,
    runs: &[InnerRun],
    timeout: Duration,
    booted: boot::Booted,
    seen: Collector,
) -> ManyOutput {
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
    ManyOutput {
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
    fn the_outer_timeout_covers_the_l1_and_every_limit() {
        let runs = [run("a", 30_000), run("b", 1), run("c", 59_500)];
        assert_eq!(limit_secs(Duration::from_millis(1)), 1);
        assert_eq!(limit_secs(Duration::from_secs(60)), 60);
        assert_eq!(
            outer_timeout(Duration::from_secs(120), &runs),
            Duration::from_secs(120 + 30 + 1 + 60) + 3 * RUN_SLACK
        );
        assert_eq!(
            outer_timeout(Duration::MAX, &runs),
            Duration::MAX,
            "saturates"
        );
    }

    #[test]
    fn run_lists_the_l1_cannot_carry_out_are_refused() {
        assert!(check(&[run("clean", 1000), run("vmm-ignore", 1000)]).is_ok());
        for bad in [
            vec![],
            vec![run("a b", 1000)],
            vec![run("", 1000)],
            vec![run("same", 1000), run("same", 1000)],
            vec![run("zero", 0)],
        ] {
            assert!(
                matches!(check(&bad), Err(Error::Usage(_))),
                "{:?}",
                bad.iter().map(|r| &r.label).collect::<Vec<_>>()
            );
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
        let spec = crate::backend::test_spec(
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
