//! `conv.reset_private`: reset-to-private proven through the platform.
//!
//! The boot's reset ran before any test; on a fresh VM (the first boot)
//! nothing was dirty, so it proved nothing, and the test says so. To give
//! the reset something to prove within one boot, the test leaves the dirty
//! state a crashed OS would (a single granule and a 2 MiB-aligned 2 MiB
//! range shared, canaries in them), checks the host really sees it, runs the
//! firmware's reset again, and then asks the host: a canary written after
//! the reset must be invisible to it and the host must be refused the
//! pages (and pKVM must call every granule private). The tracker's word is
//! not evidence; the platform's is: every granule shared is confirmed
//! shared before the reset, too.

use super::expect;
use super::harness::{T, run_steps};
use super::window::SLOT_RESET;
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use convtest_proto::hostcheck::Request;
use convtest_proto::tracker::{PageState, Target};

impl T<'_> {
    pub(super) fn reset_private(&mut self) -> Verdict {
        if !self.plan.host {
            return Verdict::Skip(
                "plan has host=off: only the host can show the reset made the pages private"
                    .to_string(),
            );
        }
        run_steps(|| {
            self.describe_boot_reset();
            let dirty = [self.win.slot(SLOT_RESET), self.win.aligned_2m()];
            for &r in &dirty {
                self.share(r)?;
                let shared =
                    self.confirm(r, Target::Shared, "every dirty granule must be shared")?;
                tdiag!("dirty: {shared}");
            }
            let before = self.canary(SLOT_RESET);
            for &r in &dirty {
                self.fill_const(r, before);
            }
            // Without this, the 'invisible after the reset' below could pass
            // because the host never saw these pages at all.
            let seen = self.host_sees(
                Request::Scan { canary: before },
                "before the reset the host must see the canary in the shared dirty ranges",
            )?;
            let rep = self
                .conv
                .reset_to_private()
                .map_err(|e| fail!("the reset failed: {e}"))?;
            let after = self.canary(SLOT_RESET ^ 0x5a5a);
            for &r in &dirty {
                self.fill_const(r, after);
            }
            let scan = self.host(
                Request::Scan { canary: after },
                "after the reset a canary written to the formerly shared ranges must be invisible to the host",
            )?;
            let mut refused = Vec::new();
            for &r in &dirty {
                refused.push(self.host(
                    Request::NoRead {
                        range: r,
                        canary: after,
                    },
                    "after the reset the host must not see the formerly shared range",
                )?);
                if let Some(probed) = self.probe_states(
                    r,
                    Target::Private,
                    "after the reset every granule must be private",
                )? {
                    refused.push(probed);
                }
            }
            let ram = self.conv.ram();
            let needed = expect::reset_calls(self.conv.name(), &ram, &dirty, self.conv.granule());
            if let Some(n) = needed
                && rep.calls > n
            {
                return Err(fail!(
                    "the reset made {} calls ({}); {n} make private all that was shared",
                    rep.calls,
                    rep.method
                ));
            }
            if rep.unknown != 0 || self.conv.count(PageState::Unknown) != 0 {
                return Err(fail!(
                    "the reset left {} granule(s) of unknown state",
                    rep.unknown.max(self.conv.count(PageState::Unknown))
                ));
            }
            tdiag!("before the reset the host saw the canary: {seen}");
            tdiag!(
                "second reset: method={} ranges={} granules={} calls={} (at most {}) cycles={}",
                rep.method,
                rep.ranges,
                rep.pages,
                rep.calls,
                needed.map_or("?".to_string(), |n| format!("{n}")),
                rep.cycles
            );
            Ok(format!(
                "after the reset: scan: {scan}; {}",
                refused.join("; ")
            ))
        })
    }

    /// What the boot-time reset did, and why on a first boot it proves
    /// nothing by itself.
    fn describe_boot_reset(&self) {
        if let Some(Ok(rep)) = self.conv.boot_reset() {
            tdiag!(
                "boot reset: method={} ranges={} granules={} calls={} unknown={}",
                rep.method,
                rep.ranges,
                rep.pages,
                rep.calls,
                rep.unknown
            );
        }
        if self.plan.boot == 0 {
            tdiag!(
                "first boot of this VM (plan boot=0): nothing was dirty, so the boot reset had \
                 nothing to prove; this test makes dirty state and resets again"
            );
        }
    }
}
