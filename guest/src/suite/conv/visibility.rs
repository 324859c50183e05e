//! What the host sees across a conversion: `conv.share_verify` (a shared
//! page is the same page on both sides) and `conv.unshare_private` (after an
//! unshare the host sees nothing the guest writes — with positive controls
//! on a still-shared page, so a host that sees nothing at all cannot pass).
//! Every conversion either makes is confirmed on the platform (harness
//! `confirm`): the host's checks, and pKVM's own answer per granule.

use super::harness::{T, run_steps};
use super::window::{SLOT_CONTROL, SLOT_SHARE, SLOT_UNSHARE};
use crate::hostcheck::HostError;
use crate::report::tdiag;
use crate::suite::verdict::Verdict;
use alloc::format;
use alloc::string::{String, ToString};
use convtest_proto::hostcheck::Request;
use convtest_proto::tracker::Target;

impl T<'_> {
    pub(super) fn share_verify(&mut self) -> Verdict {
        if !self.plan.host {
            return Verdict::Skip(HostError::Off.to_string());
        }
        run_steps(|| {
            let p = self.win.slot(SLOT_SHARE);
            let seed = self.seed(p.start);
            self.share(p)?;
            // Written after the share: the conversion may clear the page.
            self.fill(p, seed);
            let detail = self.host(
                Request::Verify { range: p, seed },
                "the host must see the guest's pattern in the shared page",
            )?;
            self.unshare(p)?;
            let back = self.confirm(
                p,
                Target::Private,
                "after the unshare the platform must hold the page private",
            )?;
            tdiag!("shared {p}: host says: {detail}");
            tdiag!("unshared again: {back}");
            Ok(String::new())
        })
    }

    pub(super) fn unshare_private(&mut self) -> Verdict {
        if !self.plan.host {
            return Verdict::Skip(HostError::Off.to_string());
        }
        run_steps(|| {
            let p = self.win.slot(SLOT_UNSHARE);
            let control = self.win.slot(SLOT_CONTROL);
            let seed = self.seed(p.start);
            self.share(p)?;
            self.share(control)?;
            self.fill(p, seed);
            // Without this the checks below could pass because the host
            // never saw this page at all.
            self.host(
                Request::Verify { range: p, seed },
                "while shared the host must see the page",
            )?;
            self.unshare(p)?;
            let canary = self.canary(p.start);
            self.fill_const(p, canary);
            self.fill(control, seed);
            let scan = self.host(
                Request::Scan { canary },
                "a canary written after unshare must be invisible to the host",
            )?;
            let noread = self.host(
                Request::NoRead { range: p, canary },
                "the host must not see what the guest wrote into the unshared page",
            )?;
            if let Some(probed) =
                self.probe_states(p, Target::Private, "the unshared page must be private")?
            {
                tdiag!("{probed}");
            }
            // Positive controls: the same canary in a page that is still
            // shared must be found by the scan and seen by the probe, or
            // their answers above proved nothing.
            self.fill_const(control, canary);
            let found = self.host_sees(
                Request::Scan { canary },
                "control: the scan must find the canary in the still-shared page",
            )?;
            let seen = self.host_sees(
                Request::NoRead {
                    range: control,
                    canary,
                },
                "control: the probe must see the canary in the still-shared page",
            )?;
            self.unshare(control)?;
            let back = self.confirm(
                control,
                Target::Private,
                "after its unshare the platform must hold the control page private",
            )?;
            tdiag!("control {control}: scan: {found}; probe: {seen}; unshared again: {back}");
            Ok(format!(
                "canary {canary:#x} in unshared {p}: scan: {scan}; probe: {noread}"
            ))
        })
    }
}
