//! The PVALIDATE plan: validate (or rescind) every page of a range, 2 MiB
//! where the range allows and the same 2 MiB as 512 × 4 KiB on
//! FAIL_SIZEMISMATCH (AMD64 APM vol. 3, `PVALIDATE`; Linux `pval_pages`;
//! docs/design.md §4).
//!
//! PVALIDATE sets rFLAGS.CF when the page's Validated bit already had the
//! value asked for: nothing changed in the RMP. Inside a conversion that
//! means someone else changed the page behind the guest's back — a
//! possible aliasing or replay attack — so it is an error that ends the
//! run and is never retried. Only the reset's probe of memory that should
//! be validated already expects it, and counts it.

use crate::range::MemRange;
use crate::size_walk::{Page, PageSize, SizeWalk};
use core::fmt;

/// PVALIDATE's rax out.
pub const PVALIDATE_SUCCESS: u64 = 0;
pub const PVALIDATE_FAIL_INPUT: u64 = 1;
pub const PVALIDATE_FAIL_SIZEMISMATCH: u64 = 6;

/// rcx of PVALIDATE: 0 = 4 KiB, 1 = 2 MiB.
pub const fn rmp_page_size(size: PageSize) -> u64 {
    match size {
        PageSize::Size4K => 0,
        PageSize::Size2M => 1,
    }
}

/// What CF=1 means to this plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoUpdate {
    /// A conversion: the page was changed behind the guest's back.
    Attack,
    /// The reset's probe: a page already validated is what it expects.
    Count,
}

/// One PVALIDATE: the page (the guest turns the GPA into its private
/// mapping's address for rax), rcx = size, rdx = validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvalidateCall {
    pub gpa: u64,
    pub size: PageSize,
    pub validate: bool,
}

impl fmt::Display for PvalidateCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PVALIDATE {:#x} ({}, {})",
            self.gpa,
            self.size.as_str(),
            if self.validate { "validate" } else { "rescind" }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvalidateError {
    /// rax was not SUCCESS (FAIL_INPUT, FAIL_SIZEMISMATCH at 4 KiB, other).
    Failed { call: PvalidateCall, rax: u64 },
    /// CF=1 inside a conversion: the RMP already held what the guest asked
    /// for. A possible attack: the run must end.
    NoUpdate { call: PvalidateCall },
}

impl fmt::Display for PvalidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PvalidateError::Failed { call, rax } => {
                let what = match rax {
                    PVALIDATE_FAIL_INPUT => " (FAIL_INPUT)",
                    PVALIDATE_FAIL_SIZEMISMATCH => " (FAIL_SIZEMISMATCH)",
                    _ => "",
                };
                write!(f, "{call} returned {rax}{what}")
            }
            PvalidateError::NoUpdate { call } => write!(
                f,
                "{call} set CF=1: the RMP entry was already in that state, so someone other than this guest changed it; possible attack, not retried"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PvalidateReport {
    /// Pages whose Validated bit this plan changed, by size.
    pub changed_2m: u64,
    pub changed_4k: u64,
    /// 4 KiB pages that were already as asked (CF=1; the reset's probe only).
    pub unchanged_4k: u64,
    /// 2 MiB pages the RMP held as 4 KiB ones.
    pub splits: u64,
    pub calls: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvalidatePlan {
    walk: SizeWalk,
    validate: bool,
    no_update: NoUpdate,
    report: PvalidateReport,
}

impl PvalidatePlan {
    pub fn new(range: MemRange, validate: bool, no_update: NoUpdate) -> PvalidatePlan {
        PvalidatePlan {
            walk: SizeWalk::new(range),
            validate,
            no_update,
            report: PvalidateReport::default(),
        }
    }

    pub fn call(&self) -> Option<PvalidateCall> {
        self.walk.page().map(|Page { gpa, size }| PvalidateCall {
            gpa,
            size,
            validate: self.validate,
        })
    }

    /// Takes rax and CF after the `call()` PVALIDATE.
    pub fn answer(&mut self, rax: u64, cf: bool) -> Result<(), PvalidateError> {
        let Some(call) = self.call() else {
            return Ok(());
        };
        self.report.calls += 1;
        match (rax, cf) {
            (PVALIDATE_SUCCESS, false) => {
                match call.size {
                    PageSize::Size2M => self.report.changed_2m += 1,
                    PageSize::Size4K => self.report.changed_4k += 1,
                }
                self.walk.advance();
                Ok(())
            }
            (PVALIDATE_SUCCESS, true) if self.no_update == NoUpdate::Count => {
                self.report.unchanged_4k += call.size.pages();
                self.walk.advance();
                Ok(())
            }
            (PVALIDATE_SUCCESS, true) => Err(PvalidateError::NoUpdate { call }),
            (PVALIDATE_FAIL_SIZEMISMATCH, _) if self.walk.split() => {
                self.report.splits += 1;
                Ok(())
            }
            (rax, _) => Err(PvalidateError::Failed { call, rax }),
        }
    }

    /// Bytes from the start that are done.
    pub fn done(&self) -> u64 {
        self.walk.done()
    }

    pub fn report(&self) -> PvalidateReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_walk::SIZE_2M;
    use alloc::string::ToString;

    #[test]
    fn cf_is_an_attack_in_a_conversion_and_counted_in_a_probe() {
        let r = MemRange::from_len(0, 0x2000);
        let mut p = PvalidatePlan::new(r, true, NoUpdate::Attack);
        let e = p.answer(0, true).expect_err("CF=1");
        assert!(matches!(e, PvalidateError::NoUpdate { .. }));
        assert!(e.to_string().contains("possible attack"), "{e}");
        assert_eq!(p.done(), 0, "not advanced: the caller stops, never retries");

        let mut p = PvalidatePlan::new(r, true, NoUpdate::Count);
        p.answer(0, true).expect("probe");
        p.answer(0, false).expect("probe");
        assert_eq!(p.call(), None);
        let rep = p.report();
        assert_eq!((rep.unchanged_4k, rep.changed_4k), (1, 1));
    }

    #[test]
    fn sizemismatch_splits_at_2m_and_fails_at_4k() {
        let mut p = PvalidatePlan::new(MemRange::from_len(0, SIZE_2M), false, NoUpdate::Attack);
        assert_eq!(p.call().map(|c| c.size), Some(PageSize::Size2M));
        p.answer(PVALIDATE_FAIL_SIZEMISMATCH, false).expect("split");
        assert_eq!(p.call().map(|c| c.size), Some(PageSize::Size4K));
        let e = p
            .answer(PVALIDATE_FAIL_SIZEMISMATCH, false)
            .expect_err("nothing smaller");
        assert_eq!(
            e.to_string(),
            "PVALIDATE 0x0 (4K, rescind) returned 6 (FAIL_SIZEMISMATCH)"
        );
    }

    #[test]
    fn fail_input_is_an_error() {
        let mut p = PvalidatePlan::new(MemRange::from_len(0x1000, 0x1000), true, NoUpdate::Count);
        assert!(matches!(
            p.answer(PVALIDATE_FAIL_INPUT, false),
            Err(PvalidateError::Failed { rax: 1, .. })
        ));
    }
}
