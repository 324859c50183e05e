//! What was read from the console: the tests with their results, the
//! boots, the guest's markers and measurements, the VMM layers' facts.

use convtest_proto::hostcheck::{AnswerCounts, Evidence};
use convtest_proto::ktap::Outcome;
use serde::{Serialize, Serializer};

/// One result line with what the guest said about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestResult {
    /// `<suite>.<case>` for cases, the suite name for suites.
    pub name: String,
    #[serde(serialize_with = "outcome_name")]
    pub result: Outcome,
    /// Text after `# SKIP` or `#`; empty when the guest gave none.
    pub reason: String,
    /// Diagnostic lines (`# ...`) printed at the test's depth just before it,
    /// with the host's answers to its checks (`host: ok enforced …`).
    pub diagnostics: Vec<String>,
    /// What decided the host's answers to this test's checks, the weakest
    /// of them (`None`: the test asked the host nothing). From the VMM's own
    /// `# convtest-host:` lines, not from what the guest says.
    #[serde(serialize_with = "evidence_name")]
    pub evidence: Option<Evidence>,
    /// Lines the guest printed during this test that only a host layer may
    /// print (the relay passed them on as `# convtest-forged:`): a test
    /// that forges the host's word is red whatever it reported.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forged: Vec<String>,
    /// Which boot of the run printed it (0 = the first).
    pub boot: usize,
    #[serde(skip)]
    pub number: u64,
    #[serde(skip)]
    pub depth: usize,
}

/// `pass`, `fail`, `skip`.
fn outcome_name<S: Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Skip => "skip",
    })
}

fn evidence_name<S: Serializer>(e: &Option<Evidence>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(e.as_str()),
        None => s.serialize_none(),
    }
}

/// A guest line that would have read as a host layer's: the relay between
/// guest and runner passed it on behind `# convtest-forged:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Forged {
    /// The line as the guest printed it.
    pub line: String,
    /// Which boot printed it.
    pub boot: usize,
    /// The test it came in (`None`: outside any test's output).
    pub test: Option<String>,
}

/// `# convtest-done: pass= fail= skip=` as the guest counted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
}

impl Counts {
    pub fn of(tests: &[TestResult]) -> Counts {
        let n = |o: Outcome| tests.iter().filter(|t| t.result == o).count();
        Counts {
            pass: n(Outcome::Pass),
            fail: n(Outcome::Fail),
            skip: n(Outcome::Skip),
        }
    }
}

/// The done marker: counts when well-formed, the raw text always.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub counts: Option<Counts>,
    pub raw: String,
}

/// A `# bench:` measurement; fields absent or unparseable stay `None`.
/// `ns_*` are absent when the guest did not know its counter frequency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bench {
    pub op: String,
    pub size_bytes: Option<u64>,
    pub pages: Option<u64>,
    pub iters: Option<u64>,
    pub ns_p50: Option<u64>,
    pub ns_p99: Option<u64>,
    pub ns_min: Option<u64>,
    pub cycles_p50: Option<u64>,
    pub cycles_p99: Option<u64>,
    pub cycles_min: Option<u64>,
    /// The lane that measured it (set by the runner, `None` until then).
    pub lane: Option<String>,
    /// The test that printed it (the result line that followed it at its
    /// depth) and that test's boot; `None` when no test result followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<usize>,
}

/// One boot's part of the console (a reboot series has several).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootLog {
    pub header: Vec<(String, String)>,
    /// `Log::tests[first_test..]` up to the next boot's `first_test`.
    pub first_test: usize,
    pub done: Option<Done>,
    pub crash: Option<String>,
    /// The guest's `# reset-to-private: …` diagnostic, after the prefix.
    pub reset: Option<String>,
}

/// The value of `key` among header pairs.
fn value_of<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl BootLog {
    pub fn header_value(&self, key: &str) -> Option<&str> {
        value_of(&self.header, key)
    }

    /// The index the guest gave itself (header `boot=`).
    pub fn index(&self) -> Option<u32> {
        self.header_value("boot").and_then(|v| v.parse().ok())
    }
}

/// Everything read so far; complete once [`Parser::finish`] ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Log {
    /// Per boot, in order (one per top-level `KTAP version 1`; more than
    /// one: a reboot).
    pub boot_logs: Vec<BootLog>,
    /// The own VMM's `reset_boot=…` fact lines, one per reset it served.
    pub vmm_resets: Vec<Vec<(String, String)>>,
    pub header: Vec<(String, String)>,
    /// Leaf results in arrival order: the numbers verdicts and reports use.
    pub tests: Vec<TestResult>,
    pub suites: Vec<TestResult>,
    /// Top-level `# ...` diagnostics other than the markers below.
    pub diagnostics: Vec<String>,
    pub crash: Option<String>,
    pub done: Option<Done>,
    pub bench: Vec<Bench>,
    /// Clean lines from the first `KTAP version 1` on (the `--ktap` file).
    pub ktap_lines: Vec<String>,
    /// `# convtest-vmm: k=v …` facts from convtest's own VMM, merged in
    /// arrival order (a later value for a key replaces the earlier one).
    pub vmm: Vec<(String, String)>,
    /// `# convtest-l1: k=v …` facts from the nested lane's L1 /init.
    pub l1: Vec<(String, String)>,
    /// The host's answers (the VMM's `# convtest-host:` copies) by kind.
    pub host_answers: AnswerCounts,
    /// `# convtest-host:` lines that name no kind or no readable ack.
    pub malformed_host_lines: Vec<String>,
    /// Guest lines the relay marked forged, in order.
    pub forged: Vec<Forged>,
    /// Last non-empty console line, firmware noise included.
    pub last_line: Option<String>,
    /// The console ended in the middle of a line.
    pub truncated: bool,
}

impl Log {
    pub fn header_value(&self, key: &str) -> Option<&str> {
        value_of(&self.header, key)
    }

    /// The own VMM's fact `key` (the first, where a key repeats).
    pub fn vmm_fact(&self, key: &str) -> Option<&str> {
        value_of(&self.vmm, key)
    }

    /// The nested L1's fact `key` (the first, where a key repeats).
    pub fn l1_fact(&self, key: &str) -> Option<&str> {
        value_of(&self.l1, key)
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.tests.iter().filter(|t| t.result == outcome).count()
    }

    pub fn counts(&self) -> Counts {
        Counts::of(&self.tests)
    }

    /// The tests boot `i` printed.
    pub fn boot_tests(&self, i: usize) -> &[TestResult] {
        let Some(b) = self.boot_logs.get(i) else {
            return &[];
        };
        let end = self
            .boot_logs
            .get(i + 1)
            .map_or(self.tests.len(), |n| n.first_test);
        &self.tests[b.first_test.min(end)..end]
    }

    /// The VMM's reset facts for the reset that started boot `index`.
    pub fn vmm_reset(&self, index: u32) -> Option<&[(String, String)]> {
        self.vmm_resets
            .iter()
            .find(|f| {
                f.iter()
                    .any(|(k, v)| k == convtest_proto::wire::BOOT_KEY && v.parse() == Ok(index))
            })
            .map(Vec::as_slice)
    }
}
