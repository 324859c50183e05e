//! The accept plan: after MapGPA made a range private, every page must be
//! accepted with `TDG.MEM.PAGE.ACCEPT` before the TD touches it (the VMM
//! added it PENDING; the accept zeroes it and maps it). 2 MiB where the
//! range allows, the same 2 MiB as 512 × 4 KiB on PAGE_SIZE_MISMATCH,
//! OPERAND_BUSY retried a bounded number of times, PAGE_ALREADY_ACCEPTED
//! counted and reported — the page was not zeroed by this accept, so the
//! VMM did not really give it back (TDX Module ABI spec,
//! `TDG.MEM.PAGE.ACCEPT`; td-shim `td_accept_pages`; docs/design.md §4).

use super::abi::{AcceptStatus, accept_rcx};
use crate::range::MemRange;
use crate::size_walk::{Page, PageSize, SizeWalk};
use core::fmt;

/// OPERAND_BUSY answers accepted for one page before giving up.
pub const MAX_BUSY: u32 = 3;

/// What a plan did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptReport {
    /// Pages accepted (and so zeroed) by this plan, by size.
    pub accepted_2m: u64,
    pub accepted_4k: u64,
    /// 4 KiB pages the module said were accepted already.
    pub already_accepted_4k: u64,
    /// 2 MiB pages the Secure EPT held as 4 KiB ones.
    pub splits: u64,
    /// `TDG.MEM.PAGE.ACCEPT` calls made.
    pub calls: u64,
}

impl AcceptReport {
    pub fn add(&mut self, other: &AcceptReport) {
        self.accepted_2m += other.accepted_2m;
        self.accepted_4k += other.accepted_4k;
        self.already_accepted_4k += other.already_accepted_4k;
        self.splits += other.splits;
        self.calls += other.calls;
    }
}

/// The registers of one accept: rcx = gpa | level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptCall {
    pub gpa: u64,
    pub size: PageSize,
}

impl AcceptCall {
    pub const fn rcx(&self) -> u64 {
        accept_rcx(self.gpa, self.size)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// The module refused the page (PAGE_SIZE_MISMATCH at 4 KiB,
    /// OPERAND_INVALID, or anything unknown).
    Refused {
        call: AcceptCall,
        status: AcceptStatus,
    },
    /// OPERAND_BUSY more than `MAX_BUSY` times in a row.
    Busy { call: AcceptCall },
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcceptError::Refused { call, status } => write!(
                f,
                "TDG.MEM.PAGE.ACCEPT {:#x} ({}) answered {status}",
                call.gpa,
                call.size.as_str()
            ),
            AcceptError::Busy { call } => write!(
                f,
                "TDG.MEM.PAGE.ACCEPT {:#x} ({}) answered OPERAND_BUSY more than {MAX_BUSY} times",
                call.gpa,
                call.size.as_str()
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptPlan {
    walk: SizeWalk,
    busy: u32,
    report: AcceptReport,
}

impl AcceptPlan {
    /// A plan over `range` (4 KiB-aligned private GPAs).
    pub fn new(range: MemRange) -> AcceptPlan {
        AcceptPlan {
            walk: SizeWalk::new(range),
            busy: 0,
            report: AcceptReport::default(),
        }
    }

    /// The page to accept next; `None` once every page is accepted.
    pub fn call(&self) -> Option<AcceptCall> {
        self.walk
            .page()
            .map(|Page { gpa, size }| AcceptCall { gpa, size })
    }

    /// Takes the module's answer to `call()`.
    pub fn answer(&mut self, status: AcceptStatus) -> Result<(), AcceptError> {
        let Some(call) = self.call() else {
            return Ok(());
        };
        self.report.calls += 1;
        if status != AcceptStatus::OperandBusy {
            self.busy = 0;
        }
        match status {
            AcceptStatus::Success => {
                match call.size {
                    PageSize::Size2M => self.report.accepted_2m += 1,
                    PageSize::Size4K => self.report.accepted_4k += 1,
                }
                self.walk.advance();
                Ok(())
            }
            AcceptStatus::AlreadyAccepted => {
                self.report.already_accepted_4k += call.size.pages();
                self.walk.advance();
                Ok(())
            }
            AcceptStatus::SizeMismatch if self.walk.split() => {
                self.report.splits += 1;
                Ok(())
            }
            AcceptStatus::OperandBusy => {
                self.busy += 1;
                if self.busy > MAX_BUSY {
                    Err(AcceptError::Busy { call })
                } else {
                    Ok(())
                }
            }
            status => Err(AcceptError::Refused { call, status }),
        }
    }

    /// Bytes from the start that are accepted (now or before).
    pub fn done(&self) -> u64 {
        self.walk.done()
    }

    pub fn report(&self) -> AcceptReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_walk::SIZE_2M;
    use alloc::string::ToString;

    #[test]
    fn mismatch_at_2m_falls_back_and_counts_the_split() {
        let mut p = AcceptPlan::new(MemRange::from_len(0, SIZE_2M));
        assert_eq!(p.call().map(|c| c.rcx()), Some(1));
        p.answer(AcceptStatus::SizeMismatch).expect("split");
        let mut n = 0;
        while let Some(c) = p.call() {
            assert_eq!(c.size, PageSize::Size4K);
            p.answer(AcceptStatus::Success).expect("4K");
            n += 1;
        }
        assert_eq!(n, 512);
        let r = p.report();
        assert_eq!((r.accepted_4k, r.splits, r.calls), (512, 1, 513));
    }

    #[test]
    fn mismatch_at_4k_is_an_error() {
        let mut p = AcceptPlan::new(MemRange::from_len(0x1000, 0x1000));
        let e = p
            .answer(AcceptStatus::SizeMismatch)
            .expect_err("nothing smaller");
        assert_eq!(
            e.to_string(),
            "TDG.MEM.PAGE.ACCEPT 0x1000 (4K) answered PAGE_SIZE_MISMATCH (0xc0000b0b00000001)"
        );
    }

    #[test]
    fn already_accepted_is_counted_not_hidden() {
        let mut p = AcceptPlan::new(MemRange::from_len(0, SIZE_2M + 0x1000));
        p.answer(AcceptStatus::AlreadyAccepted).expect("2M");
        p.answer(AcceptStatus::AlreadyAccepted).expect("4K");
        assert_eq!(p.call(), None);
        assert_eq!(p.report().already_accepted_4k, 513);
        assert_eq!(p.report().accepted_2m + p.report().accepted_4k, 0);
    }

    #[test]
    fn busy_is_retried_a_bounded_number_of_times() {
        let mut p = AcceptPlan::new(MemRange::from_len(0x1000, 0x2000));
        for _ in 0..MAX_BUSY {
            p.answer(AcceptStatus::OperandBusy).expect("retry");
        }
        p.answer(AcceptStatus::Success).expect("then done");
        for _ in 0..MAX_BUSY {
            p.answer(AcceptStatus::OperandBusy).expect("a fresh budget");
        }
        assert!(matches!(
            p.answer(AcceptStatus::OperandBusy),
            Err(AcceptError::Busy { .. })
        ));
        assert_eq!(p.done(), 0x1000);
    }
}
