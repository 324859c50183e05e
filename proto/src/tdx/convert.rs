//! One TDX conversion as a state machine the guest drives with its traps:
//! to shared, MapGPA of the range's shared alias; to private, MapGPA of the
//! private GPAs, then the accept plan over the same range (docs/design.md
//! §4). The guest asks `call()`, executes it, hands the registers back to
//! `answer()`; in `cargo test` a model of the TDX module and the VMM
//! answers instead.

use super::abi::{AcceptStatus, VmcallStatus};
use super::accept::{AcceptCall, AcceptError, AcceptPlan, AcceptReport};
use super::map_gpa::{MapGpaCall, MapGpaWalk, WalkError};
use crate::range::MemRange;
use crate::tracker::Target;
use core::fmt;

/// The next trap to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TdxCall {
    MapGpa(MapGpaCall),
    Accept(AcceptCall),
}

/// What the trap returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TdxAnswer {
    /// r10 decoded and r11 of `TDG.VP.VMCALL<MapGPA>`.
    MapGpa { status: VmcallStatus, r11: u64 },
    /// rax of `TDG.MEM.PAGE.ACCEPT`, decoded.
    Accept(AcceptStatus),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TdxError {
    MapGpa(WalkError),
    Accept(AcceptError),
    /// The answer was for another call than the one asked (a driver bug).
    WrongAnswer {
        call: TdxCall,
        answer: TdxAnswer,
    },
}

impl fmt::Display for TdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TdxError::MapGpa(e) => e.fmt(f),
            TdxError::Accept(e) => e.fmt(f),
            TdxError::WrongAnswer { call, answer } => {
                write!(f, "answer {answer:?} does not belong to {call:?}")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdxConversion {
    to: Target,
    walk: MapGpaWalk,
    /// To private only: the pages to accept once MapGPA is done.
    accept: Option<AcceptPlan>,
}

impl TdxConversion {
    /// Converting `range` (4 KiB-aligned, private GPAs) to `to` in a TD
    /// whose GPA shared bit is `shared_bit`.
    pub fn new(range: MemRange, to: Target, shared_bit: u64) -> TdxConversion {
        let (alias, accept) = match to {
            Target::Shared => (shared_bit, None),
            Target::Private => (0, Some(AcceptPlan::new(range))),
        };
        TdxConversion {
            to,
            walk: MapGpaWalk::new(range, alias),
            accept,
        }
    }

    /// The trap to execute next; `None` once the conversion is complete.
    pub fn call(&self) -> Option<TdxCall> {
        if let Some(c) = self.walk.call() {
            return Some(TdxCall::MapGpa(c));
        }
        self.accept.and_then(|a| a.call()).map(TdxCall::Accept)
    }

    pub fn answer(&mut self, answer: TdxAnswer) -> Result<(), TdxError> {
        let Some(call) = self.call() else {
            return Ok(());
        };
        match (call, answer) {
            (TdxCall::MapGpa(_), TdxAnswer::MapGpa { status, r11 }) => {
                self.walk.answer(status, r11).map_err(TdxError::MapGpa)
            }
            (TdxCall::Accept(_), TdxAnswer::Accept(status)) => match self.accept.as_mut() {
                Some(a) => a.answer(status).map_err(TdxError::Accept),
                None => Err(TdxError::WrongAnswer { call, answer }),
            },
            _ => Err(TdxError::WrongAnswer { call, answer }),
        }
    }

    /// Bytes from the start that are converted: mapped shared, or mapped
    /// private *and* accepted (a page mapped but not accepted is not usable).
    pub fn done(&self) -> u64 {
        match self.accept {
            Some(a) if self.walk.is_done() => a.done(),
            Some(_) => 0,
            None => self.walk.done(),
        }
    }

    pub fn target(&self) -> Target {
        self.to
    }

    /// MapGPA calls answered.
    pub fn map_gpa_calls(&self) -> u64 {
        self.walk.calls()
    }

    /// What the accept plan did (all zero when converting to shared).
    pub fn accept_report(&self) -> AcceptReport {
        self.accept.map(|a| a.report()).unwrap_or_default()
    }
}
