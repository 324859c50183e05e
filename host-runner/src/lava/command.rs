//! The two subcommands: `lava-job` gathers its inputs and writes the job;
//! `lava-cases` runs on the board, in LAVA's test shell, and records the
//! run's results with LAVA's own `lava-test-case` / `lava-test-set`.

use super::cases::{self, Case, Report, VERDICT_CASE};
use super::inputs;
use super::job::{Artifact, JobSpec, QEMU};
use crate::backend::nested::L1Name;
use crate::backend::qemu::find_in_path;
use crate::cli::{LavaCasesArgs, LavaJobArgs};
use crate::error::Error;
use convtest_proto::arch::Arch;
use std::path::Path;
use std::process::Command;

/// The prompts of scripts/lava-local.sh's ramdisk, busybox's default
/// and a Debian root shell.
const DEFAULT_PROMPTS: [&str; 3] = ["board:.*# ", "/ # ", "root@[^ ]*# "];
/// Minutes the LAVA test action gets beyond convtest's own timeouts
/// (the kit's first start, the results).
const TEST_SLACK_MINUTES: u64 = 5;

pub fn job_main(args: &LavaJobArgs) -> i32 {
    match write_job(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("convtest: {e}");
            2
        }
    }
}

fn write_job(args: &LavaJobArgs) -> Result<(), Error> {
    let qemu = args.device_type == QEMU;
    if args.device_type.is_empty() || args.device_type.contains(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "--device-type {:?}: a LAVA device type name",
            args.device_type
        )));
    }
    if !qemu && args.dtb.is_none() {
        return Err(Error::Usage(format!(
            "--device-type {}: a board boots with its device tree: give --dtb PATH|URL (qemu needs none)",
            args.device_type
        )));
    }
    let out_dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io("creating", &out_dir, e))?;
    let ramdisk = match &args.ramdisk {
        Some(r) => inputs::url_of(r, "--ramdisk")?,
        None => inputs::file_url(&inputs::local_ramdisk()?)?,
    };
    let kit = inputs::kit_url(&args.kit, &out_dir)?;
    let dtb = args
        .dtb
        .as_deref()
        .map(|d| inputs::url_of(d, "--dtb"))
        .transpose()?;
    // Last: the default kernel may be a download; a bad kit is said first.
    let kernel = match &args.kernel {
        Some(k) => inputs::url_of(k, "--kernel")?,
        None => {
            let path =
                crate::backend::nested::debian_kernel(L1Name::Debian73, Arch::Aarch64, false)?;
            inputs::file_url(&path)?
        }
    };
    let mut run_args: Vec<String> = Vec::new();
    if let Some(t) = &args.tests {
        run_args.extend(["--tests".into(), t.clone()]);
    }
    if args.reboots > 0 {
        run_args.extend(["--reboots".into(), args.reboots.to_string()]);
    }
    run_args.extend(["--timeout".into(), args.timeout.to_string()]);
    run_args.extend(args.run_args.iter().cloned());
    let run_secs = args.timeout.saturating_mul(u64::from(args.reboots) + 1);
    let test_minutes = run_secs.div_ceil(60) + TEST_SLACK_MINUTES;
    let prompts = if args.prompts.is_empty() {
        DEFAULT_PROMPTS.iter().map(|p| p.to_string()).collect()
    } else {
        args.prompts.clone()
    };
    let spec = JobSpec {
        device_type: args.device_type.clone(),
        job_name: args
            .job_name
            .clone()
            .unwrap_or_else(|| format!("convtest pKVM on {}", args.device_type)),
        kernel: Artifact::new(&kernel),
        ramdisk: Artifact::new(&ramdisk),
        kit: Artifact::new(&kit),
        dtb: dtb.as_deref().map(Artifact::new),
        kernel_args: args.kernel_args.clone(),
        run_args,
        prompts,
        memory_mib: args.memory,
        cpus: args.cpus,
        test_minutes: u32::try_from(test_minutes).unwrap_or(u32::MAX),
        metadata: vec![("convtest.version".into(), env!("CARGO_PKG_VERSION").into())],
    };
    let yaml = spec.to_yaml();
    std::fs::write(&args.out, &yaml).map_err(|e| Error::io("writing", &args.out, e))?;
    println!(
        "convtest: wrote {} (device type {}, kernel {}, ramdisk {}, kit {})",
        args.out.display(),
        args.device_type,
        kernel,
        ramdisk,
        kit
    );
    if qemu {
        println!(
            "  run it here: sudo scripts/lava-local.sh, then lava-device --device-type qemu {0} > device.yaml \
             and lava-run --job-id 1 --output-dir out --device device.yaml {0} (docs/lava.md)",
            args.out.display()
        );
    }
    Ok(())
}

pub fn cases_main(args: &LavaCasesArgs) -> i32 {
    let report = std::fs::read_to_string(&args.json)
        .map_err(|e| format!("cannot read {}: {e}", args.json.display()))
        .and_then(|text| {
            serde_json::from_str::<Report>(&text)
                .map_err(|e| format!("{} is not a convtest JSON report: {e}", args.json.display()))
        });
    let (list, status) = match report {
        Ok(r) => (cases::cases(&r), 0),
        // The run left no report (it could not start, or died): the lab
        // still gets its verdict, as a fail naming why.
        Err(why) => {
            eprintln!("convtest: {why}");
            let case = Case {
                set: None,
                name: VERDICT_CASE.into(),
                result: "fail",
                measurement: None,
                note: why,
            };
            (vec![case], 1)
        }
    };
    if args.print {
        print!("{}", cases::script(&list));
        return status;
    }
    match record(&list) {
        Ok(()) => status,
        Err(e) => {
            eprintln!("convtest: {e}");
            2
        }
    }
}

/// Runs `lava-test-set` / `lava-test-case` for every case, saying what
/// convtest said about each SKIP and FAIL on the line before it.
fn record(list: &[Case]) -> Result<(), Error> {
    for tool in ["lava-test-case", "lava-test-set"] {
        if find_in_path(tool).is_none() {
            return Err(Error::MissingTool {
                tool: tool.into(),
                problem: format!(
                    "{tool} is not on PATH: `convtest lava-cases` records results inside a LAVA test shell;"
                ),
                install: "outside one, --print shows the calls it would make".into(),
            });
        }
    }
    let mut open: Option<&str> = None;
    for c in list {
        if c.set.as_deref() != open {
            if open.is_some() {
                call("lava-test-set", &["stop".to_string()])?;
            }
            if let Some(set) = &c.set {
                call("lava-test-set", &["start".to_string(), set.clone()])?;
            }
            open = c.set.as_deref();
        }
        if !c.note.is_empty() && c.result != "pass" {
            println!("convtest: {} {}: {}", c.name, c.result, c.note);
        }
        call("lava-test-case", &c.args())?;
    }
    if open.is_some() {
        call("lava-test-set", &["stop".to_string()])?;
    }
    Ok(())
}

fn call(tool: &str, args: &[String]) -> Result<(), Error> {
    let line = crate::error::shell_line(tool, args.iter().map(String::as_str));
    let status = Command::new(tool)
        .args(args)
        .status()
        .map_err(|source| Error::Spawn {
            call: line.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            call: line,
            code: status.code(),
            stderr: String::new(),
        })
    }
}
