//! `convtest bundle --check nested`: the kit run as a board would run it.
//! One nested L1 boot (arm64: pKVM; `--l1` picks Debian's kernel, e.g.
//! the 16 KiB one) gets the archive; /init unpacks it and runs each README
//! command in the kit directory (`convtest_proto::l1::kit`), and the JSON
//! each wrote comes back on the console. A command passes when its exit
//! status is the README's and, for a run, the kit's own judge said pass on
//! a lane that converted memory.

use super::build::Built;
use super::layout::{KitCommand, commands};
use crate::accel::Accel;
use crate::backend::BootSpec;
use crate::backend::nested::{self, InnerRun, Part};
use crate::cli::BundleArgs;
use crate::error::Error;
use crate::machine::{Boot, Machine};
use convtest_proto::arch::Arch;
use convtest_proto::l1::kit::{KitRun, read_file};
use convtest_proto::l1::marker::VmmExit;
use convtest_vmm::VmmOptions;
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// The L1's boot and power-off on top of the commands' limits.
const L1_ALLOWANCE: Duration = Duration::from_secs(120);

/// One command's outcome.
#[derive(Debug, Serialize)]
struct Checked {
    label: &'static str,
    command: String,
    expect_exit: i32,
    /// As /init reported it (`vmm_exit=`): a code, `timeout`, …
    exit: String,
    ok: bool,
    why: String,
    /// The JSON the kit wrote, when it wrote one.
    report: Option<Value>,
}

#[derive(Serialize)]
struct Report<'a> {
    verdict: &'static str,
    arch: &'static str,
    archive: String,
    /// The L1's facts (`kernel=`, `boot_ms=`, …).
    l1: Vec<(String, String)>,
    commands: &'a [Checked],
}

pub fn nested(
    args: &BundleArgs,
    arch: Arch,
    workspace: &Path,
    built: &Built,
) -> Result<i32, Error> {
    let cmds = commands(arch);
    let limit = Duration::from_secs(args.timeout);
    let runs: Vec<InnerRun> = cmds
        .iter()
        .map(|c| InnerRun {
            label: c.label.to_string(),
            vmm_args: KitRun {
                result: c.result.map(String::from),
                command: with_timeout(c, args.timeout),
            }
            .to_argv()
            .into_iter()
            .map(OsString::from)
            .collect(),
            limit,
        })
        .collect();
    let vmm = VmmOptions::default();
    let (boot, machine) = match arch {
        Arch::X86_64 => (Boot::Pvh, Machine::Microvm),
        Arch::Aarch64 => (Boot::Image, Machine::Virt),
    };
    let spec = BootSpec {
        arch,
        boot,
        machine,
        accel: Accel::Tcg,
        memory_mib: 256,
        vcpus: 1,
        payload: &built.guest,
        cmdline: "",
        reboots: 0,
        timeout: L1_ALLOWANCE,
        vmm: &vmm,
        l1: &args.l1,
        workspace,
        quiet: args.quiet,
        kit: Some(&args.out),
    };
    if !args.quiet {
        eprintln!(
            "convtest bundle: checking the kit in the nested {} L1: {} command(s)",
            arch.as_str(),
            runs.len()
        );
    }
    let quiet = args.quiet;
    let out = nested::run_many(&spec, &runs, &mut |part, line| {
        if !quiet && let Part::Run(_) = part {
            eprint!("  | {}", String::from_utf8_lossy(line));
        }
    })?;
    let checked: Vec<Checked> = cmds
        .iter()
        .zip(&out.runs)
        .map(|(c, r)| judge(c, &String::from_utf8_lossy(&r.console)))
        .collect();
    let l1 = facts(&String::from_utf8_lossy(&out.l1_console));
    let all_ok = checked.iter().all(|c| c.ok);
    for c in &checked {
        println!(
            "{}  {}  exit {} (want {}){}",
            if c.ok { "PASS" } else { "FAIL" },
            c.command,
            c.exit,
            c.expect_exit,
            if c.why.is_empty() {
                String::new()
            } else {
                format!(": {}", c.why)
            }
        );
    }
    let kernel = l1
        .iter()
        .find(|(k, _)| k == "kernel")
        .map_or("?", |(_, v)| v.as_str());
    println!(
        "{}  convtest bundle --check nested: {} of {} command(s) as the README says, in the L1 (kernel {kernel})",
        if all_ok { "PASS" } else { "FAIL" },
        checked.iter().filter(|c| c.ok).count(),
        checked.len()
    );
    if let Some(path) = &args.json {
        let report = Report {
            verdict: if all_ok { "pass" } else { "fail" },
            arch: arch.as_str(),
            archive: args.out.display().to_string(),
            l1,
            commands: &checked,
        };
        let text = serde_json::to_string_pretty(&report).map_err(|e| Error::UnusableBuild {
            what: format!("check report: {e}"),
        })?;
        std::fs::write(path, text).map_err(|e| Error::io("writing", path, e))?;
    }
    Ok(if all_ok { 0 } else { 1 })
}

/// The README's command, with the check's time limit for the guest.
fn with_timeout(c: &KitCommand, secs: u64) -> Vec<String> {
    let mut argv = c.argv.clone();
    if c.expect_exit == 0 {
        // Under the L1's limit: the kit's own timeout ends a hang first.
        argv.extend([
            "--timeout".into(),
            secs.saturating_sub(20).max(30).to_string(),
        ]);
    }
    argv
}

/// `# convtest-l1:` facts before the first run, in order.
fn facts(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|l| {
            l.trim_end_matches('\r')
                .strip_prefix(convtest_proto::wire::L1_PREFIX)
        })
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn exit_of(console: &str) -> VmmExit {
    facts(console)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "vmm_exit")
        .map_or(VmmExit::Other("none".into()), |(_, v)| VmmExit::parse(&v))
}

fn judge(c: &KitCommand, console: &str) -> Checked {
    let exit = exit_of(console);
    let mut why = Vec::new();
    if exit != VmmExit::Code(c.expect_exit) {
        why.push(format!("exited {exit}"));
    }
    let report = c.result.and_then(|name| match read_file(console, name) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                why.push(format!("{name} is not JSON: {e}"));
                None
            }
        },
        Err(e) => {
            why.push(format!("{name}: {e}"));
            None
        }
    });
    if let Some(j) = &report {
        why.extend(report_problems(j));
    }
    if c.expect_exit == 2 && !console.contains("board kit") {
        why.push("the refusal does not say it is a board kit's".into());
    }
    Checked {
        label: c.label,
        command: c.argv.join(" "),
        expect_exit: c.expect_exit,
        exit: exit.to_string(),
        ok: why.is_empty(),
        why: why.join("; "),
        report,
    }
}

/// What a kit's run report must show: its own verdict pass on the own VMM,
/// and memory really converted (a protected VM, or x86's MAP_GPA_RANGE).
fn report_problems(j: &Value) -> Vec<String> {
    let mut why = Vec::new();
    if j["verdict"] != "pass" {
        why.push(format!("the kit's verdict is {}", j["verdict"]));
    }
    if j["backend"] != "vmm" {
        why.push(format!("backend {}", j["backend"]));
    }
    if j["conversions"]["exercised"] != true {
        why.push("no conversion was exercised".into());
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_judged_by_its_exit_and_the_json_it_wrote() {
        let c = &commands(Arch::Aarch64)[0];
        let json = r#"{"verdict":"pass","backend":"vmm","conversions":{"exercised":true}}"#;
        let console = format!(
            "# convtest-l1: run_begin=run run_index=0 runs=3\n\
             # convtest-l1: file_begin=r.json bytes={}\n{json}\n# convtest-l1: file_end=r.json\n\
             # convtest-l1: run_end=run vmm_exit=0 run_ms=9000\n",
            json.len() + 1
        );
        let ok = judge(c, &console);
        assert!(ok.ok, "{}", ok.why);
        assert_eq!(
            ok.report.as_ref().map(|r| &r["verdict"]),
            Some(&Value::from("pass"))
        );
        let failed = judge(
            c,
            &console
                .replace("vmm_exit=0", "vmm_exit=1")
                .replace("\"pass\"", "\"fail\""),
        );
        assert!(!failed.ok);
        assert!(
            failed.why.contains("exited 1") && failed.why.contains("verdict is \"fail\""),
            "{}",
            failed.why
        );
        let lost = judge(c, "# convtest-l1: run_end=run vmm_exit=0 run_ms=1\n");
        assert!(lost.why.contains("no file_begin"), "{}", lost.why);
        let refusal = commands(Arch::Aarch64).pop().expect("needs-build");
        let said = judge(
            &refusal,
            "# convtest-l1-stderr: convtest: building the guest …: this convtest is a board kit's\n\
             # convtest-l1: run_end=needs-build vmm_exit=2 run_ms=5\n",
        );
        assert!(said.ok, "{}", said.why);
    }

    #[test]
    fn the_kits_own_timeout_strikes_before_the_l1_limit() {
        let c = &commands(Arch::Aarch64)[0];
        let argv = with_timeout(c, 300);
        assert_eq!(argv[argv.len() - 2..], ["--timeout", "280"]);
        let refusal = commands(Arch::Aarch64).pop().expect("needs-build");
        assert_eq!(with_timeout(&refusal, 300), refusal.argv);
    }
}
