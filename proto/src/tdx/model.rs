//! A model of the TDX module and the VMM (KVM + QEMU) for a TD's memory,
//! written from the specifications, that answers `TdxConversion`'s calls
//! in `cargo test`. Faults are injected answers a real VMM may give. Every
//! rule says where it comes from:
//!
//! - **R1 MapGPA** (GHCI, `TDG.VP.VMCALL<MapGPA>`; KVM `tdx_map_gpa`): gpa
//!   and size 4 KiB-aligned, else ALIGN_ERROR; the range inside the TD's
//!   RAM and on one side of the shared bit, else INVALID_OPERAND; r11 = gpa
//!   on an error. KVM hands the range to the VMM 2 MiB at a time and may
//!   answer RETRY with r11 = the first GPA not yet converted
//!   (`tdx_complete_vmcall_map_gpa`).
//! - **R2 to shared**: the VMM removes the private page from the Secure EPT
//!   (`TDH.MEM.PAGE.REMOVE`, TDX Module spec); its content is gone. The
//!   shared page is host memory, zero here (QEMU discards it whenever it
//!   converts).
//! - **R3 to private**: the VMM adds the page PENDING (`TDH.MEM.PAGE.AUG`),
//!   at 4 KiB (KVM today) or 2 MiB when the whole 2 MiB turns private at
//!   once and the model is told huge pages are on. A page already private
//!   is left as it is (its attributes do not change).
//! - **R4 `TDG.MEM.PAGE.ACCEPT`** (TDX Module ABI spec): a level other than
//!   the Secure EPT's answers PAGE_SIZE_MISMATCH; a PENDING page is zeroed
//!   and mapped; a mapped one answers PAGE_ALREADY_ACCEPTED. A GPA the VMM
//!   holds shared has no Secure EPT entry: the TD exits with an EPT
//!   violation and KVM + QEMU convert it to private on their own (an
//!   implicit conversion the TD never asked for): a violation here.
//! - **R5 access**: the TD reading a PENDING page through its private
//!   mapping takes a #VE; reading a shared page through it converts the
//!   page implicitly: both violations.

use super::abi::{
    ACCEPT_ALREADY_ACCEPTED, ACCEPT_OPERAND_BUSY, ACCEPT_OPERAND_INVALID, ACCEPT_SIZE_MISMATCH,
    AcceptStatus, VMCALL_ALIGN_ERROR, VMCALL_INVALID_OPERAND, VMCALL_RETRY, VMCALL_SUCCESS,
    VmcallStatus,
};
use super::accept::AcceptCall;
use super::convert::{TdxAnswer, TdxCall};
use super::map_gpa::MapGpaCall;
use crate::range::MemRange;
use crate::size_walk::{PageSize, SIZE_2M, SIZE_4K};
use crate::tracker::Target;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmm {
    Private,
    Shared,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sept {
    /// No private page at this GPA (it is shared).
    Absent,
    /// Added by the VMM, not yet accepted: the TD may not touch it.
    Pending,
    /// Accepted: the TD's private page.
    Mapped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub vmm: Vmm,
    pub sept: Sept,
    /// What the page holds (the TD's private bytes, or the host's shared ones).
    pub content: u64,
}

/// Answers the model gives instead of the right ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The first MapGPA converts this many bytes and answers RETRY with r11
    /// just past them.
    pub retry_after: Option<u64>,
    /// Every MapGPA converts one 2 MiB chunk and answers RETRY (KVM with an
    /// interrupt pending at every chunk).
    pub retry_every_chunk: bool,
    /// The second MapGPA answers RETRY with an r11 below its gpa.
    pub retry_backwards: bool,
    /// MapGPA answers RETRY with r11 = the end of its range.
    pub retry_outside: bool,
    /// MapGPA answers RETRY with r11 = its gpa, forever.
    pub retry_stall: bool,
    /// MapGPA answers INVALID_OPERAND.
    pub refuse_map: bool,
    /// The VMM answers SUCCESS to MapGPA(shared) but leaves this page
    /// private and mapped.
    pub keep_private: Option<u64>,
    /// ACCEPT of this page answers OPERAND_INVALID.
    pub accept_invalid: Option<u64>,
    /// ACCEPT answers OPERAND_BUSY this many times before doing the work.
    pub busy: u32,
    /// R3 at 2 MiB where a whole 2 MiB turns private at once.
    pub huge_aug: bool,
}

/// What the TD did that the platform would punish or silently undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// R4: ACCEPT of a GPA the VMM holds shared.
    AcceptOfShared(u64),
    /// R5: the TD read a PENDING page.
    ReadPending(u64),
    /// R5: the TD read a shared page through its private mapping.
    PrivateReadOfShared(u64),
}

pub struct TdxModel {
    base: u64,
    shared_bit: u64,
    pages: Vec<Page>,
    /// Secure EPT level per 2 MiB of the model's RAM.
    levels: Vec<PageSize>,
    pub faults: Faults,
    violations: Vec<Violation>,
    map_calls: u64,
    accept_calls: u64,
    busy_left: u32,
}

impl TdxModel {
    /// RAM `ram` (2 MiB-aligned), all private and mapped at 2 MiB, each page
    /// holding a distinct non-zero value, as a TD finds its memory at launch.
    pub fn new(ram: MemRange, shared_bit: u64) -> TdxModel {
        assert!(ram.start.is_multiple_of(SIZE_2M) && ram.end.is_multiple_of(SIZE_2M));
        let n = (ram.len() / SIZE_4K) as usize;
        TdxModel {
            base: ram.start,
            shared_bit,
            pages: (0..n)
                .map(|i| Page {
                    vmm: Vmm::Private,
                    sept: Sept::Mapped,
                    content: 0x7d00_0000 + i as u64,
                })
                .collect(),
            levels: vec![PageSize::Size2M; (ram.len() / SIZE_2M) as usize],
            faults: Faults::default(),
            violations: Vec::new(),
            map_calls: 0,
            accept_calls: 0,
            busy_left: 0,
        }
    }

    fn end(&self) -> u64 {
        self.base + self.pages.len() as u64 * SIZE_4K
    }

    fn index(&self, gpa: u64) -> usize {
        ((gpa - self.base) / SIZE_4K) as usize
    }

    pub fn page(&self, gpa: u64) -> Page {
        self.pages[self.index(gpa)]
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    pub fn map_calls(&self) -> u64 {
        self.map_calls
    }

    pub fn accept_calls(&self) -> u64 {
        self.accept_calls
    }

    pub fn answer(&mut self, call: TdxCall) -> TdxAnswer {
        match call {
            TdxCall::MapGpa(c) => self.map_gpa(c),
            TdxCall::Accept(c) => TdxAnswer::Accept(self.accept(c)),
        }
    }

    /// R1–R3.
    pub fn map_gpa(&mut self, c: MapGpaCall) -> TdxAnswer {
        self.map_calls += 1;
        let answer = |raw: u64, r11: u64| TdxAnswer::MapGpa {
            status: VmcallStatus::from_raw(raw),
            r11,
        };
        let shared = c.gpa & self.shared_bit != 0;
        let start = c.gpa & !self.shared_bit;
        let Some(end) = start.checked_add(c.size) else {
            return answer(VMCALL_INVALID_OPERAND, c.gpa);
        };
        if !c.gpa.is_multiple_of(SIZE_4K) || !c.size.is_multiple_of(SIZE_4K) {
            return answer(VMCALL_ALIGN_ERROR, c.gpa);
        }
        if c.size == 0 || start < self.base || end > self.end() || end & self.shared_bit != 0 {
            return answer(VMCALL_INVALID_OPERAND, c.gpa);
        }
        if self.faults.refuse_map {
            return answer(VMCALL_INVALID_OPERAND, c.gpa);
        }
        if self.faults.retry_stall {
            return answer(VMCALL_RETRY, c.gpa);
        }
        if self.faults.retry_outside {
            return answer(VMCALL_RETRY, c.gpa + c.size);
        }
        if self.faults.retry_backwards && self.map_calls == 2 {
            return answer(VMCALL_RETRY, c.gpa - SIZE_4K);
        }
        let to = if shared {
            Target::Shared
        } else {
            Target::Private
        };
        if let Some(n) = self.faults.retry_after.take() {
            let upto = (start + n).min(end);
            self.convert(MemRange::new(start, upto), to);
            return answer(VMCALL_RETRY, upto | (c.gpa & self.shared_bit));
        }
        if self.faults.retry_every_chunk || self.faults.retry_backwards {
            let upto = (start + SIZE_2M).min(end);
            self.convert(MemRange::new(start, upto), to);
            if upto < end {
                return answer(VMCALL_RETRY, upto | (c.gpa & self.shared_bit));
            }
            return answer(VMCALL_SUCCESS, 0);
        }
        self.convert(MemRange::new(start, end), to);
        answer(VMCALL_SUCCESS, 0)
    }

    fn convert(&mut self, r: MemRange, to: Target) {
        if to == Target::Private && self.faults.huge_aug {
            // R3: whole 2 MiB turning private at once go in as one page.
            let mut a = r.start.next_multiple_of(SIZE_2M);
            while a + SIZE_2M <= r.end {
                let i = self.index(a);
                if self.pages[i..i + 512].iter().all(|p| p.vmm == Vmm::Shared) {
                    self.levels[((a - self.base) / SIZE_2M) as usize] = PageSize::Size2M;
                    for p in &mut self.pages[i..i + 512] {
                        *p = Page {
                            vmm: Vmm::Private,
                            sept: Sept::Pending,
                            content: p.content,
                        };
                    }
                }
                a += SIZE_2M;
            }
        }
        for gpa in (r.start..r.end).step_by(SIZE_4K as usize) {
            let i = self.index(gpa);
            let level = ((gpa - self.base) / SIZE_2M) as usize;
            let p = &mut self.pages[i];
            match (to, p.vmm) {
                (Target::Shared, Vmm::Private) if self.faults.keep_private == Some(gpa) => {}
                (Target::Shared, Vmm::Private) => {
                    // R2: the private page goes, the shared one is empty.
                    *p = Page {
                        vmm: Vmm::Shared,
                        sept: Sept::Absent,
                        content: 0,
                    };
                    // A removed page splits whatever 2 MiB mapping held it.
                    self.levels[level] = PageSize::Size4K;
                }
                (Target::Private, Vmm::Shared) => {
                    // R3: added PENDING, at 4 KiB unless added above as 2 MiB.
                    *p = Page {
                        vmm: Vmm::Private,
                        sept: Sept::Pending,
                        content: 0xdead_0000 | gpa,
                    };
                }
                _ => {}
            }
        }
    }

    /// R4.
    pub fn accept(&mut self, c: AcceptCall) -> AcceptStatus {
        self.accept_calls += 1;
        if self.busy_left == 0 && self.faults.busy > 0 {
            self.busy_left = self.faults.busy;
            self.faults.busy = 0;
        }
        if self.busy_left > 0 {
            self.busy_left -= 1;
            return AcceptStatus::from_raw(ACCEPT_OPERAND_BUSY);
        }
        if !c.gpa.is_multiple_of(c.size.bytes())
            || c.gpa < self.base
            || c.gpa + c.size.bytes() > self.end()
            || self.faults.accept_invalid == Some(c.gpa)
        {
            return AcceptStatus::from_raw(ACCEPT_OPERAND_INVALID);
        }
        let first = self.index(c.gpa);
        let n = c.size.pages() as usize;
        for i in first..first + n {
            if self.pages[i].vmm == Vmm::Shared {
                // R4: EPT violation, implicit conversion by KVM + QEMU.
                let gpa = self.base + i as u64 * SIZE_4K;
                self.violations.push(Violation::AcceptOfShared(gpa));
                self.pages[i] = Page {
                    vmm: Vmm::Private,
                    sept: Sept::Pending,
                    content: 0xbad0_0000 | gpa,
                };
            }
        }
        let level = self.levels[((c.gpa - self.base) / SIZE_2M) as usize];
        if level != c.size {
            return AcceptStatus::from_raw(ACCEPT_SIZE_MISMATCH);
        }
        let pages = &mut self.pages[first..first + n];
        if pages.iter().all(|p| p.sept == Sept::Mapped) {
            return AcceptStatus::from_raw(ACCEPT_ALREADY_ACCEPTED);
        }
        for p in pages {
            p.sept = Sept::Mapped;
            p.content = 0;
        }
        AcceptStatus::Success
    }

    /// R5: the TD reads `gpa` through its private mapping.
    pub fn read_private(&mut self, gpa: u64) -> u64 {
        let p = self.page(gpa);
        match (p.vmm, p.sept) {
            (Vmm::Shared, _) => self.violations.push(Violation::PrivateReadOfShared(gpa)),
            (_, Sept::Pending) => self.violations.push(Violation::ReadPending(gpa)),
            _ => {}
        }
        p.content
    }

    /// The TD writes `v` into the private page at `gpa` (must be mapped).
    pub fn write_private(&mut self, gpa: u64, v: u64) {
        let i = self.index(gpa);
        assert_eq!(
            self.pages[i].sept,
            Sept::Mapped,
            "test writes mapped pages only"
        );
        self.pages[i].content = v;
    }

    /// Every page of `r` in the state a finished conversion to `to` leaves:
    /// shared with no private page behind it, or private and accepted; and
    /// no rule broken on the way.
    pub fn check(&self, r: MemRange, to: Target) -> Result<(), String> {
        if let Some(v) = self.violations.first() {
            return Err(format!("platform rule broken: {v:?}"));
        }
        for gpa in (r.start..r.end).step_by(SIZE_4K as usize) {
            let p = self.page(gpa);
            let ok = match to {
                Target::Shared => p.vmm == Vmm::Shared && p.sept == Sept::Absent,
                Target::Private => p.vmm == Vmm::Private && p.sept == Sept::Mapped,
            };
            if !ok {
                return Err(format!("{gpa:#x} is {p:?} after a conversion to {to:?}"));
            }
        }
        Ok(())
    }

    /// Whether every page of `r` reads zero (what an accept leaves: TDX
    /// converts destructively).
    pub fn zeroed(&self, r: MemRange) -> bool {
        (r.start..r.end)
            .step_by(SIZE_4K as usize)
            .all(|gpa| self.page(gpa).content == 0)
    }
}
