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

/// `lava-cases` outside a LAVA test shell: `--print` shows the calls, a
/// real run names what is missing, a missing report is the verdict failing.
#[test]
fn lava_cases_prints_records_or_says_why_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let json = dir.path().join("r.json");
    std::fs::write(
        &json,
        r#"{"verdict":"pass","reason":"","boots":[{}],
            "tests":[{"name":"conv.cost","result":"pass","reason":"","boot":0},
                     {"name":"clock.frequency","result":"skip","reason":"no counter","boot":0}],
            "bench":[{"op":"share_unshare","size_bytes":4096,"ns_p50":49694,"test":"conv.cost","boot":0}]}"#,
    )
    .expect("json");
    let path = json.to_str().expect("utf8");
    let out = convtest(&["lava-cases", path, "--print"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "lava-test-case conv.cost --result pass\n\
         lava-test-case conv.cost.share_unshare.4096 --result pass --measurement 49694 --units ns\n\
         lava-test-case clock.frequency --result skip\n\
         lava-test-case convtest --result pass\n"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(["lava-cases", path])
        .env("PATH", dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("lava-test-case is not on PATH"),
        "{}",
        text(&out.stderr)
    );
    // In a test shell: LAVA's two helpers are on PATH (stand-ins here
    // that log their arguments); a reboot series goes in test sets.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let calls = dir.path().join("calls");
    for tool in ["lava-test-case", "lava-test-set"] {
        let script = bin.join(tool);
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"{tool} $*\" >> {}\n", calls.display()),
        )
        .expect("stand-in");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let series = dir.path().join("series.json");
    std::fs::write(
        &series,
        r#"{"verdict":"fail","reason":"reset.content failed","boots":[{},{}],
            "tests":[{"name":"boot.plan","result":"pass","boot":0},
                     {"name":"reset.content","result":"fail","reason":"page 3 kept its canary","boot":1}]}"#,
    )
    .expect("json");
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(["lava-cases", series.to_str().expect("utf8")])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&calls).expect("calls"),
        "lava-test-set start boot0\n\
         lava-test-case boot.plan --result pass\n\
         lava-test-set stop\n\
         lava-test-set start boot1\n\
         lava-test-case reset.content --result fail\n\
         lava-test-set stop\n\
         lava-test-case convtest --result fail\n"
    );
    assert!(
        text(&out.stdout).contains("reset.content fail: page 3 kept its canary"),
        "{}",
        text(&out.stdout)
    );
    let missing = dir.path().join("none.json");
    let out = convtest(&["lava-cases", missing.to_str().expect("utf8"), "--print"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "lava-test-case convtest --result fail\n");
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
}

/// A Debian archive that has dropped the pinned L1 build, faked with
/// apt-get / apt-cache scripts on PATH that answer from the recorded index
/// (host-runner/tests/fixtures/debian-index.madison) minus the lines of
/// `dropped`, and an empty cache. Returns the run's exit code and stderr.
fn nested_run_with_an_archive_without(dropped: &str, extra: &[&str]) -> (Option<i32>, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let index = dir.path().join("index.madison");
    let recorded = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/debian-index.madison"
    ))
    .expect("fixture");
    let kept: String = recorded
        .lines()
        .filter(|l| !l.contains(dropped))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&index, kept).expect("index");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let scripts = [
        // update succeeds and fetches nothing; a download fails as apt does.
        (
            "apt-get",
            "#!/bin/sh\nfor a; do [ \"$a\" = download ] && { echo 'E: Unable to locate package' >&2; exit 100; }; done\nexit 0\n",
        ),
        (
            "apt-cache",
            "#!/bin/sh\nwhile [ \"$1\" = -o ]; do shift 2; done\ncmd=$1; shift\ncase $cmd in\n\
             pkgnames) cut -d' ' -f1 \"$FAKE_INDEX\" | sed 's/:.*//' | grep \"^$1\" | sort -u ;;\n\
             madison) for n; do grep \"^$n[ :]\" \"$FAKE_INDEX\"; done ;;\nesac\nexit 0\n",
        ),
    ];
    for (name, text) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, text).expect("script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut args = vec!["run", "--backend", "nested", "--tests", "boot.plan"];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_convtest"))
        .args(&args)
        .env("PATH", path)
        .env("FAKE_INDEX", &index)
        .env("CONVTEST_CACHE", dir.path().join("cache"))
        .output()
        .expect("convtest runs");
    (out.status.code(), text(&out.stderr))
}

/// The pinned L1 build gone from the archive and the cache: the newest
/// build of its series is announced before anything is built (here its
/// download then fails: the fake archive has no files); nothing of the
/// series left: exit 2 naming what was looked for, also before any build.
#[test]
fn a_pinned_l1_build_that_left_the_archive() {
    let (code, stderr) = nested_run_with_an_archive_without("6.12.117", &["--l1", "debian-6.12"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("WARNING: --l1 debian-6.12: the pinned build 6.12.117+deb12")
            && stderr.contains("the newest build of the series there instead, 6.12.118+deb12"),
        "{stderr}"
    );
    let (code, stderr) = nested_run_with_an_archive_without("7.3.4", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--l1 debian-7.3 on x86_64: the pinned build 7.3.4+deb13")
            && stderr.contains("no other build of the series 7.3.<n>+deb13")
            && stderr.contains("linux-binary-7.3.<n>+deb13-amd64"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("building guest"),
        "before the guest build: {stderr}"
    );
}
