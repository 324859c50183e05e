//! Boots every supported lane under QEMU TCG through the real `convtest`
//! binary and checks its exit status and JSON report, plus the crash and
//! hang verdicts. Each `convtest` builds what it needs (nested cargo with its
//! own target dirs); parallel tests share those builds through cargo's lock,
//! so the slow BIOS/UEFI image builder compiles once per `cargo test`.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    json: Value,
}

fn convtest(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("report.json");
    let out: Output = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .arg("run")
        .args(args)
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("convtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = read_json(&json_path, &stdout, &stderr);
    Run {
        code: out.status.code(),
        stdout,
        stderr,
        json,
    }
}

fn read_json(path: &Path, stdout: &str, stderr: &str) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no JSON report ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

fn tests_with(json: &Value, result: &str) -> Vec<String> {
    let tests = json["tests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    tests
        .iter()
        .filter(|t| t["result"] == result)
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect()
}

/// What every lane must show: a clean pass with the core tests passing and
/// every conversion test skipped with the probe's reason.
fn assert_lane_passes(args: &[&str], arch: &str, boot: &str, machine: &str) -> Run {
    let run = convtest(args);
    let context = format!(
        "convtest run {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    let j = &run.json;
    assert_eq!(run.code, Some(0), "{context}");
    assert_eq!(j["verdict"], "pass", "{context}");
    assert_eq!(j["reason"], "", "{context}");
    assert_eq!(
        (&j["arch"], &j["boot"], &j["machine"]),
        (
            &Value::from(arch),
            &Value::from(boot),
            &Value::from(machine)
        )
    );
    assert_eq!(
        (&j["backend"], &j["accel"]),
        (&Value::from("qemu"), &Value::from("tcg")),
        "{context}"
    );
    assert_eq!(j["guest"]["converter"], "none", "{context}");
    assert!(
        j["guest"]["hypervisor"].is_string() && j["guest"]["granule"].is_u64(),
        "{context}"
    );
    let passed = tests_with(j, "pass");
    assert!(
        passed.len() >= 6,
        "only {} passing: {passed:?}\n{context}",
        passed.len()
    );
    for name in [
        "boot.ram_map",
        "heap.stress",
        "mem.walking_ones",
        "exc.trap_roundtrip",
        "clock.monotonic",
    ] {
        assert!(
            passed.iter().any(|p| p == name),
            "{name} did not pass\n{context}"
        );
    }
    assert!(tests_with(j, "fail").is_empty(), "{context}");
    let tests = j["tests"].as_array().expect("tests[]");
    let conv: Vec<&Value> = tests
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("conv.")))
        .collect();
    assert!(!conv.is_empty(), "no conv.* tests reported\n{context}");
    for t in conv {
        assert_eq!(t["result"], "skip", "{t}\n{context}");
        assert!(
            t["reason"].as_str().is_some_and(|r| !r.trim().is_empty()),
            "skip without reason: {t}"
        );
    }
    assert!(j["timing"]["first_line_ms"].is_u64(), "{context}");
    assert!(
        j["qemu"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("-accel tcg")),
        "{context}"
    );
    run
}

#[test]
fn x86_pvh_microvm() {
    let run = assert_lane_passes(
        &["--arch", "x86_64", "--accel", "tcg"],
        "x86_64",
        "pvh",
        "microvm",
    );
    assert_eq!(run.json["guest"]["entry"], "pvh");
    assert_eq!(run.json["exit_code"], 33, "isa-debug-exit success");
    // Recorded, not asserted: speed targets do not belong in a unit test.
    println!(
        "x86 pvh microvm: first KTAP line after {} ms, run {} ms",
        run.json["timing"]["first_line_ms"], run.json["timing"]["total_ms"]
    );
}

#[test]
fn x86_pvh_pc() {
    assert_lane_passes(
        &["--arch", "x86_64", "--accel", "tcg", "--machine", "pc"],
        "x86_64",
        "pvh",
        "pc",
    );
}

#[test]
fn x86_bios_image() {
    let run = assert_lane_passes(
        &["--arch", "x86_64", "--accel", "tcg", "--boot", "bios"],
        "x86_64",
        "bios",
        "pc",
    );
    assert!(
        run.json["qemu"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("bios.img"))
    );
}

#[test]
fn x86_uefi_image() {
    let run = assert_lane_passes(
        &["--arch", "x86_64", "--accel", "tcg", "--boot", "uefi"],
        "x86_64",
        "uefi",
        "pc",
    );
    assert!(
        run.json["qemu"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("OVMF_CODE_4M.fd"))
    );
}

#[test]
fn aarch64_virt_el1() {
    let run = assert_lane_passes(&["--arch", "aarch64"], "aarch64", "image", "virt");
    assert_eq!(run.json["exit_code"], 0, "PSCI SYSTEM_OFF");
}

#[test]
fn aarch64_virt_el2() {
    let run = assert_lane_passes(
        &["--arch", "aarch64", "--machine", "virt-el2"],
        "aarch64",
        "image",
        "virt-el2",
    );
    assert!(
        run.json["qemu"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("virtualization=on"))
    );
}

fn assert_fails(run: &Run, reason_has: &[&str]) {
    let context = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(1), "{context}");
    assert_eq!(run.json["verdict"], "fail", "{context}");
    let reason = run.json["reason"].as_str().expect("reason");
    for part in reason_has {
        assert!(reason.contains(part), "reason {reason:?} lacks {part:?}");
    }
}

#[test]
fn injected_fault_fails_with_the_crash_line() {
    for arch in ["x86_64", "aarch64"] {
        let run = convtest(&[
            "--arch",
            arch,
            "--tests",
            "boot.*",
            "--inject",
            "fault",
            "--timeout",
            "60",
        ]);
        assert_fails(&run, &["crashed", "# convtest-crash:"]);
        assert!(tests_with(&run.json, "fail").contains(&"inject.requested".to_string()));
        assert!(
            tests_with(&run.json, "pass").contains(&"boot.plan".to_string()),
            "tests before the crash still count"
        );
    }
}

#[test]
fn injected_hang_fails_with_timeout_and_last_line() {
    let run = convtest(&[
        "--tests",
        "boot.plan",
        "--inject",
        "hang",
        "--timeout",
        "10",
    ]);
    assert_fails(
        &run,
        &["timed out after 10 s", "last console line", "inject=hang"],
    );
    assert!(run.json["exit_code"].is_null(), "killed by the watchdog");
}
