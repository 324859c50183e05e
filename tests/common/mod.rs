//! Helpers shared by the integration tests that run the real `convtest`
//! binary (`mod common;` in each test file).
#![allow(dead_code)] // each test file uses its own subset

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
