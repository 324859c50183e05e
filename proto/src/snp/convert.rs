//! One SEV-SNP conversion as a state machine the guest drives with its
//! traps (Linux `__page_state_change` and `set_pages_state` keep the same
//! order; docs/design.md §4):
//!
//! - to shared: PVALIDATE-rescind every page (so a page the hypervisor
//!   fails to take is not left validated), then one MSR page state change
//!   per 4 KiB page;
//! - to private: one page state change per 4 KiB page, then PVALIDATE every
//!   page (the hypervisor's RMPUPDATE left it unvalidated);
//! - the reset's sweep: as to private, but PVALIDATE's "already validated"
//!   (CF=1) is the expected answer for memory that never left, and counted.
//!
//! The MSR protocol changes one 4 KiB page per VMGEXIT; PVALIDATE goes by
//! 2 MiB where it can.

use super::ghcb::{PscOp, PscResponseError, psc_request, psc_response};
use super::pvalidate::{NoUpdate, PvalidateCall, PvalidateError, PvalidatePlan, PvalidateReport};
use crate::range::MemRange;
use crate::size_walk::SIZE_4K;
use crate::tracker::Target;
use core::fmt;

/// The next trap to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnpCall {
    Pvalidate(PvalidateCall),
    /// Write `psc_request(gfn, op)` to the GHCB MSR, VMGEXIT, read it back.
    Psc {
        gfn: u64,
        op: PscOp,
    },
}

impl SnpCall {
    /// The GHCB MSR value of a page state change; `None` for PVALIDATE.
    pub const fn msr(&self) -> Option<u64> {
        match *self {
            SnpCall::Psc { gfn, op } => Some(psc_request(gfn, op)),
            SnpCall::Pvalidate(_) => None,
        }
    }
}

/// What the trap returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnpAnswer {
    /// rax and rFLAGS.CF after PVALIDATE.
    Pvalidate { rax: u64, cf: bool },
    /// The GHCB MSR after the VMGEXIT.
    Psc { msr: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnpError {
    Pvalidate(PvalidateError),
    Psc {
        gfn: u64,
        op: PscOp,
        error: PscResponseError,
    },
    /// The answer was for another call than the one asked (a driver bug).
    WrongAnswer {
        call: SnpCall,
        answer: SnpAnswer,
    },
}

impl SnpError {
    /// CF=1 inside a conversion: the run must end, loudly.
    pub fn is_possible_attack(&self) -> bool {
        matches!(self, SnpError::Pvalidate(PvalidateError::NoUpdate { .. }))
    }
}

impl fmt::Display for SnpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnpError::Pvalidate(e) => e.fmt(f),
            SnpError::Psc { gfn, op, error } => write!(
                f,
                "page state change of GFN {gfn:#x} to {} (MSR request {:#x}): {error}",
                op.as_str(),
                psc_request(*gfn, *op)
            ),
            SnpError::WrongAnswer { call, answer } => {
                write!(f, "answer {answer:?} does not belong to {call:?}")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// To shared: rescind first.
    Rescind,
    /// Page state changes: the next GFN's address.
    Psc,
    /// To private: validate last.
    Validate,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpConversion {
    range: MemRange,
    to: Target,
    phase: Phase,
    pvalidate: PvalidatePlan,
    /// Next page to change state.
    psc_next: u64,
    psc_calls: u64,
}

impl SnpConversion {
    /// Converting `range` (4 KiB-aligned) to `to`.
    pub fn new(range: MemRange, to: Target) -> SnpConversion {
        let (phase, validate) = match to {
            Target::Shared => (Phase::Rescind, false),
            Target::Private => (Phase::Psc, true),
        };
        SnpConversion {
            range,
            to,
            phase,
            pvalidate: PvalidatePlan::new(range, validate, NoUpdate::Attack),
            psc_next: range.start,
            psc_calls: 0,
        }
    }

    /// The reset's sweep of `range`: to private, and "already validated" is
    /// what a page that never left answers.
    pub fn reset(range: MemRange) -> SnpConversion {
        SnpConversion {
            pvalidate: PvalidatePlan::new(range, true, NoUpdate::Count),
            ..SnpConversion::new(range, Target::Private)
        }
    }

    fn op(&self) -> PscOp {
        match self.to {
            Target::Shared => PscOp::Shared,
            Target::Private => PscOp::Private,
        }
    }

    /// The trap to execute next; `None` once the conversion is complete.
    pub fn call(&self) -> Option<SnpCall> {
        match self.phase {
            Phase::Rescind | Phase::Validate => self.pvalidate.call().map(SnpCall::Pvalidate),
            Phase::Psc => Some(SnpCall::Psc {
                gfn: self.psc_next / SIZE_4K,
                op: self.op(),
            }),
            Phase::Done => None,
        }
    }

    pub fn answer(&mut self, answer: SnpAnswer) -> Result<(), SnpError> {
        let Some(call) = self.call() else {
            return Ok(());
        };
        match (call, answer) {
            (SnpCall::Pvalidate(_), SnpAnswer::Pvalidate { rax, cf }) => {
                self.pvalidate
                    .answer(rax, cf)
                    .map_err(SnpError::Pvalidate)?;
            }
            (SnpCall::Psc { gfn, op }, SnpAnswer::Psc { msr }) => {
                self.psc_calls += 1;
                psc_response(msr).map_err(|error| SnpError::Psc { gfn, op, error })?;
                self.psc_next += SIZE_4K;
            }
            _ => return Err(SnpError::WrongAnswer { call, answer }),
        }
        self.next_phase();
        Ok(())
    }

    fn next_phase(&mut self) {
        self.phase = match self.phase {
            Phase::Rescind if self.pvalidate.call().is_none() => Phase::Psc,
            Phase::Psc if self.psc_next >= self.range.end => match self.to {
                Target::Shared => Phase::Done,
                Target::Private => Phase::Validate,
            },
            Phase::Validate if self.pvalidate.call().is_none() => Phase::Done,
            p => p,
        };
    }

    /// Bytes from the start that are converted: shared once their page
    /// state changed, private once validated again.
    pub fn done(&self) -> u64 {
        match self.to {
            Target::Shared => self.psc_next - self.range.start,
            Target::Private => self.pvalidate.done(),
        }
    }

    pub fn target(&self) -> Target {
        self.to
    }

    pub fn psc_calls(&self) -> u64 {
        self.psc_calls
    }

    pub fn pvalidate_report(&self) -> PvalidateReport {
        self.pvalidate.report()
    }
}
