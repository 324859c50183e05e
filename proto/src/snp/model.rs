//! A model of an SEV-SNP guest's memory as the hypervisor (KVM + QEMU) and
//! the RMP keep it, written from the specifications, that answers
//! `SnpConversion`'s calls in `cargo test`. Faults are injected answers.
//! The rules and where they come from:
//!
//! - **S1 page state change, MSR protocol** (GHCB spec, "SNP Page State
//!   Change" request 0x014 / response 0x015): GHCBData[55:52] op (1
//!   private, 2 shared), GHCBData[51:12] GFN. The hypervisor RMPUPDATEs the
//!   4 KiB page: assigned to the guest or not, and never validated after an
//!   RMPUPDATE (AMD64 APM vol. 2, "RMPUPDATE"). A 4 KiB change inside a 2
//!   MiB RMP entry smashes it into 4 KiB entries first (PSMASH; KVM does it
//!   for the guest). A page already in the state asked for is left alone
//!   (KVM: its attributes do not change), so its Validated bit stays.
//!   Anything else — an unknown op, a GFN outside RAM — answers an error in
//!   GHCBData[63:32]. Content: a shared page is host memory (zero here:
//!   QEMU discards it when it converts); a page made private again reads as
//!   whatever the new encrypted page holds (not zero).
//! - **S2 PVALIDATE** (APM vol. 3, "PVALIDATE"): rax = 1 (FAIL_INPUT) for a
//!   2 MiB page not 2 MiB-aligned; 6 (FAIL_SIZEMISMATCH) when the size asked
//!   differs from the RMP entry's; CF=1 and nothing changed when the
//!   Validated bit already has the value asked for; otherwise the bit takes
//!   it. A page not assigned to the guest takes an RMP #NPF to the
//!   hypervisor instead (KVM + QEMU then convert it implicitly): a violation.
//! - **S3 access** (APM vol. 2, "SEV-SNP"): a private access to a page that
//!   is not validated raises #VC (exit 0x404); to one not assigned, an RMP
//!   #NPF: both violations.
//! - **S4 order** (a guest-conformance rule, not hardware: Linux
//!   `__page_state_change` and `set_pages_state` rescind before asking for
//!   shared): a page state change to shared of a page still validated is
//!   recorded as a violation.

use super::convert::{SnpAnswer, SnpCall};
use super::ghcb::PSC_RESP;
use super::pvalidate::{
    PVALIDATE_FAIL_INPUT, PVALIDATE_FAIL_SIZEMISMATCH, PVALIDATE_SUCCESS, PvalidateCall,
};
use crate::range::MemRange;
use crate::size_walk::{PageSize, SIZE_2M, SIZE_4K};
use crate::tracker::Target;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// RMP: assigned to the guest (private) or to the hypervisor (shared).
    pub assigned: bool,
    /// RMP: validated by the guest.
    pub validated: bool,
    pub content: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The page state change of this GFN answers error 0x100 and changes nothing.
    pub psc_error: Option<u64>,
    /// The page state change of this GFN answers with response code 0x013.
    pub psc_wrong_response: Option<u64>,
    /// PVALIDATE of this address answers CF=1 and changes nothing (someone
    /// else already set the bit).
    pub no_update: Option<u64>,
    /// PVALIDATE of this address answers FAIL_INPUT.
    pub fail_input: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// S2: PVALIDATE of a page not assigned to the guest.
    PvalidateOfShared(u64),
    /// S3: private access to a page not validated.
    NotValidated(u64),
    /// S3: private access to a page not assigned.
    PrivateAccessOfShared(u64),
    /// S4: asked for shared while still validated.
    SharedWhileValidated(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pvalidated {
    pub gpa: u64,
    pub size: PageSize,
    pub validate: bool,
}

pub struct SnpModel {
    base: u64,
    pages: Vec<Page>,
    /// RMP entry size per 2 MiB.
    rmp: Vec<PageSize>,
    pub faults: Faults,
    violations: Vec<Violation>,
    /// Every PVALIDATE that reached the model, in order.
    pub pvalidates: Vec<Pvalidated>,
    psc_calls: u64,
}

impl SnpModel {
    /// RAM `ram` (2 MiB-aligned), every page assigned and validated as the
    /// launch leaves it, with 4 KiB RMP entries (guest_memfd without huge
    /// pages, as KVM + QEMU run today).
    pub fn new(ram: MemRange) -> SnpModel {
        assert!(ram.start.is_multiple_of(SIZE_2M) && ram.end.is_multiple_of(SIZE_2M));
        let n = (ram.len() / SIZE_4K) as usize;
        SnpModel {
            base: ram.start,
            pages: (0..n)
                .map(|i| Page {
                    assigned: true,
                    validated: true,
                    content: 0x5e00_0000 + i as u64,
                })
                .collect(),
            rmp: vec![PageSize::Size4K; (ram.len() / SIZE_2M) as usize],
            faults: Faults::default(),
            violations: Vec::new(),
            pvalidates: Vec::new(),
            psc_calls: 0,
        }
    }

    /// The 2 MiB at `gpa` is one 2 MiB RMP entry (a huge guest_memfd page).
    pub fn huge(&mut self, gpa: u64) {
        let i = self.region(gpa);
        self.rmp[i] = PageSize::Size2M;
    }

    fn end(&self) -> u64 {
        self.base + self.pages.len() as u64 * SIZE_4K
    }

    fn index(&self, gpa: u64) -> usize {
        ((gpa - self.base) / SIZE_4K) as usize
    }

    fn region(&self, gpa: u64) -> usize {
        ((gpa - self.base) / SIZE_2M) as usize
    }

    pub fn page(&self, gpa: u64) -> Page {
        self.pages[self.index(gpa)]
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    pub fn psc_calls(&self) -> u64 {
        self.psc_calls
    }

    pub fn answer(&mut self, call: SnpCall) -> SnpAnswer {
        match call {
            SnpCall::Psc { .. } => SnpAnswer::Psc {
                msr: self.psc(call.msr().unwrap_or(0)),
            },
            SnpCall::Pvalidate(p) => {
                let (rax, cf) = self.pvalidate(p);
                SnpAnswer::Pvalidate { rax, cf }
            }
        }
    }

    /// S1: the hypervisor's side of one MSR-protocol request, decoded here
    /// from the bit positions of the GHCB spec (not with the guest's
    /// encoder, so an encoding bug cannot cancel itself out).
    pub fn psc(&mut self, msr: u64) -> u64 {
        self.psc_calls += 1;
        let error = |code: u64| (code << 32) | PSC_RESP;
        if msr & 0xfff != 0x014 {
            return error(0x100);
        }
        let op = (msr >> 52) & 0xf;
        let gfn = (msr >> 12) & ((1 << 40) - 1);
        let gpa = gfn * SIZE_4K;
        if self.faults.psc_wrong_response == Some(gfn) {
            return 0x013;
        }
        if self.faults.psc_error == Some(gfn) || gpa < self.base || gpa >= self.end() {
            return error(0x100);
        }
        let to_private = match op {
            1 => true,
            2 => false,
            _ => return error(0x100),
        };
        let i = self.index(gpa);
        let r = self.region(gpa);
        let p = self.pages[i];
        if !to_private && p.validated {
            self.violations.push(Violation::SharedWhileValidated(gpa));
        }
        if p.assigned != to_private {
            // PSMASH, then RMPUPDATE: assigned or not, never validated.
            self.rmp[r] = PageSize::Size4K;
            self.pages[i] = Page {
                assigned: to_private,
                validated: false,
                content: if to_private { 0xc1f3_0000 | gpa } else { 0 },
            };
        }
        PSC_RESP
    }

    /// S2: rax and CF.
    pub fn pvalidate(&mut self, c: PvalidateCall) -> (u64, bool) {
        self.pvalidates.push(Pvalidated {
            gpa: c.gpa,
            size: c.size,
            validate: c.validate,
        });
        if !c.gpa.is_multiple_of(c.size.bytes())
            || c.gpa < self.base
            || c.gpa + c.size.bytes() > self.end()
            || self.faults.fail_input == Some(c.gpa)
        {
            return (PVALIDATE_FAIL_INPUT, false);
        }
        let first = self.index(c.gpa);
        let n = c.size.pages() as usize;
        for i in first..first + n {
            if !self.pages[i].assigned {
                let gpa = self.base + i as u64 * SIZE_4K;
                self.violations.push(Violation::PvalidateOfShared(gpa));
                return (PVALIDATE_SUCCESS, false);
            }
        }
        if self.rmp[self.region(c.gpa)] != c.size {
            return (PVALIDATE_FAIL_SIZEMISMATCH, false);
        }
        if self.faults.no_update == Some(c.gpa) {
            return (PVALIDATE_SUCCESS, true);
        }
        let pages = &mut self.pages[first..first + n];
        if pages.iter().all(|p| p.validated == c.validate) {
            return (PVALIDATE_SUCCESS, true);
        }
        for p in pages {
            p.validated = c.validate;
        }
        (PVALIDATE_SUCCESS, false)
    }

    /// S3: the guest reads `gpa` through its private (C-bit set) mapping.
    pub fn read_private(&mut self, gpa: u64) -> u64 {
        let p = self.page(gpa);
        if !p.assigned {
            self.violations.push(Violation::PrivateAccessOfShared(gpa));
        } else if !p.validated {
            self.violations.push(Violation::NotValidated(gpa));
        }
        p.content
    }

    /// Every page of `r` as a finished conversion to `to` leaves it —
    /// shared: not assigned, not validated; private: assigned and
    /// validated — and no rule broken on the way.
    pub fn check(&self, r: MemRange, to: Target) -> Result<(), String> {
        if let Some(v) = self.violations.first() {
            return Err(format!("rule broken: {v:?}"));
        }
        for gpa in (r.start..r.end).step_by(SIZE_4K as usize) {
            let p = self.page(gpa);
            let ok = match to {
                Target::Shared => !p.assigned && !p.validated,
                Target::Private => p.assigned && p.validated,
            };
            if !ok {
                return Err(format!("{gpa:#x} is {p:?} after a conversion to {to:?}"));
            }
        }
        Ok(())
    }
}
