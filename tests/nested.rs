//! The nested lanes through the real `convtest` binary: QEMU TCG runs a
//! Debian L1 with real KVM whose /init (convtest-l1) runs convtest's own VMM
//! on the guest. Each lane must pass with the conversion tests really run (none
//! skipped) and the JSON naming the converter, the VMM memory / VM type and
//! the L1 kernel; the arm64 normal-VM lane must instead skip them with the
//! reason pKVM gave.
//!
//! `convtest mutants` runs here too: on the sw-protected, stock and pKVM
//! lanes every conversion test must be turned red by some deliberate fault
//! and every fault noticed, exactly as the expected table in the code says.
//!
//! First run on a machine: Debian's kernels are downloaded into the cache
//! (/var/cache/convtest as root) and the swprot kvm.ko is built (~5 min);
//! both happen before QEMU starts. Cost figures are printed, not asserted.

mod common;

use common::{Run, assert_fails, assert_series, conv_tests};
use serde_json::Value;
use std::process::Command;

/// Generous: two TCG L1s may share the machine's two cores.
const TIMEOUT_SECS: &str = "300";

/// `convtest run --backend nested ARGS` with the report parsed.
fn convtest(args: &[&str]) -> Run {
    let mut all = vec!["--backend", "nested", "--timeout", TIMEOUT_SECS];
    all.extend_from_slice(args);
    common::convtest(&all)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// What every nested lane shows, whether its conversions run or skip.
fn assert_nested_run(run: &Run, arch: &str, kernel: &str) {
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(
        (str_of(j, "arch"), str_of(j, "backend")),
        (arch, "nested"),
        "{ctx}"
    );
    assert_eq!(str_of(&j["l1"], "kernel"), kernel, "l1.kernel\n{ctx}");
    assert!(
        j["l1"]["boot_ms"]
            .as_str()
            .is_some_and(|ms| ms.parse::<u64>().is_ok()),
        "l1.boot_ms\n{ctx}"
    );
    assert_eq!(
        str_of(&j["l1"], "vmm_exit"),
        j["exit_code"].to_string(),
        "the run's exit code is the inner VMM's\n{ctx}"
    );
    assert!(
        run.stderr.contains("(no download)") || run.stderr.contains("; downloaded "),
        "the log says whether the L1 kernel came from the cache\n{ctx}"
    );
    assert!(
        j["qemu"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("-accel tcg") && c.contains("-initrd")),
        "{ctx}"
    );
}

/// A lane whose conversions must really run: pass, every conv.* passed,
/// none skipped, the host checks answered by the own VMM.
fn assert_conversions_pass(run: &Run, converter: &str) {
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(run.code, Some(0), "{ctx}");
    assert_eq!(j["verdict"], "pass", "{ctx}");
    assert_eq!(str_of(&j["guest"], "converter"), converter, "{ctx}");
    let conv = conv_tests(j);
    assert!(conv.len() >= 5, "too few conv.* tests: {conv:?}\n{ctx}");
    for t in &conv {
        assert_eq!(t["result"], "pass", "{t}\n{ctx}");
    }
    let host_checks: u64 = str_of(&j["vmm"], "host_checks").parse().unwrap_or(0);
    assert!(host_checks > 0, "no host-check request was answered\n{ctx}");
    let all = j["tests"].as_array().map(Vec::len).unwrap_or(0);
    let passed = j["tests"]
        .as_array()
        .map(|t| t.iter().filter(|t| t["result"] == "pass").count())
        .unwrap_or(0);
    assert_eq!(passed, all, "every test passes in a nested lane\n{ctx}");
}

/// What every host-checked conversion test rests on, per the VMM's answers.
fn assert_evidence(run: &Run, want: &str) {
    let (j, ctx) = (&run.json, &run.context);
    let checked: Vec<&Value> = conv_tests(j)
        .into_iter()
        .filter(|t| !t["evidence"].is_null())
        .collect();
    assert!(
        checked.len() >= 4,
        "too few host-checked conv.* tests: {checked:?}\n{ctx}"
    );
    for t in &checked {
        assert_eq!(t["evidence"], want, "{t}\n{ctx}");
    }
    assert_eq!(j["evidence"]["level"], want, "{ctx}");
}

/// The `# bench:` figures: conversion round trip vs a no-op exit.
fn print_costs(lane: &str, run: &Run) {
    let bench = run.json["bench"].as_array().cloned().unwrap_or_default();
    let p50 = |prefix: &str| {
        bench
            .iter()
            .find(|b| b["op"].as_str().is_some_and(|o| o.starts_with(prefix)))
            .and_then(|b| b["ns_p50"].as_u64())
    };
    let (conv, noop) = (p50("share_unshare"), p50("noop"));
    let ratio = match (conv, noop) {
        (Some(c), Some(n)) if n > 0 => format!("{:.1}x", c as f64 / n as f64),
        _ => "n/a".into(),
    };
    println!(
        "{lane}: share+unshare p50 {conv:?} ns, no-op exit p50 {noop:?} ns, ratio {ratio}; \
         L1 boot {} ms, run {} ms",
        str_of(&run.json["l1"], "boot_ms"),
        run.json["timing"]["total_ms"]
    );
    assert!(
        conv.is_some() && noop.is_some(),
        "bench[] lacks the conversion or no-op figure: {bench:?}\n{}",
        run.context
    );
}

#[test]
fn x86_stock_kvm() {
    let run = convtest(&["--arch", "x86_64"]);
    assert_nested_run(&run, "x86_64", "7.3.4+deb13-amd64");
    assert_conversions_pass(&run, "kvm-map-gpa-range");
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(str_of(&j["l1"], "kvm"), "stock", "{ctx}");
    // Debian's stock kvm.ko has no KVM_X86_SW_PROTECTED_VM: the VMM tracks
    // private pages itself.
    assert_eq!(str_of(&j["vmm"], "memory"), "emulated-private", "{ctx}");
    assert_eq!(j["exit_code"], 33, "isa-debug-exit success\n{ctx}");
    // No platform isolation here: the isolation tests must not read as a
    // plain pass, on the terminal or in the KTAP.
    assert_evidence(&run, "bookkeeping");
    for name in ["conv.reset_private", "conv.unshare_private"] {
        let t = conv_tests(j)
            .into_iter()
            .find(|t| t["name"] == name)
            .expect("reported");
        assert!(
            t["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("bookkeeping only")),
            "{t}\n{ctx}"
        );
        assert!(
            run.stdout
                .lines()
                .any(|l| l.contains(name) && l.contains("[BOOKKEEPING]")),
            "{ctx}"
        );
    }
    print_costs("nested x86 stock", &run);
}

/// The other content mode of emulated-private memory: the VMM clears each
/// page that flips (punching the mmap'd guest_memfd), and the guest's
/// content test must see exactly that.
#[test]
fn x86_stock_kvm_content_zero() {
    let run = convtest(&["--arch", "x86_64", "--content", "zero", "--tests", "conv.*"]);
    assert_nested_run(&run, "x86_64", "7.3.4+deb13-amd64");
    assert_conversions_pass(&run, "kvm-map-gpa-range");
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(str_of(&j["vmm"], "memory"), "emulated-private", "{ctx}");
    assert_eq!(str_of(&j["vmm"], "content"), "zero", "{ctx}");
    let content = conv_tests(j)
        .into_iter()
        .find(|t| t["name"] == "conv.content")
        .expect("conv.content reported");
    assert!(
        content.to_string().contains("as content=zero says"),
        "the guest must observe the VMM's choice: {content}\n{ctx}"
    );
}

/// KVM-enforced private memory, over a reboot series: the VMM keeps
/// memory at each reset (the policy that trusts nothing but the guest's
/// firmware), so every later boot must find its own record and prove the
/// previous boot's shared ranges private through KVM.
#[test]
fn x86_swprot_kvm() {
    let run = convtest(&[
        "--arch",
        "x86_64",
        "--l1-swprot",
        "--reboots",
        "3",
        "--reset-policy",
        "keep",
    ]);
    assert_nested_run(&run, "x86_64", "7.3.4+deb13-amd64");
    assert_conversions_pass(&run, "kvm-map-gpa-range");
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(str_of(&j["l1"], "kvm"), "swprot", "{ctx}");
    assert_eq!(str_of(&j["vmm"], "memory"), "sw-protected", "{ctx}");
    assert_eq!(j["exit_code"], 33, "isa-debug-exit success\n{ctx}");
    assert_evidence(&run, "enforced");
    assert_series(j, 4, "record", ctx);
    for b in &j["boots"].as_array().expect("boots")[1..] {
        assert_eq!(b["vmm_reset"]["reset_policy"], "keep", "{b}\n{ctx}");
        assert_eq!(b["vmm_reset"]["reset_applied"], "yes", "{b}\n{ctx}");
        assert_eq!(
            b["reset"]["calls"], 2,
            "one MAP_GPA_RANGE per RAM range\n{b}\n{ctx}"
        );
    }
    let again: Vec<&Value> = j["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .filter(|t| t["name"] == "reset.private_again")
        .collect();
    assert_eq!(again.len(), 3, "{ctx}");
    for t in again {
        assert_eq!(t["evidence"], "enforced", "{t}\n{ctx}");
    }
    print_costs("nested x86 swprot", &run);
}

/// A broken VMM through `convtest run`: the run fails and names what noticed.
#[test]
fn x86_swprot_leaking_vmm_fails_naming_the_tests() {
    let run = convtest(&[
        "--arch",
        "x86_64",
        "--l1-swprot",
        "--tests",
        "conv.*",
        "--iters",
        "20",
        "--vmm-fault",
        "leak",
    ]);
    assert_fails(&run, &["conv.unshare_private", "conv.reset_private"]);
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(str_of(&j["vmm"], "faults"), "leak", "{ctx}");
    let unshare = conv_tests(j)
        .into_iter()
        .find(|t| t["name"] == "conv.unshare_private")
        .expect("reported");
    assert_eq!(unshare["result"], "fail", "{unshare}\n{ctx}");
}

/// pKVM with a reboot series: the VMM can only keep a protected VM's
/// memory (or build a new VM), so each later boot's firmware reset runs the
/// ledger: exactly the granules the previous boot left shared.
#[test]
fn arm64_pkvm_protected_vm() {
    let run = convtest(&["--arch", "aarch64", "--reboots", "2"]);
    assert_nested_run(&run, "aarch64", "7.3.4+deb13-arm64");
    assert_conversions_pass(&run, "pkvm");
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(j["guest"]["granule"], 4096, "{ctx}");
    assert_eq!(str_of(&j["vmm"], "vm_type"), "protected", "{ctx}");
    assert_eq!(j["exit_code"], 0, "PSCI SYSTEM_OFF\n{ctx}");
    // The host's read of a private page was refused (pKVM isolates it).
    let refused = conv_tests(j).iter().any(|t| {
        t["diagnostics"].as_array().is_some_and(|d| {
            d.iter()
                .any(|l| l.as_str().is_some_and(|l| l.contains("host refused")))
        })
    });
    assert!(refused, "no private-read probe was refused\n{ctx}");
    assert_evidence(&run, "enforced");
    // The console is the word console: the guest took it, the VMM served it.
    assert!(run.stdout.contains(" console=word@"), "{ctx}");
    assert_eq!(str_of(&j["vmm"], "word_console"), "served", "{ctx}");
    assert_series(j, 3, "record", ctx);
    for b in &j["boots"].as_array().expect("boots")[1..] {
        assert_eq!(b["reset"]["method"], "ledger", "{b}\n{ctx}");
        assert!(
            b["reset"]["calls"].as_u64().is_some_and(|c| c > 512),
            "the ledger unshares every granule the previous boot left shared\n{b}\n{ctx}"
        );
    }
    print_costs("nested arm64 pKVM protected", &run);
}

/// The word console refused (`--vmm-console uart`, as a VMM without it
/// would answer): the protected guest asks, stays on its 16550, and the run
/// still passes with its host checks answered through the UART both ways.
#[test]
fn arm64_pkvm_word_console_refused_falls_back_to_the_uart() {
    let run = convtest(&[
        "--arch",
        "aarch64",
        "--vmm-console",
        "uart",
        "--tests",
        "boot.plan,conv.share_verify",
    ]);
    assert_nested_run(&run, "aarch64", "7.3.4+deb13-arm64");
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(run.code, Some(0), "{ctx}");
    assert_eq!(j["verdict"], "pass", "{ctx}");
    let vmm = &j["vmm"];
    assert_eq!(str_of(vmm, "word_console"), "refused", "{ctx}");
    assert_eq!(
        str_of(vmm, "word_console_asked"),
        "true",
        "the guest asked\n{ctx}"
    );
    assert_eq!(
        str_of(vmm, "word_console_exits"),
        "1",
        "only the ID load\n{ctx}"
    );
    assert!(run.stdout.contains(" console=ns16550a@"), "{ctx}");
    let uart: u64 = str_of(vmm, "uart_exits").parse().unwrap_or(0);
    assert!(uart > 100, "the output went through the UART\n{ctx}");
    assert!(
        str_of(vmm, "host_checks").parse::<u64>().unwrap_or(0) > 0,
        "a host check was asked and answered through the UART\n{ctx}"
    );
    let verified = conv_tests(j)
        .into_iter()
        .find(|t| t["name"] == "conv.share_verify")
        .cloned()
        .unwrap_or_default();
    assert_eq!(verified["result"], "pass", "{verified}\n{ctx}");
    assert_eq!(verified["evidence"], "enforced", "{verified}\n{ctx}");
}

#[test]
fn arm64_pkvm_normal_vm_skips_conversions() {
    let run = convtest(&["--arch", "aarch64", "--vm-type", "normal"]);
    assert_nested_run(&run, "aarch64", "7.3.4+deb13-arm64");
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(run.code, Some(0), "{ctx}");
    assert_eq!(j["verdict"], "pass", "{ctx}");
    assert_eq!(str_of(&j["vmm"], "vm_type"), "normal", "{ctx}");
    assert_eq!(str_of(&j["guest"], "converter"), "none", "{ctx}");
    let conv = conv_tests(j);
    assert!(!conv.is_empty(), "no conv.* tests reported\n{ctx}");
    for t in conv {
        assert_eq!(t["result"], "skip", "{t}\n{ctx}");
        // The guest names what pKVM answered (a normal VM's KVM_FEATURES
        // lacks MEM_SHARE/MEM_UNSHARE).
        assert!(
            t["reason"]
                .as_str()
                .is_some_and(|r| r.contains("KVM_FEATURES")),
            "skip without pKVM's answer: {t}\n{ctx}"
        );
    }
    // A pass that exercised no conversion says so on the verdict line.
    assert!(
        run.stdout
            .contains("no conversion was exercised: KVM vendor hypervisor without"),
        "{ctx}"
    );
    assert_eq!(j["conversions"]["exercised"], false, "{ctx}");
    println!(
        "nested arm64 pKVM normal VM: run {} ms; skip reason: {}",
        j["timing"]["total_ms"],
        run.stdout
            .lines()
            .find(|l| l.contains("SKIP"))
            .unwrap_or("(none)")
    );
}

/// `convtest mutants` on the three nested lanes: exit 0 means the observed
/// kill table is the expected one, every conv.* test was killed and every
/// mutant noticed; the JSON must carry the whole table.
#[test]
fn mutants_kill_every_test_on_every_lane() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("mutants.json");
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args([
            "mutants",
            "--lanes",
            "nested-x86-swprot,nested-x86,nested-arm64-pkvm",
            "--iters",
            "50",
            "--json",
        ])
        .arg(&json_path)
        .output()
        .expect("convtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let j = common::read_json(&json_path, &stdout, &stderr);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert_eq!(j["verdict"], "pass", "{ctx}");
    let lanes = j["lanes"].as_array().expect("lanes");
    assert_eq!(lanes.len(), 9, "three lanes, three sections each\n{ctx}");
    for lane in lanes {
        let name = lane["lane"].as_str().unwrap_or("?");
        let section = lane["section"].as_str().unwrap_or("?");
        assert_eq!(lane["ok"], true, "{name} {section}\n{ctx}");
        let tests = lane["tests"].as_array().expect("tests");
        let rows = lane["rows"].as_array().expect("rows");
        // Clean, the lane's VMM faults, the guest faults (conv: skip-share,
        // skip-unshare, skip-reset, forget-tracker, forge-host and the six
        // partial conversions), the forged host in every section.
        let expected_rows = match (section, name) {
            ("conv", "nested-arm64-pkvm") => 12,
            ("conv", _) => 18,
            ("smp", "nested-arm64-pkvm") => 5,
            ("smp", _) => 7,
            _ => 6,
        };
        assert!(tests.len() >= 2, "{name}: {tests:?}");
        if section == "conv" {
            assert!(
                tests.iter().any(|t| t == "stress.storm"),
                "the seeded storm is a column of every conv table: {tests:?}"
            );
        }
        assert_eq!(rows.len(), expected_rows, "{name} {section}\n{ctx}");
        assert_eq!(rows[0]["mutant"], "clean");
        assert_eq!(rows[0]["verdict"], "pass", "{name}\n{ctx}");
        let mutants: Vec<&Value> = rows[1..]
            .iter()
            .filter(|r| r["kind"] != "control")
            .collect();
        for t in tests {
            let killed = mutants
                .iter()
                .any(|r| r["cells"][t.as_str().unwrap_or("")] == "red");
            assert!(killed, "{name}: nothing killed {t}\n{ctx}");
        }
        for r in &rows[1..] {
            assert_eq!(r["matches"], true, "{name} {}\n{ctx}", r["mutant"]);
            let noticed = !r["observed_red"].as_array().is_none_or(Vec::is_empty);
            assert_eq!(
                noticed,
                r["kind"] != "control",
                "{name}: {}\n{ctx}",
                r["mutant"]
            );
        }
        if name == "nested-arm64-pkvm" && section == "conv" {
            assert_eq!(
                lane["not_applicable"].as_array().map(Vec::len),
                Some(6),
                "every VMM fault is n/a on pKVM, with the reason\n{ctx}"
            );
        }
        println!(
            "mutants {name}: {} runs in {} ms",
            rows.len(),
            lane["wall_ms"]
        );
    }
    assert!(
        stdout.contains("PASS  convtest mutants: 3 lane(s), 9 kill table(s)"),
        "{ctx}"
    );
}

/// `convtest matrix` on Debian's older kernels as L1: 6.12 (KVM's supported
/// CPUID leaves the hypervisor bit clear; no guest_memfd on a default VM)
/// and 6.1 (no KVM_SET_USER_MEMORY_REGION2 at all). The VMM must degrade by
/// capability and every conversion test must still run and pass.
#[test]
fn matrix_of_older_debian_kernels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("matrix.json");
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(["matrix", "--kernels", "debian-6.12,debian-6.1", "--json"])
        .arg(&json_path)
        .output()
        .expect("convtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let j = common::read_json(&json_path, &stdout, &stderr);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let rows = j["kernels"].as_array().expect("kernels");
    let kernels: Vec<&str> = rows.iter().filter_map(|r| r["kernel"].as_str()).collect();
    assert_eq!(kernels, ["6.12.117+deb12-amd64", "6.1.0-57-amd64"], "{ctx}");
    for r in rows {
        assert_eq!(r["verdict"], "pass", "{r}\n{ctx}");
        assert_eq!(r["memory"], "emulated-private", "{r}");
        assert_eq!(r["map_gpa_range"], "on", "{r}");
        assert_eq!(
            (&r["conv_fail"], &r["conv_skip"]),
            (&Value::from(0), &Value::from(0)),
            "{r}"
        );
        assert!(r["conv_pass"].as_u64().is_some_and(|n| n >= 8), "{r}");
        // 231 = KVM_CAP_USER_MEMORY2: 6.1 has none, so the VMM used v1 slots.
        let has_region2 = r["caps"].as_str().is_some_and(|c| c.contains("231:0x1"));
        assert_eq!(has_region2, r["kernel"] != "6.1.0-57-amd64", "{r}");
    }
    println!("{stdout}");
}

/// The storm and the race on several vCPUs of the own VMM: KVM-enforced
/// private memory with four, pKVM with two. Every CPU storms its own slice
/// while the others convert theirs; the race converts under the others'
/// accesses. The ops/s land in the test log.
#[test]
fn storms_and_races_on_several_vcpus() {
    for (args, converter, cpus) in [
        (
            &[
                "--arch",
                "x86_64",
                "--l1-swprot",
                "--vcpus",
                "4",
                "--iters",
                "60",
            ][..],
            "kvm-map-gpa-range",
            4,
        ),
        (
            &["--arch", "aarch64", "--vcpus", "2", "--iters", "30"][..],
            "pkvm",
            2,
        ),
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--tests", "smp.*,stress.*"]);
        let run = convtest(&all);
        let (j, ctx) = (&run.json, &run.context);
        assert_eq!(run.code, Some(0), "{ctx}");
        assert_eq!(j["verdict"], "pass", "{ctx}");
        assert_eq!(str_of(&j["guest"], "converter"), converter, "{ctx}");
        assert_eq!(j["guest"]["cpus"], cpus, "{ctx}");
        assert_eq!(str_of(&j["vmm"], "vcpus"), cpus.to_string(), "{ctx}");
        let passed = common::tests_with(j, "pass");
        for t in [
            "smp.online",
            "stress.storm",
            "stress.race",
            "stress.overlap",
        ] {
            assert!(passed.iter().any(|p| p == t), "{t} did not pass\n{ctx}");
        }
        let storm = j["tests"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "stress.storm"))
            .map(|t| t["diagnostics"].to_string())
            .unwrap_or_default();
        assert!(
            storm.contains(&format!("on {cpus} CPU(s)")),
            "the storm ran on every CPU: {storm}\n{ctx}"
        );
        println!("{converter} on {cpus} vCPUs: {storm}");
    }
}

/// The board kit as a board runs it: `convtest bundle --check nested`
/// builds the kit, boots the pKVM L1 with the archive in it, and /init runs
/// the README's commands in the unpacked kit — the kit's own runner judging
/// inside, no cargo there — then hands back the JSON each wrote. One L1
/// boot covers the kit, crosvm's layout on pKVM and the refusal to build.
#[test]
fn board_kit_runs_in_the_pkvm_l1_and_on_crosvms_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (kit, report) = (dir.path().join("kit.tar.gz"), dir.path().join("check.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(["bundle", "--arch", "aarch64", "--out"])
        .arg(&kit)
        .args(["--check", "nested", "--timeout", TIMEOUT_SECS, "--json"])
        .arg(&report)
        .output()
        .expect("convtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let j = common::read_json(&report, &stdout, &stderr);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert_eq!(j["verdict"], "pass", "{ctx}");
    let l1 = j["l1"].as_array().expect("l1 facts");
    assert!(
        l1.iter()
            .any(|f| f[0] == "kernel" && f[1] == "7.3.4+deb13-arm64"),
        "{ctx}"
    );
    let cmds = j["commands"].as_array().expect("commands");
    assert_eq!(cmds.len(), 3, "{ctx}");
    assert_eq!(
        cmds[0]["command"], "./convtest run --backend vmm --kernel ./Image --json r.json",
        "the README's command, exactly"
    );
    for (c, layout, lane, uart) in [
        (&cmds[0], "convtest", "vmm-arm64", "ns16550a@0x9000000"),
        (&cmds[1], "crosvm", "vmm-arm64-crosvm", "ns16550a@0x3f8"),
    ] {
        let r = &c["report"];
        assert_eq!(
            (&c["exit"], &c["ok"]),
            (&Value::from("0"), &Value::from(true)),
            "{c}"
        );
        assert_eq!(r["verdict"], "pass", "{c}");
        assert_eq!(
            r["lane"], lane,
            "judged inside the L1 as the own VMM's lane"
        );
        assert_eq!(str_of(&r["vmm"], "layout"), layout);
        assert_eq!(str_of(&r["vmm"], "uart"), uart);
        assert_eq!(str_of(&r["vmm"], "vm_type"), "protected");
        assert_eq!(str_of(&r["guest"], "converter"), "pkvm");
        let conv = conv_tests(r);
        assert!(conv.len() >= 5, "{conv:?}");
        assert!(conv.iter().all(|t| t["result"] == "pass"), "{conv:?}");
        assert_eq!(r["evidence"]["level"], "enforced", "{c}");
    }
    assert_eq!(cmds[2]["exit"], "2", "a kit refuses to build: {}", cmds[2]);
    assert_eq!(cmds[2]["ok"], true, "{}", cmds[2]);
    println!(
        "kit: {} bytes; run {} ms, crosvm layout {} ms (inside the L1)",
        std::fs::metadata(&kit).map(|m| m.len()).unwrap_or(0),
        cmds[0]["report"]["timing"]["total_ms"],
        cmds[1]["report"]["timing"]["total_ms"]
    );
}

/// pKVM on Debian's 16 KiB-page kernel: HYP_MEMINFO answers 16384, the
/// guest keeps its own 4 KiB pages, and every conversion test runs on 16
/// KiB granules. (It used to hang in the guest's relocation:
/// docs/boards.md.)
#[test]
fn arm64_pkvm_16k_granules() {
    let run = convtest(&["--arch", "aarch64", "--l1", "debian-7.3-16k"]);
    assert_nested_run(&run, "aarch64", "7.3.4+deb13-arm64-16k");
    assert_conversions_pass(&run, "pkvm");
    assert_evidence(&run, "enforced");
    let (j, ctx) = (&run.json, &run.context);
    assert_eq!(j["guest"]["granule"], 16384, "{ctx}");
    assert!(
        run.stdout.contains("page_size=4096")
            && run
                .stdout
                .contains("first_touch=image,dtb,granule_starts:16384")
            && run
                .stdout
                .contains("mmio_guard=not-offered(kvm_features=0x1d)"),
        "{ctx}"
    );
    assert_eq!(j["lane"], "nested-arm64-pkvm-debian-7.3-16k", "{ctx}");
    println!(
        "nested arm64 pKVM 16k: run {} ms, VM teardown {} ms",
        j["timing"]["total_ms"],
        str_of(&j["vmm"], "teardown_ms")
    );
}

/// One number out of the hostile test's summary diagnostic (`key=value`).
fn hostile_count(test: &Value, key: &str) -> u64 {
    test["diagnostics"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .filter_map(Value::as_str)
                .find(|l| l.starts_with("hostile: seed="))
        })
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the hostile summary: {test}"))
}

fn vmm_count(j: &Value, key: &str) -> u64 {
    str_of(&j["vmm"], key)
        .parse()
        .unwrap_or_else(|_| panic!("vmm.{key} is no number: {}", j["vmm"]))
}

/// A guest that attacks the VMM through real KVM exits (`hostile.vmm`, 1e4
/// seeded operations: hypercalls and MAP_GPA_RANGE edges, port I/O, loads
/// and stores where no RAM is, malformed host-check lines, console floods,
/// random SMCCC/PSCI on arm64), then the conversion suite: the VMM must
/// neither die nor hang, every conv.* test must pass after it, and the
/// VMM's facts must count what it refused.
#[test]
fn a_hostile_guest_leaves_the_vmm_serving() {
    for arch in ["x86_64", "aarch64"] {
        let mut args = vec![
            "--arch",
            arch,
            "--tests",
            "hostile.vmm,conv.*",
            "--hostile-ops",
            "10000",
            "--iters",
            "50",
        ];
        if arch == "x86_64" {
            args.push("--l1-swprot");
        }
        let run = convtest(&args);
        let (j, ctx) = (&run.json, &run.context);
        assert_eq!(run.code, Some(0), "{ctx}");
        assert_eq!(j["verdict"], "pass", "{ctx}");
        let hostile = j["tests"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "hostile.vmm"))
            .expect("hostile.vmm reported");
        assert_eq!(hostile["result"], "pass", "{hostile}\n{ctx}");
        assert_conversions_pass(
            &run,
            if arch == "x86_64" {
                "kvm-map-gpa-range"
            } else {
                "pkvm"
            },
        );
        let stray = hostile_count(hostile, "loads") + hostile_count(hostile, "stores");
        assert!(
            vmm_count(j, "stray_mmio") > 0 && vmm_count(j, "stray_mmio") <= stray,
            "{ctx}"
        );
        assert!(vmm_count(j, "host_unparsable") >= 1, "{ctx}");
        assert_eq!(vmm_count(j, "forged_lines"), 0, "{ctx}");
        // Six kinds of request lines (each owes an answer, or the test
        // failed), one kind that is no request.
        assert!(hostile_count(hostile, "answered") >= 6, "{ctx}");
        if arch == "x86_64" {
            // conv.rejects adds one refusal of its own (outside RAM).
            assert_eq!(
                vmm_count(j, "rejected"),
                hostile_count(hostile, "by_vmm") + 1,
                "{ctx}"
            );
            assert_eq!(
                vmm_count(j, "stray_io_out") + vmm_count(j, "stray_io_in"),
                hostile_count(hostile, "ports"),
                "{ctx}"
            );
        }
        println!(
            "hostile {arch}: 10000 ops, run {} ms",
            j["timing"]["total_ms"]
        );
    }
}
