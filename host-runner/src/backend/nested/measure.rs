//! The cost of several inner runs in one L1, measured end to end (ignored:
//! each boots a real L1 under TCG, ~30 s plus the runner build):
//!
//! ```text
//! cargo test -p convtest --lib measure_three_runs -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Three copies of the default inner run with plans for `boot.*`, `conv.*`
//! and `mem.*`, out of one L1; prints the L1 boot, each run's wall time and
//! the total, and asserts every run passed. And one L1 whose first run hangs
//! past its limit and whose second cannot start its VMM: the third still
//! runs and passes.

use super::{InnerRun, Part, run_many};
use crate::accel::Host;
use crate::backend::BootSpec;
use crate::cli::{Cli, Command};
use crate::config::{self, RunConfig};
use crate::l1init;
use crate::verdict::{Ending, ExitHint};
use clap::Parser;
use std::path::Path;
use std::time::{Duration, Instant};

const GLOBS: [&str; 3] = ["boot.*", "conv.*", "mem.*"];
/// Generous: others share the machine's two cores.
const LIMIT: Duration = Duration::from_secs(120);
const L1_ALLOWANCE: Duration = Duration::from_secs(180);

/// The run configuration `convtest run` would use for these options.
fn config(arch: &str, tests: &str, extra: &[&str]) -> RunConfig {
    let mut argv = vec![
        "convtest",
        "run",
        "--backend",
        "nested",
        "--arch",
        arch,
        "--tests",
        tests,
    ];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).expect("arguments");
    let Command::Run(args) = cli.command else {
        panic!("not a run");
    };
    config::resolve(&args, &Host::probe()).expect("config")
}

/// The guest, built once: it takes its plan on the command line, so one
/// payload serves every run.
fn payload(c: &RunConfig, scratch: &Path) -> std::path::PathBuf {
    crate::guest_build::prepare(&crate::guest_build::Request {
        workspace: &c.workspace,
        arch: c.arch,
        boot: c.boot,
        kernel: None,
        plan: &c.plan,
        work_dir: scratch,
        quiet: false,
    })
    .expect("guest")
}

fn inner(label: &str, c: &RunConfig, limit: Duration) -> InnerRun {
    InnerRun {
        label: label.into(),
        vmm_args: crate::backend::vmm::vmm_args(
            c.arch,
            Path::new(l1init::PAYLOAD),
            &c.plan,
            c.memory_mib,
            &c.vmm,
        ),
        limit,
    }
}

fn spec<'a>(first: &'a RunConfig, payload: &'a Path) -> BootSpec<'a> {
    BootSpec {
        arch: first.arch,
        boot: first.boot,
        machine: first.machine,
        accel: first.accel.accel,
        memory_mib: first.memory_mib,
        payload,
        cmdline: &first.plan,
        reboots: first.planned_reboots,
        timeout: L1_ALLOWANCE,
        vmm: &first.vmm,
        l1: &first.l1,
        workspace: &first.workspace,
        quiet: false,
    }
}

fn measure(arch: &str) {
    let configs: Vec<RunConfig> = GLOBS.iter().map(|g| config(arch, g, &[])).collect();
    let first = &configs[0];
    let scratch = tempfile::tempdir().expect("scratch");
    let payload = payload(first, scratch.path());
    let runs: Vec<InnerRun> = GLOBS
        .iter()
        .zip(&configs)
        .map(|(glob, c)| inner(glob.trim_end_matches(".*"), c, LIMIT))
        .collect();
    let spec = spec(first, &payload);
    let started = Instant::now();
    let mut lines = [0usize; 3];
    let out = run_many(&spec, &runs, &mut |part, _| {
        if let Part::Run(i) = part {
            lines[i] += 1;
        }
    })
    .expect("run_many");
    let total = started.elapsed();
    let boot_ms = String::from_utf8_lossy(&out.l1_console)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("boot_ms=").map(String::from))
        .unwrap_or_default();
    let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64()));
    println!(
        "{arch}: L1 prep+boot+runs {:.2} s (QEMU wall {:.2} s); L1 kernel boot_ms={boot_ms}; \
         first run_begin at {} s after QEMU start",
        total.as_secs_f64(),
        out.l1_ended.wall.as_secs_f64(),
        secs(out.runs[0].began_at)
    );
    for (r, n) in out.runs.iter().zip(lines) {
        let wall = match (r.began_at, r.ended_at) {
            (Some(b), Some(e)) => Some(e - b),
            _ => None,
        };
        println!(
            "  {:<5} run_ms={:?} host wall {} s, {n} lines, {:?}",
            r.label,
            r.run_ms,
            secs(wall),
            r.end.ending
        );
    }
    println!(
        "  power-off: last run_end to QEMU exit {} s",
        secs(
            out.runs[2]
                .ended_at
                .map(|e| out.l1_ended.wall.saturating_sub(e))
        )
    );
    for r in &out.runs {
        assert!(
            matches!(
                r.end.ending,
                Ending::Exited {
                    hint: ExitHint::Success,
                    ..
                }
            ),
            "{}: {:?}\n{}\n{}",
            r.label,
            r.end.ending,
            r.end.stderr,
            String::from_utf8_lossy(&r.console)
        );
    }
}

#[test]
#[ignore = "boots a real L1 under TCG"]
fn measure_three_runs_x86_64() {
    measure("x86_64");
}

#[test]
#[ignore = "boots a real L1 under TCG"]
fn measure_three_runs_aarch64() {
    measure("aarch64");
}

#[test]
#[ignore = "boots a real L1 under TCG"]
fn a_hung_run_and_a_broken_run_do_not_stop_the_next_x86_64() {
    let mut hang = config("x86_64", "boot.*", &["--inject", "hang"]);
    // The VMM's own hang watchdog must not end it first: /init's limit does.
    hang.vmm.vcpu_watchdog = 600;
    let clean = config("x86_64", "boot.*", &[]);
    let scratch = tempfile::tempdir().expect("scratch");
    let payload = payload(&clean, scratch.path());
    let limit = Duration::from_secs(5);
    let runs = [
        inner("hang", &hang, limit),
        InnerRun {
            label: "bad-args".into(),
            vmm_args: vec!["vmm".into(), "--no-such-option".into()],
            limit,
        },
        inner("clean", &clean, LIMIT),
    ];
    let out = run_many(&spec(&clean, &payload), &runs, &mut |_, _| {}).expect("run_many");
    for r in &out.runs {
        println!(
            "{}: run_ms={:?} {:?}\n{}",
            r.label, r.run_ms, r.end.ending, r.end.stderr
        );
    }
    assert_eq!(out.runs[0].end.ending, Ending::TimedOut { after: limit });
    let hung = String::from_utf8_lossy(&out.runs[0].console).into_owned();
    assert!(
        hung.contains("vmm_exit=timeout") && hung.contains("limit_s=5"),
        "{hung}"
    );
    assert!(!matches!(
        out.runs[1].end.ending,
        Ending::Exited {
            hint: ExitHint::Success,
            ..
        }
    ));
    assert!(
        out.runs[1].end.stderr.contains("no-such-option"),
        "{}",
        out.runs[1].end.stderr
    );
    assert!(matches!(
        out.runs[2].end.ending,
        Ending::Exited {
            hint: ExitHint::Success,
            ..
        }
    ));
}
