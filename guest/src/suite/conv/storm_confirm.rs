//! The storm's platform confirmations: a conversion of several granules
//! that the tracker and the model took whole is checked granule by granule
//! on the platform — the first such conversion in each direction of every
//! round (every [`CONFIRM_ROUND`] operations) and a seeded one in
//! [`CONFIRM_ONE_IN`] of the others. Every one would cost a host round trip
//! per conversion on x86 (tens of ms nested, minutes over a 1e5 storm); the
//! sample still turns a firmware that leaves a granule out of every such
//! conversion red in the first round. On pKVM the check is pKVM's own
//! answer, one probe per granule at EL2; on x86 it is the host's, over the
//! whole range (CPU 0 only: the console carries one request at a time).

use super::expect;
use super::storm_cpu::{Lane, StormCtx};
use alloc::format;
use alloc::string::String;
use convtest_proto::hostcheck::{Request, pattern_word};
use convtest_proto::prng::mix;
use convtest_proto::range::MemRange;
use convtest_proto::storm::Fill;
use convtest_proto::tracker::Target;

/// Operations per round of the confirmation rule (the checkpoint's period).
pub(super) const CONFIRM_ROUND: u64 = 1000;
/// Besides each round's first, one multi-granule conversion in this many.
pub(super) const CONFIRM_ONE_IN: u64 = 32;

impl StormCtx<'_> {
    /// Confirms `r`, just converted to `to` as the model predicted, when the
    /// rule picks it (see the module doc).
    pub(super) fn confirm(
        &self,
        cpu: usize,
        r: MemRange,
        to: Target,
        lane: &mut Lane,
    ) -> Result<(), String> {
        let g = lane.model.granule();
        if r.len() < 2 * g {
            return Ok(());
        }
        let i = lane.storm.index();
        let round = i / CONFIRM_ROUND;
        let slot = &mut lane.confirmed_round[usize::from(to == Target::Private)];
        let first = *slot != Some(round);
        if !first && !mix(self.seed ^ i ^ 0xc0f1).is_multiple_of(CONFIRM_ONE_IN) {
            return Ok(());
        }
        *slot = Some(round);
        if expect::state_probe(self.abi, r.start, to).is_some() {
            for a in (r.start..r.end).step_by(g as usize) {
                let Some((call, want, from)) = expect::state_probe(self.abi, a, to) else {
                    continue;
                };
                lane.counts.probes += 1;
                match self.conv.with(|c| c.raw(call)) {
                    Ok(got) if got == want => {}
                    Ok(got) => {
                        return Err(format!(
                            "confirming {r}: {call} of granule {a:#x} answered {got}; {from} answers {want} for a granule already {}, so the conversion left it out",
                            to.as_str()
                        ));
                    }
                    Err(e) => return Err(format!("{call}: {e:?}")),
                }
            }
            return Ok(());
        }
        if cpu != 0 || !self.host.on() {
            return Ok(());
        }
        let salt = mix(self.seed ^ i ^ 0x5eed);
        let req = match to {
            Target::Shared => {
                for pa in (r.start..r.end).step_by(8) {
                    // SAFETY: the storm's own area, this CPU's slice, mapped.
                    unsafe { self.word(pa).write_volatile(pattern_word(salt, pa)) };
                }
                lane.model.write(r, Fill::Pattern(salt));
                Request::Verify {
                    range: r,
                    seed: salt,
                }
            }
            Target::Private => {
                let canary = salt | 1;
                self.fill_const(r, canary);
                lane.model.write(r, Fill::Const(canary));
                Request::NoRead { range: r, canary }
            }
        };
        lane.counts.host += 1;
        let why: String = format!("confirming every granule of {r} {}", to.as_str());
        self.ask(req, &why, &mut lane.evidence)
    }
}
