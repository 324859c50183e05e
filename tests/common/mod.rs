//! Helpers shared by the integration tests that run the real `convtest`
//! binary (`mod common;` in each test file).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub json: Value,
    /// The command and its output: what a failing assertion should show.
    pub context: String,
}

/// `convtest run ARGS --json <tmp>` with the report parsed.
pub fn convtest(args: &[&str]) -> Run {
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
    let context = format!(
        "convtest run {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" ")
    );
    Run {
        code: out.status.code(),
        stdout,
        stderr,
        json,
        context,
    }
}

pub fn read_json(path: &Path, stdout: &str, stderr: &str) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no JSON report ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

/// Names of the tests whose result is `result`.
pub fn tests_with(json: &Value, result: &str) -> Vec<String> {
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

/// The `conv.*` entries of the report.
pub fn conv_tests(json: &Value) -> Vec<&Value> {
    json["tests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("conv.")))
        .collect()
}

pub fn assert_fails(run: &Run, reason_has: &[&str]) {
    let context = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(1), "{context}");
    assert_eq!(run.json["verdict"], "fail", "{context}");
    let reason = run.json["reason"].as_str().expect("reason");
    for part in reason_has {
        assert!(reason.contains(part), "reason {reason:?} lacks {part:?}");
    }
}

/// What every planned reboot series must show in its report: `boots` boots
/// in order, each later one knowing its index from `from` (`record`: its
/// own boot record; `host`: the VMM's boot= after a wipe), the reboot tests
/// in the boots they belong to, and no failure.
pub fn assert_series(json: &Value, boots: usize, from: &str, context: &str) {
    let b = json["boots"].as_array().expect("boots[]");
    assert_eq!(b.len(), boots, "{context}");
    for (i, boot) in b.iter().enumerate() {
        assert_eq!(boot["index"], i as u64, "{context}");
        assert_eq!(boot["done"], true, "{context}");
        assert_eq!(boot["fail"], 0, "{context}");
        if i > 0 {
            assert_eq!(boot["from"], from, "boot {i}\n{context}");
        }
    }
    let ran = |name: &str, boot: usize| {
        json["tests"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["name"] == name && t["boot"] == boot as u64 && t["result"] != "fail")
    };
    for i in 0..boots {
        assert_eq!(
            ran("reboot.leave_dirty", i),
            i + 1 < boots,
            "boot {i}\n{context}"
        );
        for t in ["reset.content", "reset.private_again", "reset.calls"] {
            assert_eq!(ran(t, i), i > 0, "{t} in boot {i}\n{context}");
        }
    }
}
