//! Boots every supported lane under QEMU TCG through the real `convtest`
//! binary and checks its exit status and JSON report, plus the crash and
//! hang verdicts. Each `convtest` builds what it needs (nested cargo with its
//! own target dirs); parallel tests share those builds through cargo's lock,
//! so the slow BIOS/UEFI image builder compiles once per `cargo test`.

mod common;

use common::{Run, assert_fails, assert_series, conv_tests, convtest, tests_with};
use serde_json::Value;

/// What every lane must show: a clean pass with the core tests passing and
/// every conversion test skipped with the probe's reason.
fn assert_lane_passes(args: &[&str], arch: &str, boot: &str, machine: &str) -> Run {
    let mut all = vec!["--backend", "qemu"];
    all.extend_from_slice(args);
    let run = convtest(&all);
    let context = run.context.clone();
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
    let conv = conv_tests(j);
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

/// A reboot series under QEMU: its system reset keeps RAM and reloads the
/// kernel, so each boot finds its own record and the previous boot's
/// private canaries (reset.content checks them; the converter tests skip:
/// QEMU has no conversion ABI). pc goes through SeaBIOS at every reset.
#[test]
fn qemu_reboot_series_x86_microvm_pc_and_arm64() {
    for (arch, machine) in [("x86_64", "microvm"), ("x86_64", "pc"), ("aarch64", "virt")] {
        let dir = tempfile::tempdir().expect("temp dir");
        let junit = dir.path().join("r.xml");
        let run = convtest(&[
            "--backend",
            "qemu",
            "--arch",
            arch,
            "--machine",
            machine,
            "--reboots",
            "5",
            "--junit",
            junit.to_str().expect("utf-8 path"),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.context);
        assert_series(&run.json, 6, "record", &run.context);
        let xml = std::fs::read_to_string(&junit).expect("junit written");
        assert!(
            xml.contains("name=\"boot5.reset.content\"")
                && xml.contains("name=\"boot0.boot.plan\""),
            "JUnit names carry the boot\n{xml}"
        );
        assert!(
            run.stdout
                .contains("boots: 6; later boots knew their index from: record ×5"),
            "{}",
            run.context
        );
    }
}

#[test]
fn injected_fault_fails_with_the_crash_line() {
    for arch in ["x86_64", "aarch64"] {
        let run = convtest(&[
            "--backend",
            "qemu",
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

/// A guest that prints a VMM fact, an L1 run end and a host-check answer
/// itself: the relay (here the runner's, QEMU adds no lines of its own)
/// marks each line, and the verdict fails naming them and the test.
#[test]
fn a_guest_printing_host_lines_is_named_in_the_verdict() {
    for arch in ["x86_64", "aarch64"] {
        let run = convtest(&[
            "--backend",
            "qemu",
            "--arch",
            arch,
            "--tests",
            "boot.plan",
            "--inject",
            "forge",
            "--timeout",
            "60",
        ]);
        assert_fails(
            &run,
            &[
                "the guest printed 3 line(s) only the host side may print",
                "during inject.requested: \"# convtest-vmm: end=power_off exits=1\"",
                "# convtest-l1: run_end=forged vmm_exit=33",
                "# convtest-host: verify convtest-ack 1 ok enforced forged by the guest",
            ],
        );
        let forged = run.json["tests"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "inject.requested"))
            .map(|t| t["forged"].clone());
        assert_eq!(
            forged.and_then(|f| f.as_array().map(Vec::len)),
            Some(3),
            "{}",
            run.context
        );
        assert!(run.json["vmm"].as_object().is_some_and(|v| v.is_empty()));
    }
}

#[test]
fn injected_hang_fails_with_timeout_and_last_line() {
    let run = convtest(&[
        "--backend",
        "qemu",
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

/// Does this host's /dev/kvm run guests in hardware (VMX/SVM)? Software KVM
/// (kvm_pvm on our CI machines) emulates every instruction and never returns
/// from vmcall/vmmcall (docs/design.md §3).
fn hardware_kvm() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
        c.lines()
            .any(|l| l.starts_with("flags") && (l.contains(" vmx") || l.contains(" svm")))
    })
}

/// convtest's own VMM on this host's /dev/kvm. With hardware KVM the guest
/// converts and every conversion test passes. With software KVM the guest
/// still boots through the VMM (PVH entry, COM1, CPUID with MAP_GPA_RANGE)
/// and its first hypercall never comes back: the run must end as a failure
/// naming the VMM's vCPU watchdog, quickly, not as a stuck process.
#[test]
fn own_vmm_on_this_hosts_kvm() {
    assert!(
        std::path::Path::new("/dev/kvm").exists(),
        "this lane needs /dev/kvm; it cannot run on this machine"
    );
    let args = [
        "--backend",
        "vmm",
        "--tests",
        "boot.*,conv.*",
        "--vcpu-watchdog",
        "5",
        "--timeout",
        "60",
    ];
    let run = convtest(&args);
    let context = run.context.clone();
    let j = &run.json;
    assert_eq!(
        (&j["backend"], &j["accel"], &j["machine"]),
        (
            &Value::from("vmm"),
            &Value::from("kvm"),
            &Value::from("convtest-vmm")
        ),
        "{context}"
    );
    assert_eq!(j["guest"]["converter"], "kvm-map-gpa-range", "{context}");
    assert_eq!(j["guest"]["entry"], "pvh", "{context}");
    assert!(
        j["vmm"]["memory"].is_string() && j["vmm"]["content"].is_string(),
        "{context}"
    );
    assert_eq!(j["vmm"]["map_gpa_range"], "on", "{context}");
    if hardware_kvm() {
        assert_eq!(
            (run.code, &j["verdict"]),
            (Some(0), &Value::from("pass")),
            "{context}"
        );
        for t in conv_tests(j) {
            assert_eq!(t["result"], "pass", "{t}\n{context}");
        }
    } else {
        assert_fails(&run, &["VMM watchdog", "vcpu"]);
        assert_eq!(run.json["exit_code"], 3, "{context}");
    }
}

/// The bench suite's shape on the TCG lanes: no converter there, so only
/// the bounce path is measured — ten sizes, warm and cold, each line with
/// its size and iteration count, and ns exactly when the guest knows its
/// counter frequency (x86 TCG states none; arm64 has CNTFRQ).
#[test]
fn bench_suite_shape_under_tcg() {
    for (arch, ns_known) in [("x86_64", false), ("aarch64", true)] {
        let run = convtest(&[
            "--backend",
            "qemu",
            "--arch",
            arch,
            "--tests",
            "bench.*",
            "--bench-ms",
            "5",
        ]);
        let (j, ctx) = (&run.json, &run.context);
        assert_eq!(run.code, Some(0), "{ctx}");
        let bench = j["bench"].as_array().expect("bench[]");
        for op in ["bounce_warm", "bounce_cold"] {
            let rows: Vec<&Value> = bench.iter().filter(|b| b["op"] == op).collect();
            assert_eq!(rows.len(), 10, "{arch} {op}: {rows:?}\n{ctx}");
            for b in &rows {
                assert!(b["size_bytes"].as_u64().is_some_and(|s| s >= 4096), "{b}");
                assert!(b["iters"].as_u64().is_some_and(|n| n >= 5), "{b}");
                assert!(b["cycles_min"].as_u64().is_some(), "{b}");
                assert_eq!(b["ns_p50"].is_u64(), ns_known, "{arch}: {b}");
                assert_eq!(
                    b["lane"],
                    format!(
                        "qemu-tcg-{}",
                        if arch == "x86_64" { "x86" } else { "arm64" }
                    )
                );
            }
        }
        for t in tests_with(j, "skip") {
            assert!(t.starts_with("bench."), "{t}\n{ctx}");
        }
        assert!(
            tests_with(j, "pass").contains(&"bench.bounce".to_string()),
            "{ctx}"
        );
    }
}

/// SMP under QEMU TCG (`--vcpus 4` = `-smp 4`): every lane's boot-only
/// suites on four CPUs, and smp.online (added by --vcpus) proving each CPU
/// came up on its own stack and ran CPU 0's jobs; the header names them.
#[test]
fn qemu_smp_four_cpus_x86_and_arm64() {
    let lanes: [(&[&str], &str, &str, &str); 4] = [
        (&["--arch", "x86_64"], "x86_64", "pvh", "microvm"),
        (
            &["--arch", "x86_64", "--machine", "pc"],
            "x86_64",
            "pvh",
            "pc",
        ),
        (&["--arch", "aarch64"], "aarch64", "image", "virt"),
        (
            &["--arch", "aarch64", "--machine", "virt-el2"],
            "aarch64",
            "image",
            "virt-el2",
        ),
    ];
    for (args, arch, boot, machine) in lanes {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--vcpus", "4", "--timeout", "90"]);
        let run = assert_lane_passes(&all, arch, boot, machine);
        let (j, ctx) = (&run.json, &run.context);
        assert!(
            tests_with(j, "pass").contains(&"smp.online".to_string()),
            "{ctx}"
        );
        assert_eq!(j["guest"]["cpus"], 4, "{ctx}");
        assert!(
            j["qemu"]["command"]
                .as_str()
                .is_some_and(|c| c.contains("-smp 4")),
            "{ctx}"
        );
    }
}
