//! The ABI itself: `conv.rejects` (malformed and out-of-state requests get
//! the documented refusal, and the page stays private) and `conv.sizes`
//! (ranges of several sizes are encoded as the ABI wants, converted whole
//! and seen whole by the host; every granule confirmed on the platform
//! after the share and after the unshare).
//! The expected answers and encodings come from `expect.rs`.

use super::expect::{self, Role, Want};
use super::harness::{T, run_steps};
use super::window::{SLOT_REJECTS, SLOT_SIZES};
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::hostcheck::Request;
use convtest_proto::tracker::{PageState, Target};

impl T<'_> {
    pub(super) fn rejects(&mut self) -> Verdict {
        run_steps(|| {
            let p = self.win.slot(SLOT_REJECTS);
            let ram_end = self.conv.ram().iter().map(|r| r.end).max().unwrap_or(0);
            let abi = self.conv.name();
            let Some(steps) = expect::rejections(abi, self.plan.vmm, p, ram_end) else {
                return Err(fail!("the suite has no rejection table for {abi}"));
            };
            let before = self.conv.count(PageState::Shared);
            let (mut wrong, mut judged) = (Vec::new(), 0);
            for s in &steps {
                let Ok(got) = self.conv.raw(s.call) else {
                    return Err(fail!("{abi} cannot issue {} (another ABI's call)", s.call));
                };
                let verdict = match s.want {
                    Want::Code(w) if w == got => "as expected",
                    Want::Code(_) => "WRONG",
                    Want::Unjudged => "not judged: the plan names no VMM whose policy is known",
                };
                let want = match s.want {
                    Want::Code(w) => format!("{w}"),
                    Want::Unjudged => String::from("?"),
                };
                tdiag!(
                    "{}{}: {} -> {got} (expected {want} from {}): {verdict}",
                    match s.role {
                        Role::Setup => "setup: ",
                        Role::Cleanup => "cleanup: ",
                        Role::Check => "",
                    },
                    s.what,
                    s.call,
                    s.from
                );
                if let Want::Code(w) = s.want {
                    if s.role == Role::Check {
                        judged += 1;
                    }
                    if w != got {
                        wrong.push(format!("{} answered {got}, not {w}", s.what));
                    }
                }
            }
            if judged == 0 {
                return Err(fail!("no malformed call had an expected answer"));
            }
            if !wrong.is_empty() {
                return Err(fail!("{}", wrong.join("; ")));
            }
            if self.conv.count(PageState::Shared) != before {
                return Err(fail!(
                    "the tracker changed although no conversion was asked of it"
                ));
            }
            let still = self.confirm(
                p,
                Target::Private,
                "after the refused calls the page must still be private",
            )?;
            Ok(format!(
                "{judged} malformed calls refused as the ABI says; {still}"
            ))
        })
    }

    pub(super) fn sizes(&mut self) -> Verdict {
        run_steps(|| {
            let w = self.win;
            let cases = [
                ("1 granule", w.slot(SLOT_SIZES)),
                ("2 MiB, granule-aligned only", w.unaligned_2m()),
                ("2 MiB, 2 MiB-aligned", w.aligned_2m()),
            ];
            let abi = self.conv.name();
            let base = self.conv.count(PageState::Shared);
            for (what, r) in cases {
                let n = r.len() / w.granule;
                let issued = self.conv.calls_for(r, Target::Shared);
                match expect::issue(abi, r, Target::Shared, w.granule) {
                    Some(want) if want == issued => {}
                    Some(want) => {
                        return Err(fail!(
                            "{what}: {abi} would issue {} call(s) {} .. {}; the ABI wants {} call(s) {} .. {}",
                            issued.count,
                            issued.first,
                            issued.last,
                            want.count,
                            want.first,
                            want.last
                        ));
                    }
                    None => return Err(fail!("the suite has no encoding table for {abi}")),
                }
                self.share(r)?;
                let shared = self.conv.count(PageState::Shared);
                if shared != base + n {
                    return Err(fail!(
                        "{what}: tracker counts {} newly shared granules, expected {n}",
                        shared - base
                    ));
                }
                let seed = self.seed(r.start);
                self.fill(r, seed);
                let host = match self.host(
                    Request::Verify { range: r, seed },
                    "the host must see the whole shared range",
                ) {
                    Ok(_) => "host verified",
                    Err(Verdict::Skip(_)) => "host check off",
                    Err(v) => return Err(v),
                };
                if let Some(probed) =
                    self.probe_states(r, Target::Shared, "every granule shared must be shared")?
                {
                    tdiag!("{what}: {probed}");
                }
                self.unshare(r)?;
                let back =
                    self.confirm(r, Target::Private, "every granule unshared must be private")?;
                tdiag!(
                    "{what}: {r}, {n} granule(s) as {} call(s) from {}: ok, {host}; unshared: {back}",
                    issued.count,
                    issued.first
                );
            }
            if self.conv.count(PageState::Shared) != base {
                return Err(fail!("tracker not back to {base} shared granules"));
            }
            Ok(String::new())
        })
    }
}
