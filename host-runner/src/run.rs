//! `convtest run`: resolve the options, check the host, build the payload,
//! boot it, print results as they arrive, judge, write the reports.
//! Returns the process exit status (0 pass, 1 fail, 2 could not run).

use crate::accel::Host;
use crate::backend::kind::BackendKind;
use crate::backend::{self, BootSpec};
use crate::boot_progress::BootProgress;
use crate::cli::RunArgs;
use crate::config::{self, RunConfig};
use crate::error::Error;
use crate::guest_build;
use crate::ktap::{Event, Log, Parser};
use crate::report::{self, RunRecord, Timing};
use crate::verdict::{self, FinishedRun, Judgement, Verdict};
use std::io::Write;
use std::time::{Duration, Instant};

pub fn run(args: &RunArgs) -> i32 {
    let config = match config::resolve(args, &Host::probe()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("convtest: {e}");
            return 2;
        }
    };
    if !config.quiet {
        eprintln!(
            "convtest: {} --boot {} on {} -M {}, accel {} ({})",
            config.arch.as_str(),
            config.boot.as_str(),
            config.backend.as_str(),
            machine_name(&config),
            config.accel.accel.as_str(),
            config.accel.why
        );
        eprintln!(
            "convtest: backend {}: {}",
            config.backend.as_str(),
            config.backend_why
        );
        eprintln!("convtest: plan: {}", config.plan);
    }
    let record = execute(&config);
    if let Verdict::Error = record.judgement.verdict {
        eprintln!("convtest: error: {}", record.judgement.reason);
    }
    let written = write_reports(&config, &record);
    if config.quiet {
        println!("{}", report::summary::verdict_line(&record));
    } else {
        println!();
        print!("{}", report::summary::table(&record));
    }
    match written {
        Ok(()) => record.judgement.verdict.exit_code(),
        Err(e) => {
            eprintln!("convtest: {e}");
            2
        }
    }
}

/// The machine that ran the guest: QEMU's model, or convtest's own VMM
/// (directly or inside the nested lane's L1).
fn machine_name(config: &RunConfig) -> &'static str {
    match config.backend {
        BackendKind::Qemu => config.machine.as_str(),
        BackendKind::Vmm => "convtest-vmm",
        BackendKind::Nested => "convtest-vmm-in-l1",
    }
}

/// Everything from preflight to verdict; errors become an `error` verdict so
/// the reports are still written.
pub fn execute(config: &RunConfig) -> RunRecord {
    let mut record = RunRecord {
        arch: config.arch.as_str().into(),
        backend: config.backend.as_str().into(),
        accel: config.accel.accel.as_str().into(),
        boot: config.boot.as_str().into(),
        machine: machine_name(config).into(),
        plan: config.plan.clone(),
        judgement: Judgement {
            verdict: Verdict::Error,
            reason: String::new(),
        },
        log: Log::default(),
        lane: String::new(),
        timing: Timing::default(),
        command: None,
        exit_code: None,
    };
    if let Err(e) = boot_and_judge(config, &mut record) {
        record.judgement = Judgement {
            verdict: Verdict::Error,
            reason: e.to_string(),
        };
    }
    record
}

fn boot_and_judge(config: &RunConfig, record: &mut RunRecord) -> Result<(), Error> {
    let backend = match config.tee {
        Some(tee) => backend::select::for_tee(tee, config.tee_firmware.clone(), config.quiet),
        None => backend::select::for_kind(config.backend),
    };
    backend.preflight(config.arch, config.boot)?;
    if config.backend == BackendKind::Nested {
        // Before the guest build: a bad --l1-kernel, or a pinned Debian
        // build gone with nothing of its series to stand in, answers in a
        // second.
        backend::nested::check_l1_options(config.arch, &config.l1)?;
        backend::nested::check_l1_build(config.arch, &config.l1)?;
    }

    let scratch = crate::cleanup::Scratch::new("convtest-run-")?;
    let build_start = Instant::now();
    let payload = guest_build::prepare(&guest_build::Request {
        workspace: &config.workspace,
        arch: config.arch,
        boot: config.boot,
        kernel: config.kernel.as_deref(),
        plan: &config.plan,
        work_dir: scratch.path(),
        quiet: config.quiet,
        silent_loader: config.tee.is_some(),
    })?;
    record.timing.build = build_start.elapsed();

    let spec = BootSpec {
        arch: config.arch,
        boot: config.boot,
        machine: config.machine,
        accel: config.accel.accel,
        memory_mib: config.memory_mib,
        vcpus: config.vcpus,
        payload: &payload,
        cmdline: &config.plan,
        reboots: config.planned_reboots,
        timeout: config.timeout,
        vmm: &config.vmm,
        l1: &config.l1,
        workspace: &config.workspace,
        quiet: config.quiet,
        kit: None,
    };
    let mut parser = Parser::new();
    let mut first_line: Option<Duration> = None;
    let quiet = config.quiet;
    let start = Instant::now();
    let mut boots = BootProgress::new(config.planned_reboots, quiet);
    let end = backend.run(&spec, &mut |bytes: &[u8]| {
        let events = parser.feed(bytes);
        show(&events, quiet, &mut first_line, start, &mut boots);
        Vec::new()
    });
    record.timing.total = start.elapsed();
    let (log, events) = parser.finish();
    show(&events, quiet, &mut first_line, start, &mut boots);
    boots.finish();
    record.timing.first_line = first_line;
    record.log = log;
    record.lane = lane_name(config, &record.log);
    for b in &mut record.log.bench {
        b.lane = Some(record.lane.clone());
    }
    let end = end?;
    record.command = Some(end.command.clone());
    record.exit_code = end.exit_code;
    record.judgement = verdict::judge(&FinishedRun {
        log: &record.log,
        ending: &end.ending,
        plan: &config.plan,
        vmm_stderr: &end.stderr,
    });
    // The own VMM's watchdog ends a wedged vCPU itself: say so, not just
    // "exit code 3".
    if let Some((_, hang)) = record.log.vmm.iter().find(|(k, _)| k == "hang")
        && record.judgement.verdict == Verdict::Fail
    {
        record.judgement.reason = format!("VMM watchdog: {hang}; {}", record.judgement.reason);
    }
    Ok(())
}

/// The lane's name, as `convtest mutants` and `convtest bench` spell them:
/// `qemu-tcg-x86`, `vmm-x86`, `nested-x86-swprot`, `nested-arm64-pkvm`,
/// `nested-x86-debian-6.1`, …
pub fn lane_name(config: &RunConfig, log: &crate::ktap::Log) -> String {
    use convtest_proto::arch::Arch;
    let arch = match config.arch {
        Arch::X86_64 => "x86",
        Arch::Aarch64 => "arm64",
    };
    let fact = |k: &str| log.vmm.iter().any(|(key, v)| key == "vm_type" && v == k);
    let layout = match config.vmm.layout {
        convtest_vmm::config::Layout::Convtest => String::new(),
        other => format!("-{}", convtest_proto::keyword::Keyword::as_str(other)),
    };
    let name = match config.backend {
        BackendKind::Qemu => {
            let mut name = format!("qemu-{}-{arch}", config.accel.accel.as_str());
            if let Some(tee) = config.tee {
                name.push('-');
                name.push_str(tee.as_str());
            }
            name
        }
        BackendKind::Vmm => format!("vmm-{arch}"),
        BackendKind::Nested => {
            let mut name = format!("nested-{arch}");
            if config.l1.l1_swprot {
                name.push_str("-swprot");
            }
            if fact("protected") {
                name.push_str("-pkvm");
            }
            if let Some(k) = config
                .l1
                .l1_name
                .as_ref()
                .map(|p| p.name)
                .filter(|k| *k != crate::backend::nested::L1Name::default())
            {
                use clap::ValueEnum;
                if let Some(v) = k.to_possible_value() {
                    name.push('-');
                    name.push_str(v.get_name());
                }
            }
            if config.l1.l1_kernel.is_some() {
                name.push_str("-own-l1");
            }
            name
        }
    };
    name + &layout
}

/// Prints what the guest just reported, one line per test.
fn show(
    events: &[Event],
    quiet: bool,
    first_line: &mut Option<Duration>,
    start: Instant,
    boots: &mut BootProgress,
) {
    let mut out = std::io::stdout().lock();
    for ev in events {
        match ev {
            Event::Version => {
                first_line.get_or_insert_with(|| start.elapsed());
                boots.boot_started(&mut out);
            }
            Event::Case(t)
                if !boots.shows_case(t.result == convtest_proto::ktap::Outcome::Fail) => {}
            _ if quiet => {}
            Event::Header(_) if boots.soak() => {}
            Event::Header(kv) => {
                let words: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(out, "guest: {}", words.join(" "));
            }
            Event::Case(t) => {
                let _ = writeln!(out, "{}", report::summary::test_line(t));
            }
            Event::Crash(line) => {
                let _ = writeln!(out, "  CRASH {line}");
            }
            Event::Suite(_) | Event::Done(_) | Event::Bench(_) => {}
        }
    }
    let _ = out.flush();
}

fn write_reports(config: &RunConfig, record: &RunRecord) -> Result<(), Error> {
    if let Some(path) = &config.json {
        report::write_file(path, report::json::render(record).as_bytes())?;
    }
    if let Some(path) = &config.junit {
        let xml = report::junit::render(record)
            .map_err(|e| Error::io("rendering JUnit for", path, std::io::Error::other(e)))?;
        report::write_file(path, xml.as_bytes())?;
    }
    if let Some(path) = &config.ktap {
        report::write_file(path, report::ktap::render(record).as_bytes())?;
    }
    if let Some(path) = &config.kcidb.kcidb {
        let mut doc = report::kcidb::Document::new(&config.kcidb.kcidb_origin, "run");
        doc.add_run(record, &record.lane);
        report::write_file(path, doc.to_json().as_bytes())?;
    }
    Ok(())
}
