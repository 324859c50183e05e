//! Everything known about one run, and the writers that present it: JSON
//! (the stable machine contract), JUnit (CI dashboards), the saved KTAP and
//! the human summary table.

pub mod json;
pub mod junit;
pub mod kcidb;
pub mod ktap;
pub mod summary;

use crate::ktap::Log;
use crate::verdict::Judgement;
use convtest_proto::hostcheck::Evidence;
use convtest_proto::ktap::Outcome;
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RunRecord {
    pub arch: String,
    pub backend: String,
    pub accel: String,
    pub boot: String,
    pub machine: String,
    /// The plan as sent to the guest.
    pub plan: String,
    pub judgement: Judgement,
    pub log: Log,
    /// The lane's name (`nested-x86-swprot`, …); see `run::lane_name`.
    pub lane: String,
    pub timing: Timing,
    /// The VMM command line, once one was built.
    pub command: Option<String>,
    pub exit_code: Option<i32>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Guest build (cargo, objcopy, disk image).
    pub build: Duration,
    /// VMM start to the guest's `KTAP version 1` line.
    pub first_line: Option<Duration>,
    /// VMM start to the end of the run.
    pub total: Duration,
}

/// How strong the run's host-checked claims are, from each test's evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LaneEvidence {
    /// `enforced` (every host check was decided by the kernel or
    /// hypervisor), `bookkeeping` (at least one rested on the VMM's own
    /// tracking), or `none` (no test asked the host anything).
    pub level: &'static str,
    /// Passing tests whose host checks were all enforced.
    pub enforced: Vec<String>,
    /// Passing tests whose host side rested on VMM bookkeeping.
    pub bookkeeping: Vec<String>,
}

impl LaneEvidence {
    pub fn of(log: &Log) -> Self {
        // The hostile traffic's host lines are junk on purpose: their
        // answers vouch for nothing about conversions.
        let vouching = || {
            log.tests
                .iter()
                .filter(|t| convtest_proto::catalog::vouches(&t.name))
        };
        let passed_with = |e: Evidence| -> Vec<String> {
            vouching()
                .filter(|t| t.result == Outcome::Pass && t.evidence == Some(e))
                .map(|t| t.name.clone())
                .collect()
        };
        let (enforced, bookkeeping) = (
            passed_with(Evidence::Enforced),
            passed_with(Evidence::Bookkeeping),
        );
        let any = |e| vouching().any(|t| t.evidence == Some(e));
        let level = if any(Evidence::Bookkeeping) {
            "bookkeeping"
        } else if any(Evidence::Enforced) {
            "enforced"
        } else {
            "none"
        };
        LaneEvidence {
            level,
            enforced,
            bookkeeping,
        }
    }
}

/// Whether any conversion test ran at all (passed or failed), and if not why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conversions {
    pub exercised: bool,
    /// Why none ran: the first SKIP reason of a test that converts, or that
    /// none was selected.
    pub why: Option<String>,
}

impl Conversions {
    pub fn of(log: &Log) -> Self {
        let conv: Vec<_> = log
            .tests
            .iter()
            .filter(|t| convtest_proto::catalog::converts(&t.name))
            .collect();
        // A guest without a converter converted nothing, whatever passed
        // (reboot.leave_dirty passes with private canaries only).
        let converter = log.header_value("converter") != Some("none");
        let exercised = converter && conv.iter().any(|t| t.result != Outcome::Skip);
        let why = (!exercised).then(|| {
            match conv
                .iter()
                .find(|t| t.result == Outcome::Skip)
                .or(conv.first())
            {
                Some(t) if !converter && t.result != Outcome::Skip => log
                    .diagnostics
                    .iter()
                    .find_map(|d| d.strip_prefix("probe: "))
                    .unwrap_or("the guest found no converter")
                    .to_string(),
                Some(t) => t.reason.clone(),
                None => "no test that converts memory reported a result".to_string(),
            }
        });
        Conversions { exercised, why }
    }
}

/// Writes `contents` to `path`, naming the path on failure.
pub fn write_file(path: &std::path::Path, contents: &[u8]) -> Result<(), crate::error::Error> {
    std::fs::write(path, contents).map_err(|e| crate::error::Error::io("writing", path, e))
}

/// A record around a recorded console, for the writers' tests.
#[cfg(test)]
pub(crate) fn sample(text: &str, verdict: crate::verdict::Verdict, reason: &str) -> RunRecord {
    RunRecord {
        arch: "x86_64".into(),
        backend: "qemu".into(),
        accel: "tcg".into(),
        boot: "pvh".into(),
        machine: "microvm".into(),
        plan: "tests=*".into(),
        judgement: Judgement {
            verdict,
            reason: reason.into(),
        },
        log: crate::ktap::parse_all(text.as_bytes()),
        lane: "qemu-tcg-x86".into(),
        timing: Timing {
            build: Duration::from_millis(5),
            first_line: Some(Duration::from_millis(412)),
            total: Duration::from_millis(1234),
        },
        command: Some("qemu-system-x86_64 -M microvm".into()),
        exit_code: Some(33),
    }
}
