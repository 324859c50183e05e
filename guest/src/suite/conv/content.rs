//! What conversions do to page bytes: `conv.content` (each direction,
//! repeated) and `conv.flipflop` (many round trips of one page), judged
//! against the plan's `content=` when the VMM promised one. After the bytes
//! are read, each conversion is confirmed on the platform (harness
//! `confirm`): every one of `conv.content`'s, and of `conv.flipflop`'s
//! every one where pKVM answers, else the first, last and a seeded sample.

use super::expect::{self, ContentRule};
use super::harness::{Step, T, at_iter, run_steps};
use super::window::{SLOT_CONTENT, SLOT_FLIPFLOP};
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use convtest_proto::content::ContentClass;
use convtest_proto::tracker::Target;

/// Repeats per direction in `conv.content`.
const CONTENT_REPEATS: u32 = 3;
/// Rounds of `conv.flipflop` besides the first and the last whose
/// conversions the host checks, on average, where only the host can tell.
const FLIPFLOP_SAMPLE: u64 = 8;

impl T<'_> {
    pub(super) fn content(&mut self) -> Verdict {
        run_steps(|| {
            let p = self.win.slot(SLOT_CONTENT);
            let mut to_shared = Vec::new();
            let mut to_private = Vec::new();
            let mut asked = String::new();
            for i in 0..u64::from(CONTENT_REPEATS) {
                let a = self.seed(p.start ^ (i << 1));
                self.fill(p, a);
                self.share(p)?;
                to_shared.push(self.class(p, a));
                asked = self.confirm(p, Target::Shared, "the shared page must be shared")?;
                let b = self.seed(p.start ^ (i << 1) ^ 1);
                self.fill(p, b);
                self.unshare(p)?;
                to_private.push(self.class(p, b));
                self.confirm(p, Target::Private, "the unshared page must be private")?;
            }
            tdiag!("every conversion confirmed on the platform, e.g. {asked}");
            let s = self.judge(Target::Shared, &to_shared)?;
            let u = self.judge(Target::Private, &to_private)?;
            Ok(format!(
                "private->shared {s}, shared->private {u} ({CONTENT_REPEATS} times each){}",
                self.plan.content.map_or(String::new(), |c| format!(
                    ", as content={} says",
                    c.as_str()
                ))
            ))
        })
    }

    /// One class for every repeat, not `Neither`, and the plan's if it
    /// names one; without one, what the ABI itself leaves (expect.rs).
    fn judge(&self, to: Target, seen: &[ContentClass]) -> Step<&'static str> {
        let dir = match to {
            Target::Shared => "private->shared",
            Target::Private => "shared->private",
        };
        let rule = match self.plan.content {
            Some(c) => Some(ContentRule::Exactly(c)),
            None => expect::content_rule(self.conv.name(), to),
        };
        if let Some(ContentRule::Unspecified(_)) = rule {
            return Ok("not judged");
        }
        let Some(&first) = seen.first() else {
            return Err(fail!("{dir}: no conversion was observed"));
        };
        if let Some((i, c)) = seen
            .iter()
            .enumerate()
            .find(|(_, c)| c.as_content().is_none())
        {
            return Err(fail!("{dir} conversion {}: {c}", i + 1));
        }
        if let Some((i, c)) = seen.iter().enumerate().find(|(_, c)| !c.same_kind(first)) {
            return Err(fail!(
                "{dir}: conversion 1 left the page {first}, conversion {} {c}",
                i + 1
            ));
        }
        match rule {
            Some(ContentRule::Exactly(want)) if first.as_content() != Some(want) => {
                return Err(fail!(
                    "{dir}: page {first}, but {} says content={}",
                    if self.plan.content.is_some() {
                        "the plan"
                    } else {
                        "the ABI"
                    },
                    want.as_str()
                ));
            }
            Some(ContentRule::NotPreserved) if first == ContentClass::Preserved => {
                return Err(fail!(
                    "{dir}: page {first}, but {} converts destructively",
                    self.conv.name()
                ));
            }
            _ => {}
        }
        Ok(first.name())
    }

    pub(super) fn flipflop(&mut self) -> Verdict {
        run_steps(|| {
            let p = self.win.slot(SLOT_FLIPFLOP);
            let iters = self.plan.iters.max(1);
            let (mut s_class, mut u_class) = (None, None);
            // pKVM answers for each granule at EL2 in microseconds: every
            // round. Asking the host costs a console round trip (tens of ms
            // nested): the first and last rounds and a seeded sample.
            let every = self
                .probe_states(p, Target::Private, "the page starts private")?
                .is_some();
            let mut checked = Vec::new();
            for i in 0..iters {
                let check = every || self.flipflop_sampled(i, iters);
                let a = self.seed(p.start ^ (u64::from(i) << 1));
                self.fill(p, a);
                self.share(p).map_err(|v| at_iter(v, i))?;
                let c = self.class(p, a);
                let s = self
                    .judge(Target::Shared, &[*s_class.get_or_insert(c), c])
                    .map_err(|v| at_iter(v, i))?;
                if check {
                    self.confirm(p, Target::Shared, "the shared page must be shared")
                        .map_err(|v| at_iter(v, i))?;
                }
                let b = self.seed(p.start ^ (u64::from(i) << 1) ^ 1);
                self.fill(p, b);
                self.unshare(p).map_err(|v| at_iter(v, i))?;
                let c = self.class(p, b);
                let u = self
                    .judge(Target::Private, &[*u_class.get_or_insert(c), c])
                    .map_err(|v| at_iter(v, i))?;
                if check {
                    self.confirm(p, Target::Private, "the unshared page must be private")
                        .map_err(|v| at_iter(v, i))?;
                    checked.push(i + 1);
                }
                if i + 1 == iters {
                    let which = if every {
                        "every round, by pKVM".to_string()
                    } else {
                        format!(
                            "by the host after rounds {} (the first, the last and {} seeded)",
                            checked
                                .iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(","),
                            checked.len().saturating_sub(2)
                        )
                    };
                    return Ok(format!(
                        "{iters} share/unshare pairs of {p}: after share always {s}, after unshare always {u}; \
                         confirmed on the platform {which}"
                    ));
                }
            }
            Ok(String::new())
        })
    }

    /// The rounds whose conversions the host is asked about when asking
    /// costs a console round trip: the first, the last and about
    /// [`FLIPFLOP_SAMPLE`] more, seeded.
    fn flipflop_sampled(&self, i: u32, iters: u32) -> bool {
        i == 0
            || i + 1 == iters
            || self.seed(0xf11f ^ u64::from(i)) % u64::from(iters) < FLIPFLOP_SAMPLE
    }
}
