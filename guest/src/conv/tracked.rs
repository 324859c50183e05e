//! The platform-neutral half of conversion: a hypervisor `ConversionAbi` wrapped
//! with the page-state tracker. The tracker changes only after the ABI
//! answered: confirmed conversions set the target state, a failure leaves
//! what the ABI could not vouch for *unknown*. The suites see this as
//! `dyn Converter`.
//!
//! The guest faults skip-reset and forget-tracker live here (skip-share /
//! skip-unshare are in the ABIs' call gate): they model firmware that
//! forgets its duty, so runs can show which tests notice.

use super::seam::{
    Calls, ConvError, ConversionAbi, ErrKind, Issued, RawCall, ResetReport, WrongAbi,
};
use super::view::SharedView;
use crate::arch::{Current, Platform};
use alloc::boxed::Box;
use alloc::vec::Vec;
use convtest_proto::plan::GuestFault;
use convtest_proto::range::{MemRange, RangeList, is_aligned};
use convtest_proto::tracker::{PageState, PageStates, Target, TrackError};

/// What the suites use.
pub trait Converter {
    /// ABI name as reported in the header and JSON (`kvm-map-gpa-range`, `pkvm`).
    fn name(&self) -> &'static str;
    /// Smallest convertible unit in bytes.
    fn granule(&self) -> u64;
    /// Make `range` (granule-aligned, guest-physical) visible to the host.
    fn share(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// Make `range` private to the guest again.
    fn unshare(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// Asks for private every granule of `range` the tracker calls unknown;
    /// returns how many stay unknown (the hypervisor refused).
    fn resolve(&mut self, range: MemRange) -> u64;
    /// What the tracker says about the granule holding `addr`.
    fn state(&self, addr: u64) -> Option<PageState>;
    fn count(&self, state: PageState) -> u64;
    /// The tracked RAM ranges.
    fn ram(&self) -> Vec<MemRange>;
    /// Converts all RAM to private and records the outcome.
    fn reset_to_private(&mut self) -> Result<ResetReport, ConvError>;
    /// The outcome of the first reset (the boot's), if one ran.
    fn boot_reset(&self) -> Option<Result<ResetReport, ConvError>>;
    fn reserved(&self) -> Option<MemRange>;
    /// One unchecked ABI call; the tracker is not changed.
    fn raw(&mut self, call: RawCall) -> Result<i64, WrongAbi>;
    /// The calls `share`/`unshare` of `range` would issue.
    fn calls_for(&self, range: MemRange, to: Target) -> Issued;
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError>;
    fn noop_op(&self) -> &'static str;
    /// Starts bare conversions of `range` (private, whole tracked
    /// granules): the tracker marks it unknown and the ABI keeps what a
    /// crash needs.
    fn begin_bare(&mut self, range: MemRange);
    /// One conversion's calls and nothing else: what benchmarks time.
    fn bare(&mut self, range: MemRange, to: Target) -> Result<(), ConvError>;
    /// Ends bare conversions: `range` private again, the records agree.
    fn end_bare(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// Makes `range` private whatever state its granules are in (one the
    /// hypervisor calls private already is fine: pKVM's -3), and the
    /// tracker follows: how a test leaves its pages, even after a
    /// conversion that left the tracker and the platform disagreeing.
    fn make_private(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// The guest's own bookkeeping of one share + unshare of the private
    /// `range` (tracker, and the ABI's record), without any call.
    fn bookkeep(&mut self, range: MemRange);
    /// A copy of the ABI's conversion calls alone, for several CPUs
    /// converting at once: each CPU brackets a call with `before_calls`
    /// and `record` (under whatever lock shares the converter), but issues
    /// it holding nothing, so the hypervisor sees the calls really overlap.
    fn calls(&self) -> Box<dyn Calls>;
    /// Before one CPU's `calls().issue(range, to)`: what a crash needs.
    fn before_calls(&mut self, range: MemRange, to: Target);
    /// After it: the tracker and the ABI's record take its answer, as
    /// they would a `share`/`unshare`'s (whole granules of tracked RAM;
    /// anything else is ignored).
    fn record(&mut self, range: MemRange, to: Target, res: &Result<(), ConvError>);
    /// Where the guest reaches a page while it is shared (see
    /// [`SharedView`]); `None`: at the same address as while private.
    fn shared_view(&self) -> Option<SharedView>;
    /// What the ABI counted that must be reported (pages already accepted
    /// or validated), once.
    fn take_note(&mut self) -> Option<alloc::string::String>;
}

pub struct Tracked<A> {
    abi: A,
    pages: PageStates,
    boot_reset: Option<Result<ResetReport, ConvError>>,
    fault: Option<GuestFault>,
}

impl<A: ConversionAbi> Tracked<A> {
    pub fn new(abi: A, ram: &RangeList, fault: Option<GuestFault>) -> Self {
        // Nothing is known until the boot's reset says so.
        let pages = PageStates::new(ram, abi.granule(), PageState::Unknown);
        Self {
            abi,
            pages,
            boot_reset: None,
            fault,
        }
    }

    fn convert(&mut self, range: MemRange, to: Target) -> Result<(), ConvError> {
        let g = self.pages.granule();
        let whole = !range.is_empty() && is_aligned(range.start, g) && is_aligned(range.end, g);
        if !whole || !self.pages.covers(&range) {
            let e = if whole {
                TrackError::OutsideRam(range)
            } else {
                TrackError::Unaligned { range, granule: g }
            };
            return Err(ConvError {
                call: self.abi.name(),
                id: 0,
                range,
                done: 0,
                rest_unknown: false,
                kind: ErrKind::Track(e),
            });
        }
        self.abi.before(range, to);
        let res = self.abi.issue(range, to);
        self.take_answer(range, to, &res);
        res
    }

    /// The ABI's record and the tracker take a conversion's answer.
    /// `range` is whole granules inside tracked RAM (the caller's check),
    /// so the tracker's sets cannot fail.
    fn take_answer(&mut self, range: MemRange, to: Target, res: &Result<(), ConvError>) {
        let done = res
            .as_ref()
            .map_or_else(|e| e.done.min(range.len()), |()| range.len());
        let front = MemRange::from_len(range.start, done);
        self.abi.after(front, to);
        if self.fault == Some(GuestFault::ForgetTracker) {
            return;
        }
        if done != 0 {
            let _ = self.pages.set(front, to.state());
        }
        let rest = MemRange::new(range.start + done, range.end);
        if let Err(e) = res
            && e.rest_unknown
            && !rest.is_empty()
        {
            let _ = self.pages.set(rest, PageState::Unknown);
        }
    }
}

impl<A: ConversionAbi> Converter for Tracked<A> {
    fn name(&self) -> &'static str {
        self.abi.name()
    }

    fn granule(&self) -> u64 {
        self.abi.granule()
    }

    fn share(&mut self, range: MemRange) -> Result<(), ConvError> {
        self.convert(range, Target::Shared)
    }

    fn unshare(&mut self, range: MemRange) -> Result<(), ConvError> {
        self.convert(range, Target::Private)
    }

    fn resolve(&mut self, range: MemRange) -> u64 {
        for run in self.pages.runs_in(range, PageState::Unknown) {
            // A refusal leaves the run unknown, which the count reports.
            let _ = self.convert(run, Target::Private);
        }
        self.pages
            .runs_in(range, PageState::Unknown)
            .iter()
            .map(|r| r.len() / self.pages.granule())
            .sum()
    }

    fn state(&self, addr: u64) -> Option<PageState> {
        self.pages.state(addr)
    }

    fn count(&self, state: PageState) -> u64 {
        self.pages.count(state)
    }

    fn ram(&self) -> Vec<MemRange> {
        self.pages.ranges().collect()
    }

    fn reset_to_private(&mut self) -> Result<ResetReport, ConvError> {
        let t0 = Current::cycles();
        let res = if self.fault == Some(GuestFault::SkipReset) {
            // The firmware bug: claims the reset without making a call.
            Ok(super::seam::ResetOutcome {
                report: ResetReport {
                    method: "skipped (gfault=skip-reset)",
                    ..ResetReport::default()
                },
                unknown: Vec::new(),
            })
        } else {
            let ram = self.ram();
            self.abi.reset(&ram)
        };
        let cycles = Current::cycles().wrapping_sub(t0);
        let res = match res {
            Ok(out) => {
                self.pages.set_all(PageState::Private);
                for u in out.unknown {
                    // ABIs report granules inside the RAM they were given.
                    let _ = self.pages.set(u, PageState::Unknown);
                }
                Ok(ResetReport {
                    cycles,
                    ..out.report
                })
            }
            Err(e) => {
                // Part of RAM may have been converted: nothing is known.
                self.pages.set_all(PageState::Unknown);
                Err(e)
            }
        };
        self.boot_reset.get_or_insert(res);
        res
    }

    fn boot_reset(&self) -> Option<Result<ResetReport, ConvError>> {
        self.boot_reset
    }

    fn reserved(&self) -> Option<MemRange> {
        self.abi.reserved()
    }

    fn raw(&mut self, call: RawCall) -> Result<i64, WrongAbi> {
        self.abi.raw(call)
    }

    fn calls_for(&self, range: MemRange, to: Target) -> Issued {
        self.abi.calls_for(range, to)
    }

    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        self.abi.noop(page)
    }

    fn noop_op(&self) -> &'static str {
        self.abi.noop_op()
    }

    fn begin_bare(&mut self, range: MemRange) {
        self.abi.note_bare(range);
        // Whole granules inside tracked RAM: the caller's contract.
        let _ = self.pages.set(range, PageState::Unknown);
    }

    fn bare(&mut self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.abi.issue(range, to)
    }

    fn calls(&self) -> Box<dyn Calls> {
        self.abi.calls()
    }

    fn before_calls(&mut self, range: MemRange, to: Target) {
        self.abi.before(range, to);
    }

    fn record(&mut self, range: MemRange, to: Target, res: &Result<(), ConvError>) {
        if self.pages.covers(&range) {
            self.take_answer(range, to, res);
        }
    }

    fn end_bare(&mut self, range: MemRange) -> Result<(), ConvError> {
        self.make_private(range)
    }

    fn make_private(&mut self, range: MemRange) -> Result<(), ConvError> {
        self.abi.make_private(range)?;
        // Whole granules inside tracked RAM: the caller's contract.
        let _ = self.pages.set(range, PageState::Private);
        Ok(())
    }

    fn bookkeep(&mut self, range: MemRange) {
        let _ = self.pages.set(range, PageState::Shared);
        let _ = self.pages.set(range, PageState::Private);
        self.abi.bookkeep(range);
    }

    fn shared_view(&self) -> Option<SharedView> {
        self.abi.shared_view()
    }

    fn take_note(&mut self) -> Option<alloc::string::String> {
        self.abi.take_note()
    }
}
