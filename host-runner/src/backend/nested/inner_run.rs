//! The inner runs an L1 boot carries out, one `convtest vmm` each: their
//! labels, argv and time limits, checked before anything is built, and the
//! outer timeout that covers them all.

use crate::error::Error;
use convtest_proto::l1::runs::valid_label;
use std::collections::HashSet;
use std::ffi::OsString;
use std::time::Duration;

/// Added to each run's limit in the outer timeout: /init's spawning,
/// killing and reaping between the limits, under TCG.
pub const RUN_SLACK: Duration = Duration::from_secs(2);

/// One inner `convtest vmm` run.
#[derive(Clone, Debug)]
pub struct InnerRun {
    /// Names the run on its run_begin / run_end lines: 1–64 of
    /// `A-Z a-z 0-9 . _ -`, unique in the list.
    pub label: String,
    /// The `convtest vmm …` argv (first element `vmm`), e.g. from
    /// `backend::vmm::vmm_args` with `convtest_proto::l1::PAYLOAD` as the kernel.
    pub vmm_args: Vec<OsString>,
    /// /init kills the inner VMM this long after starting it; whole
    /// seconds, rounded up.
    pub limit: Duration,
}

/// The outer QEMU's timeout for `runs`: `l1_allowance` (the L1's boot,
/// module loading and power-off) plus each run's limit in whole seconds
/// plus [`RUN_SLACK`]. Runs are sequential, so no run's limit can push the
/// L1 past it unless the L1 itself is slower than its allowance.
pub fn outer_timeout(l1_allowance: Duration, runs: &[InnerRun]) -> Duration {
    runs.iter().fold(l1_allowance, |sum, r| {
        sum.saturating_add(Duration::from_secs(limit_secs(r.limit)))
            .saturating_add(RUN_SLACK)
    })
}

/// The limit /init keeps: whole seconds, rounded up, at least one.
pub fn limit_secs(limit: Duration) -> u64 {
    let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    secs.max(1)
}

/// Refuses a run list /init could not carry out as asked.
pub fn check(runs: &[InnerRun]) -> Result<(), Error> {
    if runs.is_empty() {
        return Err(Error::BadRunList {
            what: "an L1 needs at least one inner run".into(),
        });
    }
    let mut labels = HashSet::new();
    for r in runs {
        if !valid_label(&r.label) {
            return Err(Error::BadRunList {
                what: format!(
                    "inner run label {:?}: use 1 to 64 of A-Z a-z 0-9 . _ -",
                    r.label
                ),
            });
        }
        if !labels.insert(r.label.as_str()) {
            return Err(Error::BadRunList {
                what: format!(
                    "inner run label {:?} is used twice; each run's console is found by its label",
                    r.label
                ),
            });
        }
        if r.limit.is_zero() {
            return Err(Error::BadRunList {
                what: format!("inner run {:?} has a zero time limit", r.label),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, limit_ms: u64) -> InnerRun {
        InnerRun {
            label: label.into(),
            vmm_args: vec!["vmm".into()],
            limit: Duration::from_millis(limit_ms),
        }
    }

    #[test]
    fn the_outer_timeout_covers_the_l1_and_every_limit() {
        let runs = [run("a", 30_000), run("b", 1), run("c", 59_500)];
        assert_eq!(limit_secs(Duration::from_millis(1)), 1);
        assert_eq!(limit_secs(Duration::from_secs(60)), 60);
        assert_eq!(
            outer_timeout(Duration::from_secs(120), &runs),
            Duration::from_secs(120 + 30 + 1 + 60) + 3 * RUN_SLACK
        );
        assert_eq!(
            outer_timeout(Duration::MAX, &runs),
            Duration::MAX,
            "saturates"
        );
    }

    #[test]
    fn run_lists_the_l1_cannot_carry_out_are_refused() {
        assert!(check(&[run("clean", 1000), run("vmm-ignore", 1000)]).is_ok());
        for bad in [
            vec![],
            vec![run("a b", 1000)],
            vec![run("", 1000)],
            vec![run("same", 1000), run("same", 1000)],
            vec![run("zero", 0)],
        ] {
            assert!(
                matches!(check(&bad), Err(Error::BadRunList { .. })),
                "{:?}",
                bad.iter().map(|r| &r.label).collect::<Vec<_>>()
            );
        }
    }
}
