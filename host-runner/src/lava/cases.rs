//! A run's JSON report as LAVA test cases, in the form LAVA's test shell
//! records them: `lava-test-case NAME --result pass|fail|skip [--measurement
//! N --units U]`, which signals `<LAVA_SIGNAL_TESTCASE …>` on the console
//! for the dispatcher to log as a result of the test definition. LAVA (to
//! 2026 at least) has no KTAP parser of its own; this is its documented way
//! in for a test that reports itself.
//!
//! - one case per convtest test, named as convtest names it (`conv.sizes`)
//!   with its result;
//! - one case per `# bench:` line of a test, `<test>.<op>.<size_bytes>`,
//!   with the test's result and the line's p50 as the measurement (`ns`;
//!   `cycles` when the guest did not know its counter frequency): LAVA
//!   charts a measurement per case name, so each series gets a stable one;
//! - a run of several boots puts each boot's cases in a test set `bootN`
//!   (`lava-test-set start bootN` … `stop`), LAVA's grouping within one
//!   definition: the same test in two boots is two results;
//! - last, `convtest`: the run's verdict (pass, or fail for fail and error).
//!
//! LAVA keeps a case name of at most 100 characters without whitespace
//! (`/` it turns into `_`): anything else is replaced by `_` here.

use serde::Deserialize;

/// The parts of the JSON report (report/json.rs) the cases come from.
#[derive(Debug, Deserialize)]
pub struct Report {
    pub verdict: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub tests: Vec<ReportTest>,
    #[serde(default)]
    pub boots: Vec<serde_json::Value>,
    #[serde(default)]
    pub bench: Vec<ReportBench>,
}

#[derive(Debug, Deserialize)]
pub struct ReportTest {
    pub name: String,
    pub result: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub boot: usize,
}

#[derive(Debug, Deserialize)]
pub struct ReportBench {
    pub op: String,
    pub size_bytes: Option<u64>,
    pub ns_p50: Option<u64>,
    pub cycles_p50: Option<u64>,
    pub test: Option<String>,
    pub boot: Option<usize>,
}

/// The run's own case: its verdict.
pub const VERDICT_CASE: &str = "convtest";
/// LAVA's limit on a case name.
const MAX_NAME: usize = 100;

/// One `lava-test-case` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The test set (`bootN`) when the run had several boots.
    pub set: Option<String>,
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub result: &'static str,
    /// The number as printed, and its units.
    pub measurement: Option<(u64, &'static str)>,
    /// What convtest said about a SKIP or a FAIL (shown beside the case).
    pub note: String,
}

impl Case {
    /// The `lava-test-case` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            self.name.clone(),
            "--result".to_string(),
            self.result.to_string(),
        ];
        if let Some((value, units)) = self.measurement {
            a.extend([
                "--measurement".to_string(),
                value.to_string(),
                "--units".to_string(),
                units.to_string(),
            ]);
        }
        a
    }
}

/// `pass` / `fail` / `skip` as LAVA spells them; anything else is a fail
/// (a report convtest did not write).
fn lava_result(result: &str) -> &'static str {
    match result {
        "pass" => "pass",
        "skip" => "skip",
        _ => "fail",
    }
}

/// A name LAVA keeps as given: no whitespace or `/`, at most 100 bytes.
pub fn case_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out.truncate(MAX_NAME);
    out
}

/// Every case of `report`, in the order they are signalled: each boot's
/// tests and their measurements, then the verdict.
pub fn cases(report: &Report) -> Vec<Case> {
    let boots = report
        .boots
        .len()
        .max(report.tests.iter().map(|t| t.boot + 1).max().unwrap_or(0));
    let set_of = |boot: usize| (boots > 1).then(|| format!("boot{boot}"));
    let mut out: Vec<Case> = Vec::new();
    let mut push = |mut case: Case| {
        // Two cases of one name in one set would be one result in LAVA.
        let base = case.name.clone();
        let mut n = 1;
        while out.iter().any(|c| c.set == case.set && c.name == case.name) {
            n += 1;
            case.name = case_name(&format!("{base}.{n}"));
        }
        out.push(case);
    };
    for t in &report.tests {
        let result = lava_result(&t.result);
        push(Case {
            set: set_of(t.boot),
            name: case_name(&t.name),
            result,
            measurement: None,
            note: t.reason.clone(),
        });
        for b in report
            .bench
            .iter()
            .filter(|b| b.test.as_deref() == Some(t.name.as_str()) && b.boot.unwrap_or(0) == t.boot)
        {
            let measurement = match (b.ns_p50, b.cycles_p50) {
                (Some(ns), _) if ns > 0 => (ns, "ns"),
                (_, Some(cycles)) => (cycles, "cycles"),
                (Some(ns), None) => (ns, "ns"),
                (None, None) => continue,
            };
            let size = b.size_bytes.map(|s| format!(".{s}")).unwrap_or_default();
            push(Case {
                set: set_of(t.boot),
                name: case_name(&format!("{}.{}{size}", t.name, b.op)),
                result,
                measurement: Some(measurement),
                note: String::new(),
            });
        }
    }
    push(Case {
        set: None,
        name: VERDICT_CASE.to_string(),
        result: if report.verdict == "pass" {
            "pass"
        } else {
            "fail"
        },
        measurement: None,
        note: report.reason.clone(),
    });
    out
}

/// The cases as the shell lines that record them (`lava-test-set` around
/// each boot's), as `convtest lava-cases --print` shows them.
pub fn script(cases: &[Case]) -> String {
    let mut out = String::new();
    let mut open: Option<&str> = None;
    for c in cases {
        if c.set.as_deref() != open {
            if open.is_some() {
                out.push_str("lava-test-set stop\n");
            }
            if let Some(set) = &c.set {
                out.push_str(&format!("lava-test-set start {set}\n"));
            }
            open = c.set.as_deref();
        }
        out.push_str("lava-test-case ");
        out.push_str(&c.args().join(" "));
        out.push('\n');
    }
    if open.is_some() {
        out.push_str("lava-test-set stop\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: &str) -> Report {
        serde_json::from_str(json).expect("report")
    }

    #[test]
    fn one_case_per_test_then_the_verdict() {
        let r = report(
            r#"{"verdict":"fail","reason":"conv.sizes failed","boots":[{}],
                "tests":[{"name":"boot.plan","result":"pass","reason":"","boot":0},
                         {"name":"conv.sizes","result":"fail","reason":"granule 3 still shared","boot":0},
                         {"name":"clock.frequency","result":"skip","reason":"no counter","boot":0}]}"#,
        );
        let c = cases(&r);
        let got: Vec<(&str, &str, Option<&str>)> = c
            .iter()
            .map(|c| (c.name.as_str(), c.result, c.set.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("boot.plan", "pass", None),
                ("conv.sizes", "fail", None),
                ("clock.frequency", "skip", None),
                ("convtest", "fail", None),
            ]
        );
        assert_eq!(c[2].note, "no counter");
        assert_eq!(c[3].note, "conv.sizes failed");
        assert_eq!(
            script(&c),
            "lava-test-case boot.plan --result pass\n\
             lava-test-case conv.sizes --result fail\n\
             lava-test-case clock.frequency --result skip\n\
             lava-test-case convtest --result fail\n"
        );
    }

    #[test]
    fn bench_lines_are_measurements_of_their_test() {
        let r = report(
            r#"{"verdict":"pass","boots":[{}],
                "tests":[{"name":"conv.cost","result":"pass","boot":0}],
                "bench":[{"op":"share_unshare","size_bytes":4096,"ns_p50":49694,"cycles_p50":49694,"test":"conv.cost","boot":0},
                         {"op":"noop_kvm_features","size_bytes":0,"ns_p50":3164,"test":"conv.cost","boot":0},
                         {"op":"share","size_bytes":4096,"ns_p50":null,"cycles_p50":900,"test":"conv.cost","boot":0},
                         {"op":"stray","ns_p50":1}]}"#,
        );
        let lines = script(&cases(&r));
        assert_eq!(
            lines,
            "lava-test-case conv.cost --result pass\n\
             lava-test-case conv.cost.share_unshare.4096 --result pass --measurement 49694 --units ns\n\
             lava-test-case conv.cost.noop_kvm_features.0 --result pass --measurement 3164 --units ns\n\
             lava-test-case conv.cost.share.4096 --result pass --measurement 900 --units cycles\n\
             lava-test-case convtest --result pass\n"
        );
    }

    #[test]
    fn several_boots_are_test_sets() {
        let r = report(
            r#"{"verdict":"pass","boots":[{},{}],
                "tests":[{"name":"conv.cost","result":"pass","boot":0},
                         {"name":"conv.cost","result":"pass","boot":1},
                         {"name":"reset.content","result":"pass","boot":1}],
                "bench":[{"op":"noop","size_bytes":0,"ns_p50":5,"test":"conv.cost","boot":1}]}"#,
        );
        assert_eq!(
            script(&cases(&r)),
            "lava-test-set start boot0\n\
             lava-test-case conv.cost --result pass\n\
             lava-test-set stop\n\
             lava-test-set start boot1\n\
             lava-test-case conv.cost --result pass\n\
             lava-test-case conv.cost.noop.0 --result pass --measurement 5 --units ns\n\
             lava-test-case reset.content --result pass\n\
             lava-test-set stop\n\
             lava-test-case convtest --result pass\n"
        );
    }

    #[test]
    fn names_are_what_lava_keeps_and_stay_unique() {
        assert_eq!(case_name("conv.sizes"), "conv.sizes");
        assert_eq!(case_name("a b/c\t"), "a_b_c_");
        assert_eq!(case_name(""), "_");
        assert_eq!(case_name(&"x".repeat(300)).len(), 100);
        let r = report(
            r#"{"verdict":"error","tests":[{"name":"a b","result":"pass"},{"name":"a/b","result":"weird"}]}"#,
        );
        let c = cases(&r);
        assert_eq!(
            c.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["a_b", "a_b.2", "convtest"]
        );
        assert_eq!(
            (c[1].result, c[2].result),
            ("fail", "fail"),
            "unknown result, error verdict"
        );
    }
}
