//! Planned guest resets, shared by both VMMs: how many the plan allows, the
//! plan the next boot gets, and the fact line each reset prints.
//!
//! A reset the plan expects (`reboots=N` in the guest's command line, at
//! most N of them) starts the next boot in the same process; any other
//! reset ends the run as before ([`crate::end::GuestEnd::Reset`]), so the
//! runner can name an unplanned one. What the VMM does to memory is the
//! `--reset-policy`; the guest is told it (`reset=`) and checks what
//! survived against it, so a VMM that claims a policy and does not apply
//! it (`--vmm-fault no-reset`) is caught by the guest, not by the VMM.
//!
//! The fact line, one per reset, before the next boot's first byte:
//!
//! ```text
//! # convtest-vmm: reset_boot=1 reset_policy=keep reset_applied=yes reset_ns=8123 reset_pages=0
//! ```
//!
//! - `reset_boot`: the index of the boot that starts now (the first is 0);
//! - `reset_applied`: `yes`, or `no` under `--vmm-fault no-reset`;
//! - `reset_ns`: wall time from the reset exit to the next KVM_RUN (vCPU
//!   reset, memory policy, kernel and boot data reloaded);
//! - `reset_pages`: pages the policy made private (keep: 0);
//! - `reset_teardown_ns` (recreate only): closing the old VM and its memory.
//!
//! Any further `reset_*` facts (e.g. `reset_why`) are kept by the runner.

use super::facts::Facts;
use convtest_proto::plan::{Plan, ResetPolicy};
use convtest_proto::wire::BOOT_KEY;
use std::io::Write;

/// Counts the resets of one run against the plan's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reboots {
    planned: u32,
    done: u32,
    pub policy: ResetPolicy,
    /// `--vmm-fault no-reset`: claim the policy, apply none of it.
    pub no_reset: bool,
}

impl Reboots {
    pub fn new(cmdline: &str, policy: ResetPolicy, no_reset: bool) -> Self {
        Reboots {
            planned: Plan::parse(cmdline).plan.reboots,
            done: 0,
            policy,
            no_reset,
        }
    }

    /// On a guest reset: the index of the boot to start, or `None` when the
    /// plan has no more boots (the reset then ends the run).
    pub fn next_boot(&mut self) -> Option<u32> {
        (self.done < self.planned).then(|| {
            self.done += 1;
            self.done
        })
    }

    /// Whether the VMM really applies the policy at this reset.
    pub fn applies(&self) -> bool {
        !self.no_reset
    }
}

/// The plan a VMM gives its guest: the runner's, plus what only the VMM
/// knows (appended words override earlier ones, see `Plan::parse`).
/// `boot` is only added after a reset: a guest whose own boot record did
/// not survive the reset (private, recreate) learns its index from it.
pub fn guest_plan(base: &str, extra: &str, policy: ResetPolicy, boot: u32) -> String {
    let mut s = format!("{} {extra} reset={}", base.trim(), policy.as_str());
    if boot > 0 {
        s.push_str(&format!(" boot={boot}"));
    }
    s.trim_start().to_string()
}

/// What one reset did, for its fact line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResetDone {
    pub boot: u32,
    pub policy: Option<ResetPolicy>,
    pub applied: bool,
    pub ns: u128,
    pub pages: u64,
    pub teardown_ns: Option<u128>,
    /// Why the policy did less than its name says (one word list), if it did.
    pub why: Option<String>,
}

impl ResetDone {
    pub fn facts(&self) -> Facts {
        let mut f = Facts::default();
        f.add(BOOT_KEY, self.boot)
            .add("reset_policy", self.policy.map_or("-", |p| p.as_str()))
            .add("reset_applied", if self.applied { "yes" } else { "no" })
            .add("reset_ns", self.ns)
            .add("reset_pages", self.pages);
        if let Some(t) = self.teardown_ns {
            f.add("reset_teardown_ns", t);
        }
        if let Some(w) = &self.why {
            f.add("reset_why", w);
        }
        f
    }

    pub fn emit(&self, out: &mut dyn Write) {
        let _ = out.write_all(b"\n");
        self.facts().emit(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_planned_resets_start_a_boot() {
        let mut r = Reboots::new("tests=* reboots=2", ResetPolicy::Keep, false);
        assert_eq!(r.next_boot(), Some(1));
        assert_eq!(r.next_boot(), Some(2));
        assert_eq!(r.next_boot(), None);
        assert_eq!(
            Reboots::new("tests=*", ResetPolicy::Keep, false).next_boot(),
            None
        );
    }

    #[test]
    fn the_guest_plan_names_the_policy_and_later_boots_their_index() {
        let p = guest_plan(" tests=* ", "vmm=convtest", ResetPolicy::Private, 0);
        assert_eq!(p, "tests=* vmm=convtest reset=private");
        let p = guest_plan("tests=* boot=0", "vmm=convtest", ResetPolicy::Keep, 3);
        let plan = Plan::parse(&p).plan;
        assert_eq!((plan.boot, plan.reset), (3, Some(ResetPolicy::Keep)));
    }

    #[test]
    fn the_fact_line_has_the_documented_keys() {
        let d = ResetDone {
            boot: 1,
            policy: Some(ResetPolicy::Recreate),
            applied: true,
            ns: 5,
            pages: 7,
            teardown_ns: Some(3),
            why: None,
        };
        assert_eq!(
            d.facts().line(),
            "# convtest-vmm: reset_boot=1 reset_policy=recreate reset_applied=yes reset_ns=5 \
             reset_pages=7 reset_teardown_ns=3\n"
        );
    }
}
