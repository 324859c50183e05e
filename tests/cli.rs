//! The `convtest` command line without booting anything: list, help,
//! argument errors and a missing QEMU (all must answer in well under a second).

use convtest_proto::catalog::TESTS;
use std::process::{Command, Output};

fn convtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(args)
        .output()
        .expect("convtest runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_prints_every_catalog_test() {
    let out = convtest(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for t in TESTS {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(t.name));
        let line = line.unwrap_or_else(|| panic!("{} missing from:\n{stdout}", t.name));
        assert!(line.contains(t.about), "{line}");
        assert_eq!(line.contains("[on request"), t.on_request, "{line}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["run", "--arch", "riscv64"][..],
        &["run", "--boot", "floppy"],
        &["run", "--timeout", "soon"],
        &["frobnicate"],
        &[],
    ] {
        let out = convtest(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn impossible_combinations_exit_2_with_a_reason() {
    for (args, says) in [
        (
            &["run", "--arch", "aarch64", "--boot", "uefi"][..],
            "--boot uefi",
        ),
        (
            &["run", "--boot", "bios", "--machine", "microvm"],
            "microvm",
        ),
        (&["run", "--tests", "nosuch.*"], "convtest list"),
    ] {
        let out = convtest(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn help_teaches_lanes_examples_and_exit_codes() {
    let out = convtest(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "virt-el2",
        "--boot uefi",
        "Examples:",
        "--inject",
        "--timeout",
        "--json",
    ] {
        assert!(help.contains(needle), "run --help lacks {needle}:\n{help}");
    }
    let top = text(&convtest(&["--help"]).stdout);
    assert!(
        top.contains("Exit status") && top.contains("convtest list"),
        "{top}"
    );
}

#[test]
fn missing_qemu_exits_2_naming_the_install_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(["run", "--arch", "aarch64", "--json"])
        .arg(&json)
        .env("PATH", dir.path()) // an empty PATH: no qemu-system-*
        .output()
        .expect("convtest runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("qemu-system-aarch64 not found"), "{stderr}");
    assert!(
        stderr.contains("scripts/install-deps.sh` as root"),
        "{stderr}"
    );
    assert!(stderr.contains(".ci/run"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON written even on error"))
            .expect("JSON");
    assert_eq!(report["verdict"], "error");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not found"))
    );
}

#[test]
fn an_l1_kernel_that_is_not_a_kernel_is_refused_up_front() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("vmlinuz");
    std::fs::write(&empty, b"").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args([
            "run",
            "--backend",
            "nested",
            "--arch",
            "x86_64",
            "--l1-kernel",
        ])
        .arg(&empty)
        .output()
        .expect("convtest runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("empty file") && stderr.contains("bzImage"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("building"),
        "checked before any build or boot: {stderr}"
    );
}

/// `convtest bench --from` redraws a saved report without booting: the
/// recorded pKVM lane of a real run comes back as its table, break-even
/// line and plot, and an unknown lane is a usage error.
#[test]
fn bench_redraws_a_saved_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("cost.svg");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bench_nested_arm64_pkvm.json"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(["bench", "--from", fixture, "--svg"])
        .arg(&svg)
        .output()
        .expect("convtest runs");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for needle in [
        "nested-arm64-pkvm",
        "round trip with touch",
        "break-even:",
        "2 MiB",
        "the ratios are the point",
    ] {
        assert!(stdout.contains(needle), "{needle}:\n{stdout}");
    }
    let plot = std::fs::read_to_string(&svg).expect("svg written");
    for needle in [
        "nested-arm64-pkvm: latency",
        "nested-arm64-pkvm: in place / bounce — in place never beats a warm bounce up to 2 MiB",
        "1.0: both paths cost the same",
        "range size",
    ] {
        assert!(plot.contains(needle), "{needle}");
    }
    let bad = convtest(&["bench", "--lanes", "nested-riscv"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}
