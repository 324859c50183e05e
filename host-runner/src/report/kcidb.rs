//! KCIDB JSON (`--kcidb PATH`): what KernelCI's database ingests
//! (schema v5.3, the `kcidb-io` package's `LATEST`). One checkout stands
//! for the convtest invocation, one build for each lane run (the platform
//! under test: its L1 kernel, VMM and guest), one test for each test result
//! plus one for the run's own verdict.
//!
//! - test `path` is convtest's dotted test name (`conv.sizes`); a later
//!   boot of a reboot series prefixes it (`boot1.reset.content`);
//! - `status` is PASS / FAIL / SKIP from the guest's KTAP; the run's own
//!   test (`convtest`) is PASS, FAIL or ERROR (the guest could not run);
//! - the lane, the evidence behind each host-checked test (`enforced`:
//!   the kernel or hypervisor decided, `bookkeeping`: the VMM's own
//!   tracking only) and the kernels are in `misc` and `environment`.
//!
//! `convtest mutants` reports each kill-table cell as a test
//! (`mutants.<section>.<mutant>.<test>`) whose status says whether the
//! observed cell equals the expected one; `convtest matrix`, one build per
//! L1 kernel.

use super::RunRecord;
use crate::mutants::table::{Cell, LaneTable};
use crate::verdict::Verdict;
use convtest_proto::ktap::Outcome;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The schema version written (kcidb-io's `LATEST` when this was written).
pub const SCHEMA: (u32, u32) = (5, 3);
/// KCIDB caps `log_excerpt` at this many characters.
const MAX_EXCERPT: usize = 16384;

#[derive(Serialize)]
pub struct Document {
    version: Version,
    checkouts: Vec<Checkout>,
    builds: Vec<Build>,
    tests: Vec<Test>,
}

#[derive(Serialize)]
struct Version {
    major: u32,
    minor: u32,
}

#[derive(Serialize)]
struct Checkout {
    id: String,
    origin: String,
    comment: String,
    misc: Value,
}

#[derive(Serialize)]
struct Build {
    id: String,
    checkout_id: String,
    origin: String,
    comment: String,
    architecture: String,
    config_name: String,
    duration: f64,
    misc: Value,
}

#[derive(Serialize)]
struct Test {
    id: String,
    build_id: String,
    origin: String,
    path: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_excerpt: Option<String>,
    environment: Environment,
    misc: Value,
}

#[derive(Serialize)]
struct Environment {
    comment: String,
    misc: Value,
}

impl Document {
    /// An empty report for one convtest invocation (`what`: `run`,
    /// `matrix`, `mutants`), its ids unique to this moment and process.
    pub fn new(origin: &str, what: &str) -> Document {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let id = format!("{origin}:{what}-{now}-{}", std::process::id());
        Document {
            version: Version {
                major: SCHEMA.0,
                minor: SCHEMA.1,
            },
            checkouts: vec![Checkout {
                id,
                origin: origin.to_string(),
                comment: format!("convtest {what}"),
                misc: json!({ "convtest_version": env!("CARGO_PKG_VERSION") }),
            }],
            builds: Vec::new(),
            tests: Vec::new(),
        }
    }

    fn checkout(&self) -> &Checkout {
        &self.checkouts[0]
    }

    fn build(
        &mut self,
        suffix: &str,
        arch: &str,
        config: &str,
        seconds: f64,
        misc: Value,
    ) -> String {
        let c = self.checkout();
        let id = format!("{}.{}", c.id, path_safe(suffix));
        let build = Build {
            id: id.clone(),
            checkout_id: c.id.clone(),
            origin: c.origin.clone(),
            comment: format!("convtest lane {config}"),
            architecture: arch.to_string(),
            config_name: config.to_string(),
            duration: seconds,
            misc,
        };
        self.builds.push(build);
        id
    }

    fn test(&mut self, build_id: &str, path: &str, status: &'static str, parts: TestParts) {
        let origin = self.checkout().origin.clone();
        self.tests.push(Test {
            id: format!("{build_id}.{path}"),
            build_id: build_id.to_string(),
            origin,
            path: path.to_string(),
            status,
            comment: parts.comment.filter(|c| !c.is_empty()),
            log_excerpt: parts.excerpt.filter(|e| !e.is_empty()).map(excerpt),
            environment: parts.environment,
            misc: parts.misc,
        });
    }

    /// One lane run: a build and its tests. `build_name` tells builds of
    /// one invocation apart (the lane; a matrix adds the L1 kernel).
    pub fn add_run(&mut self, r: &RunRecord, build_name: &str) {
        let log = &r.log;
        let l1_kernel = log.l1_fact("kernel");
        let host_kernel = log.vmm_fact("kernel");
        let mut env_misc = Map::new();
        for (k, v) in [
            ("lane", Some(r.lane.as_str())),
            ("arch", Some(r.arch.as_str())),
            ("backend", Some(r.backend.as_str())),
            ("accel", Some(r.accel.as_str())),
            ("machine", Some(r.machine.as_str())),
            ("boot", Some(r.boot.as_str())),
            ("l1_kernel", l1_kernel),
            ("vmm_host_kernel", host_kernel),
            ("vmm_memory", log.vmm_fact("memory")),
            ("vmm_vm_type", log.vmm_fact("vm_type")),
        ] {
            if let Some(v) = v {
                env_misc.insert(k.into(), Value::from(v));
            }
        }
        let env_misc = Value::Object(env_misc);
        let environment = || Environment {
            comment: format!("{} ({} {}, {})", r.lane, r.arch, r.backend, r.accel),
            misc: env_misc.clone(),
        };
        let build_id = self.build(
            build_name,
            &r.arch,
            &r.lane,
            r.timing.total.as_secs_f64(),
            build_misc(r),
        );
        for t in &log.tests {
            let name = if t.boot == 0 {
                t.name.clone()
            } else {
                format!("boot{}.{}", t.boot, t.name)
            };
            let mut misc = json!({ "lane": r.lane, "boot": t.boot, "name": t.name });
            if let Some(e) = t.evidence {
                misc["evidence"] = Value::from(e.as_str());
            }
            let status = match t.result {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "SKIP",
            };
            self.test(
                &build_id,
                &path_safe(&name),
                status,
                TestParts {
                    comment: Some(t.reason.clone()),
                    excerpt: Some(t.diagnostics.join("\n")),
                    environment: environment(),
                    misc,
                },
            );
        }
        let status = match r.judgement.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        };
        self.test(
            &build_id,
            "convtest",
            status,
            TestParts {
                comment: Some(r.judgement.reason.clone()),
                excerpt: log.crash.clone().or_else(|| log.last_line.clone()),
                environment: environment(),
                misc: json!({ "lane": r.lane, "verdict": r.judgement.verdict.label() }),
            },
        );
    }

    /// The kill tables: each cell a test that passes when observed equals
    /// expected, each table a test that passes when the table is `ok`.
    pub fn add_mutants(&mut self, tables: &[LaneTable], arch_of: impl Fn(&str) -> String) {
        for table in tables {
            let build_id = self.build(
                &format!("{}.{}", table.lane, table.section),
                &arch_of(table.lane),
                table.lane,
                table.wall_ms as f64 / 1000.0,
                json!({ "section": table.section, "platform": table.platform }),
            );
            let environment = || Environment {
                comment: format!("{} ({} section)", table.lane, table.section),
                misc: json!({ "lane": table.lane, "platform": table.platform }),
            };
            let section = path_safe(table.section);
            for row in &table.rows {
                let mutant = path_safe(&row.mutant);
                for (test, cell) in &row.cells {
                    let expected = if row.expected_red.contains(test) {
                        Cell::Red
                    } else {
                        Cell::Green
                    };
                    let status = if *cell == expected { "PASS" } else { "FAIL" };
                    self.test(
                        &build_id,
                        &format!("mutants.{section}.{mutant}.{}", path_safe(test)),
                        status,
                        TestParts {
                            comment: Some(format!(
                                "{} under {}: observed {}, expected {}",
                                test,
                                row.mutant,
                                cell.word(),
                                expected.word()
                            )),
                            excerpt: None,
                            environment: environment(),
                            misc: json!({
                                "lane": table.lane, "mutant": row.mutant, "test": test,
                                "observed": cell.word(), "expected": expected.word(),
                            }),
                        },
                    );
                }
            }
            let problems: Vec<String> = table
                .mismatches
                .iter()
                .chain(table.error.iter())
                .cloned()
                .chain(
                    table
                        .unkilled_tests
                        .iter()
                        .map(|t| format!("no mutant killed {t}")),
                )
                .chain(
                    table
                        .unkilled_mutants
                        .iter()
                        .map(|m| format!("no test noticed {m}")),
                )
                .collect();
            self.test(
                &build_id,
                &format!("mutants.{section}"),
                if table.ok { "PASS" } else { "FAIL" },
                TestParts {
                    comment: Some(problems.join("; ")),
                    excerpt: None,
                    environment: environment(),
                    misc: json!({ "lane": table.lane, "rows": table.rows.len() }),
                },
            );
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// The run's plan, command and exit status (absent ones left out: KCIDB
/// allows no nulls).
fn build_misc(r: &RunRecord) -> Value {
    let mut m = Map::new();
    m.insert("plan".into(), Value::from(r.plan.as_str()));
    if let Some(c) = &r.command {
        m.insert("command".into(), Value::from(c.as_str()));
    }
    if let Some(c) = r.exit_code {
        m.insert("exit_code".into(), Value::from(c));
    }
    Value::Object(m)
}

struct TestParts {
    comment: Option<String>,
    excerpt: Option<String>,
    environment: Environment,
    misc: Value,
}

/// A KCIDB path: dot-separated segments of `A-Z a-z 0-9 _ -`; anything
/// else (a name a guest made up) becomes `_`, empty segments `_`.
fn path_safe(name: &str) -> String {
    name.split('.')
        .map(|seg| {
            let s: String = seg
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if s.is_empty() { "_".to_string() } else { s }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// At most KCIDB's limit, cut at a character boundary, no NUL.
fn excerpt(text: String) -> String {
    let clean = text.replace('\0', "");
    clean.chars().take(MAX_EXCERPT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;

    #[test]
    fn paths_are_kcidb_paths() {
        assert_eq!(path_safe("conv.share_verify"), "conv.share_verify");
        assert_eq!(path_safe("vmm:leak"), "vmm_leak");
        assert_eq!(path_safe("a..b c"), "a._.b_c");
    }

    #[test]
    fn a_run_is_a_build_with_a_test_per_result_and_its_verdict() {
        let raw = include_str!("../../tests/fixtures/x86_qemu_reboots2.ktap");
        let r = sample(raw, Verdict::Pass, "");
        let mut d = Document::new("convtest", "run");
        d.add_run(&r, &r.lane);
        let v: Value = serde_json::from_str(&d.to_json()).expect("JSON");
        assert_eq!(v["version"], json!({"major": 5, "minor": 3}));
        let tests = v["tests"].as_array().expect("tests");
        assert_eq!(tests.len(), r.log.tests.len() + 1);
        let paths: Vec<&str> = tests
            .iter()
            .map(|t| t["path"].as_str().unwrap_or(""))
            .collect();
        assert!(paths.contains(&"boot.plan") && paths.contains(&"boot2.reset.content"));
        assert_eq!(tests.last().map(|t| &t["status"]), Some(&json!("PASS")));
        let ids: std::collections::HashSet<&str> = tests
            .iter()
            .map(|t| t["id"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(ids.len(), tests.len(), "ids are unique");
        assert_eq!(v["builds"][0]["config_name"], "qemu-tcg-x86");
        assert_eq!(tests[0]["environment"]["misc"]["lane"], "qemu-tcg-x86");
        assert!(
            !d.to_json().contains("null"),
            "KCIDB allows no nulls: {}",
            d.to_json()
        );
    }

    /// Every document convtest writes — a passing reboot series, a crashed
    /// run, a matrix of two runs, a kill table with a mismatch — validates
    /// against the schema the `kcidb-io` package (PyPI) ships, in a venv
    /// under target/ made once (`pip install kcidb-io`).
    #[test]
    fn every_document_validates_with_kcidb_io() {
        use crate::mutants::lane::{LANES, Mutant, Section};
        use crate::mutants::table::{LaneTable, Row};
        use crate::verdict::Judgement;

        let raw = include_str!("../../tests/fixtures/x86_qemu_reboots2.ktap");
        let pass = sample(raw, Verdict::Pass, "");
        let crashed = sample(
            "KTAP version 1\n1..1\n    ok 1 boot.plan\n# convtest-crash: vector=14 pc=0x1234\n",
            Verdict::Fail,
            "the guest crashed: vector=14",
        );
        let mut run = Document::new("convtest", "run");
        run.add_run(&crashed, &crashed.lane);
        let mut matrix = Document::new("my_lab", "matrix");
        matrix.add_run(&pass, "nested-x86.debian-7_3");
        matrix.add_run(&crashed, "nested-x86.debian-6_1");

        let lane = LANES[0];
        let tests = ["conv.share_verify", "conv.rejects"];
        let log = |a: bool, b: bool| {
            let text = format!(
                "KTAP version 1\n1..1\n    # Subtest: conv\n    {} 1 conv.share_verify\n    {} 2 conv.rejects\n",
                if a { "ok" } else { "not ok" },
                if b { "ok" } else { "not ok" }
            );
            crate::ktap::parse_all(text.as_bytes())
        };
        let judged = |verdict| Judgement {
            verdict,
            reason: String::new(),
        };
        let rows = vec![
            Row::new(
                &lane,
                Section::Conv,
                Mutant::Clean,
                &tests,
                &log(true, true),
                &judged(Verdict::Pass),
                1,
            ),
            Row::new(
                &lane,
                Section::Conv,
                Mutant::Vmm(convtest_vmm::config::VmmFault::Deny),
                &tests,
                &log(true, true),
                &judged(Verdict::Pass),
                1,
            ),
        ];
        let tables = [LaneTable::new(&lane, Section::Conv, &tests, rows)];
        let mut mutants = Document::new("convtest", "mutants");
        mutants.add_mutants(&tables, |_| "x86_64".into());
        let statuses: Vec<&str> = mutants.tests.iter().map(|t| t.status).collect();
        assert!(
            statuses.contains(&"FAIL"),
            "the unnoticed deny is a FAIL: {statuses:?}"
        );

        let python = kcidb_python();
        for (what, doc) in [("run", &run), ("matrix", &matrix), ("mutants", &mutants)] {
            let out = std::process::Command::new(&python)
                .args([
                    "-c",
                    "import json, sys, kcidb_io\n\
                     kcidb_io.schema.LATEST.validate_exactly(json.load(sys.stdin))\n\
                     print(kcidb_io.schema.LATEST.major, kcidb_io.schema.LATEST.minor)",
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(doc.to_json().as_bytes())?;
                    child.wait_with_output()
                })
                .expect("the venv's python runs");
            assert!(
                out.status.success(),
                "{what}: kcidb-io rejects it: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                doc.to_json()
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                format!("{} {}", SCHEMA.0, SCHEMA.1),
                "{what}: written for the schema kcidb-io calls LATEST"
            );
        }
    }

    /// A python with `kcidb-io`: the venv under target/, made on first use.
    fn kcidb_python() -> std::path::PathBuf {
        let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kcidb-venv");
        let python = venv.join("bin/python");
        let have = |p: &std::path::Path| {
            std::process::Command::new(p)
                .args(["-c", "import kcidb_io"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if have(&python) {
            return python;
        }
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.output().expect("spawns");
            assert!(
                out.status.success(),
                "making the kcidb-io venv failed ({cmd:?}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv));
        run(std::process::Command::new(venv.join("bin/pip")).args(["install", "-q", "kcidb-io"]));
        assert!(have(&python), "kcidb-io did not import after pip install");
        python
    }
}
