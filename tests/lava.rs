//! `convtest lava-job --device-type qemu` run for real by LAVA's own
//! dispatcher: `lava-run` (bookworm's lava-dispatcher 2023.01, installed
//! privately by scripts/lava-local.sh) deploys Debian's 7.3.4 arm64 kernel
//! and the busybox ramdisk with the board kit laid over it, boots an arm64
//! `virt` board with EL2 under TCG with kvm-arm.mode=protected, and the kit's
//! convtest runs its own VMM on that kernel's pKVM and records its results
//! with `lava-test-case`. Every result LAVA logged must be the board run's
//! own JSON report, test for test: each test's result (in test set `bootN`
//! for a run of several boots), each bench line's p50 as a measurement,
//! the verdict as `convtest`, and nothing else.
//!
//! Without the private LAVA this test says loudly that it skipped and how
//! to install it (it does not pass quietly). First run: the kit's static
//! arm64 convtest is built (~2 min on 2 cores, then incremental); the LAVA
//! job itself takes ~1.5 min. Run it alone under the shared VM lock:
//! `flock /tmp/convtest-vm.lock cargo test --test lava`.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The run on the board: a reboot series, so the boots' test sets are
/// exercised too (each boot runs the whole default suite).
const REBOOTS: &str = "1";
/// lava-run's own timeouts end the job first; this only bounds a hang of
/// lava-run itself.
const LAVA_RUN_LIMIT_SECS: &str = "2700";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Past libtest's capture: a skip must show in CI's log.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The private LAVA's directory, or why it cannot run.
fn private_lava() -> Result<PathBuf, String> {
    let dir = convtest::lava::local_dir();
    let needed = [
        "bin/lava-run",
        "bin/lava-device",
        "venv/bin/python",
        convtest::lava::LOCAL_RAMDISK,
    ];
    let missing: Vec<String> = needed
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format!("{} missing", missing.join(", ")));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("lava-run runs as root only and this is not root".into());
    }
    if Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("qemu-system-aarch64 is not on PATH (scripts/install-deps.sh)".into());
    }
    Ok(dir)
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {cmd:?} did not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({cmd:?}, {}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The board kit: `convtest bundle --arch aarch64` (one `.tar.gz` holding
/// one `convtest-kit-aarch64/` directory) unpacked into DIR, so DIR holds
/// the static `convtest` and the guest's `Image` at its top; where this
/// convtest has no `bundle`, what the kit holds, built the same way.
fn make_kit(dir: &Path) {
    let bin = env!("CARGO_BIN_EXE_convtest");
    let has_bundle = Command::new(bin)
        .args(["bundle", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_bundle {
        let archive = dir.with_extension("tar.gz");
        run(
            Command::new(bin)
                .args(["bundle", "--arch", "aarch64", "--out"])
                .arg(&archive),
            "convtest bundle",
        );
        std::fs::create_dir_all(dir).expect("kit dir");
        run(
            Command::new("tar")
                .args(["-xzf"])
                .arg(&archive)
                .args(["--strip-components=1", "-C"])
                .arg(dir),
            "unpacking the kit",
        );
        return;
    }
    let ws = workspace();
    let target_dir = ws.join("target/lava-kit");
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "convtest",
                "--bin",
                "convtest",
                "--target",
                "aarch64-unknown-linux-musl",
                "--target-dir",
            ])
            .arg(&target_dir)
            .current_dir(&ws)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
            .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld"),
        "building the kit's static arm64 convtest",
    );
    std::fs::create_dir_all(dir).expect("kit dir");
    std::fs::copy(
        target_dir.join("aarch64-unknown-linux-musl/release/convtest"),
        dir.join("convtest"),
    )
    .expect("copy convtest");
    let image = convtest::guest_build::prepare(&convtest::guest_build::Request {
        workspace: &ws,
        arch: convtest_proto::arch::Arch::Aarch64,
        boot: convtest::machine::Boot::Image,
        kernel: None,
        plan: "",
        work_dir: dir,
        quiet: true,
        silent_loader: false,
    })
    .expect("the arm64 guest Image");
    assert_eq!(image, dir.join("Image"));
}

/// lava-run's log (one YAML mapping per line) as JSON: the results of the
/// convtest definition, the job's own result, and the board's JSON report
/// from its base64 line.
fn read_log(python: &Path, log: &Path) -> Value {
    let script = r#"
import base64, json, sys, yaml
out = {"results": [], "job": None, "report": None}
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip():
        continue
    entry = yaml.safe_load(line)
    msg = entry.get("msg")
    if entry.get("lvl") == "results":
        if msg.get("definition") == "lava" and msg.get("case") == "job":
            out["job"] = msg
        elif msg.get("definition") != "lava":
            out["results"].append(msg)
    elif entry.get("lvl") == "target" and isinstance(msg, str) and sys.argv[2] in msg:
        data = msg.split(sys.argv[2], 1)[1].strip()
        out["report"] = json.loads(base64.b64decode(data))
print(json.dumps(out))
"#;
    let text = run(
        Command::new(python)
            .args(["-c", script])
            .arg(log)
            .arg(convtest::lava::job::JSON_MARKER),
        "reading lava-run's log",
    );
    serde_json::from_str(&text).expect("the log as JSON")
}

/// (set, case, result, measurement) of each LAVA result.
type Row = (Option<String>, String, String, Option<f64>);

fn lava_rows(results: &Value) -> Vec<Row> {
    results
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["set"].as_str().map(String::from),
                r["case"].as_str().unwrap_or("").to_string(),
                r["result"].as_str().unwrap_or("").to_string(),
                r["measurement"]
                    .as_f64()
                    .or_else(|| r["measurement"].as_str().and_then(|m| m.parse().ok())),
            )
        })
        .collect()
}

/// What the board's JSON report says LAVA must hold, written out from the
/// report itself (not with the code under test).
fn expected_rows(report: &Value) -> Vec<Row> {
    let tests = report["tests"].as_array().expect("tests");
    let boots = report["boots"].as_array().map_or(1, Vec::len);
    let set = |boot: u64| (boots > 1).then(|| format!("boot{boot}"));
    let mut rows = Vec::new();
    for t in tests {
        let (name, result, boot) = (
            t["name"].as_str().expect("name"),
            t["result"].as_str().expect("result"),
            t["boot"].as_u64().expect("boot"),
        );
        rows.push((set(boot), name.to_string(), result.to_string(), None));
        for b in report["bench"].as_array().into_iter().flatten() {
            if b["test"].as_str() != Some(name) || b["boot"].as_u64() != Some(boot) {
                continue;
            }
            let value = b["ns_p50"]
                .as_u64()
                .filter(|&ns| ns > 0)
                .or_else(|| b["cycles_p50"].as_u64())
                .expect("a p50");
            rows.push((
                set(boot),
                format!(
                    "{name}.{}.{}",
                    b["op"].as_str().expect("op"),
                    b["size_bytes"].as_u64().expect("size")
                ),
                result.to_string(),
                Some(value as f64),
            ));
        }
    }
    let verdict = if report["verdict"] == "pass" {
        "pass"
    } else {
        "fail"
    };
    rows.push((None, "convtest".into(), verdict.into(), None));
    rows
}

#[test]
fn lava_run_of_the_qemu_job_matches_convtests_json() {
    let lava = match private_lava() {
        Ok(dir) => dir,
        Err(why) => {
            say(&format!(
                "\nSKIP tests/lava.rs lava_run_of_the_qemu_job_matches_convtests_json: no private LAVA \
                 dispatcher ({why}).\n     Install it with `sudo scripts/lava-local.sh` (~30 s, ~100 MB \
                 under /var/cache/convtest/lava), then run \
                 `flock /tmp/convtest-vm.lock cargo test --test lava` (docs/lava.md).\n"
            ));
            return;
        }
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let kit = tmp.path().join("kit");
    let started = std::time::Instant::now();
    make_kit(&kit);
    let kit_secs = started.elapsed().as_secs_f64();
    let job = tmp.path().join("job.yaml");
    run(
        Command::new(env!("CARGO_BIN_EXE_convtest"))
            .args(["lava-job", "--device-type", "qemu", "--kit"])
            .arg(&kit)
            .arg("--out")
            .arg(&job)
            .args(["--reboots", REBOOTS]),
        "convtest lava-job",
    );
    let device = run(
        Command::new(lava.join("bin/lava-device"))
            .args(["--device-type", "qemu"])
            .arg(&job),
        "rendering the qemu device dictionary",
    );
    let device_path = tmp.path().join("device.yaml");
    std::fs::write(&device_path, device).expect("device.yaml");
    let log = tmp.path().join("lava.log");
    let started = std::time::Instant::now();
    let status = Command::new("timeout")
        .arg(LAVA_RUN_LIMIT_SECS)
        .arg(lava.join("bin/lava-run"))
        .args(["--job-id", &format!("convtest-{}", std::process::id())])
        .arg("--output-dir")
        .arg(tmp.path().join("out"))
        .arg("--device")
        .arg(&device_path)
        .arg(&job)
        // lava-run logs on stderr (Python logging's stream handler).
        .stdout(std::fs::File::create(tmp.path().join("lava-run.stdout")).expect("stdout"))
        .stderr(std::fs::File::create(&log).expect("log"))
        .status()
        .expect("lava-run starts");
    let lava_secs = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(60).collect();
    let context = format!(
        "lava-run {status}; last log lines:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(status.success(), "{context}");
    let parsed = read_log(&lava.join("venv/bin/python"), &log);
    assert_eq!(parsed["job"]["result"], "pass", "{context}");
    let report = &parsed["report"];
    assert!(report.is_object(), "no JSON report in the log\n{context}");
    // The board ran what the job says: its own VMM on pKVM, enforced.
    assert_eq!(
        (&report["backend"], &report["guest"]["converter"]),
        (&Value::from("vmm"), &Value::from("pkvm")),
        "{context}"
    );
    assert_eq!(
        report["boots"].as_array().map(Vec::len),
        Some(2),
        "{context}"
    );
    assert!(
        report["tests"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "conv.share_verify")),
        "{context}"
    );
    let got = lava_rows(&parsed["results"]);
    let want = expected_rows(report);
    assert_eq!(
        got.len(),
        want.len(),
        "LAVA logged {} results, the report has {}\n{got:#?}\n{want:#?}",
        got.len(),
        want.len()
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "LAVA's result differs from the report's");
    }
    let tests = report["tests"].as_array().map_or(0, Vec::len);
    say(&format!(
        "lava: kit built in {kit_secs:.0} s; lava-run {lava_secs:.0} s; {} LAVA results = {tests} tests + {} \
         measurements + the verdict ({}), every one as in the board's JSON",
        got.len(),
        got.len() - tests - 1,
        report["verdict"]
    ));
}
