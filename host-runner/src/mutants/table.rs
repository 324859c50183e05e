//! The kill table of one lane's section: what each run showed for each of
//! the section's tests, held against the expected table, and the findings a reader needs first
//! (tests nothing killed, mutants nothing noticed, cells that differ).

use super::expected;
use super::lane::{Lane, Mutant, Section};
use crate::ktap::Log;
use crate::verdict::{Judgement, Verdict};
use convtest_proto::ktap::Outcome;
use serde::Serialize;
use std::fmt::Write;

/// One cell: what a test did in one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    /// Passed.
    Green,
    /// Failed: the mutant was noticed.
    Red,
    Skip,
    /// Not reported (the run crashed, hung or ended early).
    Missing,
}

impl Cell {
    /// Over every boot that reported the test: red if any failed, or
    /// printed a line only the host side may print (the host's word forged
    /// is no pass, whatever the guest reported).
    fn of(log: &Log, test: &str) -> Cell {
        let results: Vec<Outcome> = log
            .tests
            .iter()
            .filter(|t| t.name == test)
            .map(|t| {
                if t.forged.is_empty() {
                    t.result
                } else {
                    Outcome::Fail
                }
            })
            .collect();
        if results.is_empty() {
            Cell::Missing
        } else if results.contains(&Outcome::Fail) {
            Cell::Red
        } else if results.contains(&Outcome::Skip) {
            Cell::Skip
        } else {
            Cell::Green
        }
    }

    /// The word the JSON uses (serde's lowercase name).
    pub fn word(self) -> &'static str {
        match self {
            Cell::Green => "green",
            Cell::Red => "red",
            Cell::Skip => "skip",
            Cell::Missing => "missing",
        }
    }

    fn glyph(self) -> char {
        match self {
            Cell::Green => '.',
            Cell::Red => 'X',
            Cell::Skip => 's',
            Cell::Missing => '-',
        }
    }
}

/// One run of the lane, judged.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub mutant: String,
    pub kind: &'static str,
    pub verdict: Verdict,
    pub reason: String,
    /// `conv.*` name → cell, in catalog order (a JSON object).
    #[serde(serialize_with = "ordered_map")]
    pub cells: Vec<(String, Cell)>,
    pub expected_red: Vec<String>,
    pub observed_red: Vec<String>,
    /// Observed equals expected: exactly the expected tests red, all others green.
    pub matches: bool,
    pub wall_ms: u64,
}

impl Row {
    pub fn new(
        lane: &Lane,
        section: Section,
        mutant: Mutant,
        tests: &[&str],
        log: &Log,
        judgement: &Judgement,
        wall_ms: u64,
    ) -> Row {
        let cells: Vec<(String, Cell)> = tests
            .iter()
            .map(|t| (t.to_string(), Cell::of(log, t)))
            .collect();
        let expected_red: Vec<String> = expected::red(lane.platform, section, mutant)
            .unwrap_or_default()
            .iter()
            .map(|t| expected::full_name(t))
            .collect();
        let observed_red: Vec<String> = cells
            .iter()
            .filter(|(_, c)| *c == Cell::Red)
            .map(|(t, _)| t.clone())
            .collect();
        let matches = cells.iter().all(|(t, c)| {
            let want = if expected_red.contains(t) {
                Cell::Red
            } else {
                Cell::Green
            };
            *c == want
        });
        Row {
            mutant: mutant.to_string(),
            kind: mutant.kind(),
            verdict: judgement.verdict,
            reason: judgement.reason.clone(),
            cells,
            expected_red,
            observed_red,
            matches,
            wall_ms,
        }
    }
}

/// A mutant the lane cannot run, and why.
#[derive(Clone, Debug, Serialize)]
pub struct NotApplicable {
    pub mutant: String,
    pub why: &'static str,
}

/// One section of a lane.
#[derive(Clone, Debug, Serialize)]
pub struct LaneTable {
    pub lane: &'static str,
    /// `conv` (single boots), `reboot` (two-boot runs) or `smp` (two vCPUs).
    pub section: &'static str,
    pub platform: &'static str,
    pub tests: Vec<String>,
    pub rows: Vec<Row>,
    pub not_applicable: Vec<NotApplicable>,
    /// Tests no mutant turned red.
    pub unkilled_tests: Vec<String>,
    /// Mutants no test noticed.
    pub unkilled_mutants: Vec<String>,
    /// `mutant test: expected X, observed Y`.
    pub mismatches: Vec<String>,
    /// Why the lane could not be judged at all (L1 failed to boot, …).
    pub error: Option<String>,
    /// The clean run passed, every mutant and test was killed, and the
    /// observed table equals the expected one.
    pub ok: bool,
    /// Facts of the clean run (`vmm.*`, `l1.*`; a JSON object).
    #[serde(serialize_with = "ordered_map")]
    pub facts: Vec<(String, String)>,
    pub wall_ms: u64,
}

impl LaneTable {
    pub fn new(lane: &Lane, section: Section, tests: &[&str], rows: Vec<Row>) -> LaneTable {
        let all = match section {
            Section::Conv => Mutant::all(),
            Section::Reboot | Section::Smp => Vec::new(),
        };
        let not_applicable = all
            .into_iter()
            .filter_map(|m| {
                m.not_applicable(lane.platform).map(|why| NotApplicable {
                    mutant: m.to_string(),
                    why,
                })
            })
            .collect();
        // Controls (and the clean run) must stay green: they kill nothing.
        let mutants = || {
            rows.iter()
                .filter(|r| r.kind != "clean" && r.kind != "control")
        };
        let unkilled_tests = tests
            .iter()
            .filter(|t| !mutants().any(|r| r.observed_red.iter().any(|o| o == *t)))
            .map(|t| t.to_string())
            .collect();
        let unkilled_mutants = mutants()
            .filter(|r| r.observed_red.is_empty() && r.verdict == Verdict::Pass)
            .map(|r| r.mutant.clone())
            .collect();
        let mut mismatches = Vec::new();
        for r in &rows {
            for (t, c) in &r.cells {
                let want = if r.expected_red.contains(t) {
                    Cell::Red
                } else {
                    Cell::Green
                };
                if *c != want {
                    mismatches.push(format!(
                        "{} {t}: expected {}, observed {}",
                        r.mutant,
                        name(want),
                        name(*c)
                    ));
                }
            }
        }
        let clean_passed = rows
            .iter()
            .any(|r| r.kind == "clean" && r.verdict == Verdict::Pass)
            && rows
                .iter()
                .filter(|r| r.kind == "control")
                .all(|r| r.verdict == Verdict::Pass);
        let mut t = LaneTable {
            lane: lane.name,
            section: section.as_str(),
            platform: lane.platform.as_str(),
            tests: tests.iter().map(|t| t.to_string()).collect(),
            rows,
            not_applicable,
            unkilled_tests,
            unkilled_mutants,
            mismatches,
            error: None,
            ok: false,
            facts: Vec::new(),
            wall_ms: 0,
        };
        t.ok = clean_passed
            && t.unkilled_tests.is_empty()
            && t.unkilled_mutants.is_empty()
            && t.mismatches.is_empty();
        t
    }

    /// A lane that could not be run: never ok.
    pub fn failed(lane: &Lane, section: Section, tests: &[&str], why: String) -> LaneTable {
        let mut t = LaneTable::new(lane, section, tests, Vec::new());
        t.error = Some(why);
        t.ok = false;
        t
    }

    /// The table as a person reads it.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} [{}]: {}, {} run(s) in {:.1} s",
            self.lane,
            self.section,
            self.platform,
            self.rows.len(),
            self.wall_ms as f64 / 1000.0
        );
        if let Some(e) = &self.error {
            let _ = writeln!(s, "  LANE NOT RUN: {e}");
            return s;
        }
        let short: Vec<&str> = self
            .tests
            .iter()
            .map(|t| t.trim_start_matches("conv."))
            .collect();
        let width = self
            .rows
            .iter()
            .map(|r| r.mutant.len())
            .max()
            .unwrap_or(6)
            .max("mutant".len());
        let _ = write!(s, "  {:<width$}", "mutant");
        for t in &short {
            let _ = write!(s, " {t:>w$}", w = t.len().max(2));
        }
        s.push_str("  verdict  expected\n");
        for r in &self.rows {
            let _ = write!(s, "  {:<width$}", r.mutant);
            for ((_, c), t) in r.cells.iter().zip(&short) {
                let wrong = r.expected_red.iter().any(|e| e.ends_with(*t)) != (*c == Cell::Red)
                    || matches!(c, Cell::Skip | Cell::Missing);
                let mark = format!("{}{}", c.glyph(), if wrong { "!" } else { "" });
                let _ = write!(s, " {mark:>w$}", w = t.len().max(2));
            }
            let _ = writeln!(
                s,
                "  {:<7}  {}",
                r.verdict.label().to_lowercase(),
                if r.matches { "as expected" } else { "DIFFERS" }
            );
        }
        s.push_str("  X = red (the test noticed)  . = green  s = skip  - = not reported  ! = not what the expected table says\n");
        let mut reasons: Vec<&str> = self.not_applicable.iter().map(|n| n.why).collect();
        reasons.dedup();
        for why in reasons {
            let which: Vec<&str> = self
                .not_applicable
                .iter()
                .filter(|n| n.why == why)
                .map(|n| n.mutant.as_str())
                .collect();
            let _ = writeln!(s, "  not run: {}: {why}", which.join(", "));
        }
        for (what, list) in [
            ("tests no mutant turned red", &self.unkilled_tests),
            ("mutants no test noticed", &self.unkilled_mutants),
            ("differences from the expected table", &self.mismatches),
        ] {
            if !list.is_empty() {
                let _ = writeln!(s, "  {what}: {}", list.join("; "));
            }
        }
        if !self
            .rows
            .iter()
            .any(|r| r.kind == "clean" && r.verdict == Verdict::Pass)
        {
            let clean = self.rows.iter().find(|r| r.kind == "clean");
            let _ = writeln!(
                s,
                "  the clean run did not pass: {}",
                clean.map_or("it did not run", |r| r.reason.as_str())
            );
        }
        let _ = writeln!(
            s,
            "  {}",
            if self.ok {
                "OK: every test turned red under some mutant, every mutant was noticed, as expected"
            } else {
                "FAILED"
            }
        );
        s
    }
}

/// Pairs as a JSON object, keys in the order given.
fn ordered_map<S: serde::Serializer, V: Serialize>(
    pairs: &[(String, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

fn name(c: Cell) -> &'static str {
    match c {
        Cell::Green => "green",
        Cell::Red => "red",
        Cell::Skip => "skip",
        Cell::Missing => "not reported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap::parse_all;
    use crate::mutants::lane::LANES;
    use convtest_vmm::config::VmmFault;

    fn log(results: &[(&str, bool)]) -> Log {
        let mut text = String::from("KTAP version 1\n1..1\n    # Subtest: conv\n");
        for (i, (t, pass)) in results.iter().enumerate() {
            let status = if *pass { "ok" } else { "not ok" };
            text.push_str(&format!("    {status} {} {t}\n", i + 1));
        }
        parse_all(text.as_bytes())
    }

    fn judged(v: Verdict) -> Judgement {
        Judgement {
            verdict: v,
            reason: String::new(),
        }
    }

    #[test]
    fn a_table_that_matches_is_ok_and_a_surprise_is_named() {
        let lane = LANES[0];
        let tests = ["conv.share_verify", "conv.rejects"];
        let clean = Row::new(
            &lane,
            Section::Conv,
            Mutant::Clean,
            &tests,
            &log(&[("conv.share_verify", true), ("conv.rejects", true)]),
            &judged(Verdict::Pass),
            1,
        );
        assert!(clean.matches);
        let skip_unshare = Row::new(
            &lane,
            Section::Conv,
            Mutant::Guest(convtest_proto::plan::GuestFault::SkipUnshare),
            &tests,
            &log(&[("conv.share_verify", false), ("conv.rejects", false)]),
            &judged(Verdict::Fail),
            1,
        );
        assert!(skip_unshare.matches, "{skip_unshare:?}");
        let ignore = Row::new(
            &lane,
            Section::Conv,
            Mutant::Vmm(VmmFault::Ignore),
            &tests,
            &log(&[("conv.share_verify", false), ("conv.rejects", true)]),
            &judged(Verdict::Fail),
            1,
        );
        let t = LaneTable::new(
            &lane,
            Section::Conv,
            &tests,
            vec![clean.clone(), skip_unshare, ignore],
        );
        assert!(t.ok, "{}", t.render());
        // A mutant nobody noticed, where the table expected a kill.
        let silent = Row::new(
            &lane,
            Section::Conv,
            Mutant::Vmm(VmmFault::Deny),
            &tests,
            &log(&[("conv.share_verify", true), ("conv.rejects", true)]),
            &judged(Verdict::Pass),
            1,
        );
        assert!(!silent.matches);
        let t = LaneTable::new(&lane, Section::Conv, &tests, vec![clean, silent]);
        assert!(!t.ok);
        assert_eq!(t.unkilled_mutants, ["vmm:deny"]);
        assert_eq!(t.unkilled_tests, tests);
        let text = t.render();
        assert!(text.contains("mutants no test noticed: vmm:deny"), "{text}");
        assert!(
            text.contains("vmm:deny conv.share_verify: expected red, observed green"),
            "{text}"
        );
        assert!(text.contains("FAILED"), "{text}");
    }

    #[test]
    fn a_missing_result_is_a_difference() {
        let lane = LANES[0];
        let tests = ["conv.share_verify"];
        let r = Row::new(
            &lane,
            Section::Conv,
            Mutant::Clean,
            &tests,
            &log(&[]),
            &judged(Verdict::Fail),
            1,
        );
        assert!(!r.matches);
        let t = LaneTable::new(&lane, Section::Conv, &tests, vec![r]);
        assert!(
            t.mismatches
                .iter()
                .any(|m| m == "clean conv.share_verify: expected green, observed not reported"),
            "{:?}",
            t.mismatches
        );
    }
}
