//! `pkvm`: the protected-KVM vendor hypercalls MEM_SHARE / MEM_UNSHARE
//! (SMCCC HVC64 over the DTB's conduit, x1 = IPA of one granule). One call
//! per granule, so a range costs `len / granule` calls, and a failure stops
//! at the refused granule: what came before was converted, what comes after
//! was never asked.
//!
//! Reset-to-private uses the shared-range ledger (`super::ledger`): a fresh
//! protected VM starts with every granule private, so only what an earlier
//! boot (or an earlier reset of this boot) shared is unshared. Sweeping all
//! RAM one 4K granule at a time would cost ~65k calls per 256 MiB at every
//! boot; the ledger makes a clean boot cost zero calls and a warm reset cost
//! exactly the granules that were shared. A record that overflowed asks for
//! the sweep.
//!
//! The reset fails closed: pKVM answers -3 to MEM_UNSHARE of a granule that
//! is not shared. For a granule whose share was asked but never confirmed
//! (pending) that is the expected "it stayed private"; for one pKVM
//! confirmed shared and never unshared it is a contradiction — the granule
//! is reported and left unknown.

use super::gate::Gate;
use super::ledger::LedgerStore;
use super::seam::{
    Calls, ConvError, ConversionAbi, ErrKind, Issued, RawCall, ResetOutcome, WrongAbi,
};
use crate::arch::{Current, Platform};
use alloc::boxed::Box;
use alloc::vec::Vec;
use convtest_proto::ledger::ResetPlan;
use convtest_proto::range::{MemRange, RangeList};
use convtest_proto::smccc::{
    PKVM_MEM_SHARE, PKVM_MEM_UNSHARE, SMCCC_KVM_FEATURES, SmcccAnswer, SmcccError, smccc_status,
};
use convtest_proto::tracker::Target;

pub struct Pkvm {
    granule: u64,
    ledger: LedgerStore,
    calls: PkvmCalls,
}

/// The SMCCC traps through the gate, and nothing else: every CPU may hold
/// a copy (the ledger stays with `Pkvm`).
#[derive(Clone, Copy)]
struct PkvmCalls {
    granule: u64,
    gate: Gate,
}

fn fid_name(fid: u32) -> &'static str {
    match fid {
        PKVM_MEM_SHARE => "MEM_SHARE",
        PKVM_MEM_UNSHARE => "MEM_UNSHARE",
        _ => "KVM_FEATURES",
    }
}

const fn fid_for(to: Target) -> u32 {
    match to {
        Target::Shared => PKVM_MEM_SHARE,
        Target::Private => PKVM_MEM_UNSHARE,
    }
}

/// What one MEM_UNSHARE of a granule the reset must make private told it.
enum Unshared {
    /// 0: it was shared and is private now.
    Now,
    /// -3: pKVM says it was not shared.
    NotShared,
}

impl PkvmCalls {
    /// x0..x3 of one call through the gate (a skipped conversion answers 0),
    /// or why there was no answer.
    fn call(&self, fid: u32, x1: u64) -> Result<[u64; 4], SmcccError> {
        if self.gate.skips(RawCall::Smccc { fid, x1 }.target()) {
            return Ok([0; 4]);
        }
        match Current::smccc_call(fid, x1, 0, 0) {
            None => Err(SmcccError::NoConduit),
            Some(SmcccAnswer::Undefined) => Err(SmcccError::Undefined),
            Some(SmcccAnswer::Value(r)) => Ok(r),
        }
    }

    /// MEM_SHARE / MEM_UNSHARE of the granule at `ipa`.
    fn mem(&self, fid: u32, ipa: u64) -> Result<(), SmcccError> {
        self.call(fid, ipa).and_then(|r| smccc_status(r[0]))
    }

    fn granule_at(&self, ipa: u64) -> MemRange {
        MemRange::from_len(ipa & !(self.granule - 1), self.granule)
    }

    /// One call per granule of `range`; stops at the first refusal. A
    /// partial fault's granule is passed over as if it had answered 0.
    fn each_granule(&self, fid: u32, to: Target, range: MemRange) -> Result<(), ConvError> {
        let omitted = self
            .gate
            .omits(to, range.len() / self.granule)
            .map(|k| range.start + k * self.granule);
        let mut ipa = range.start;
        while ipa < range.end {
            if omitted == Some(ipa) {
                ipa += self.granule;
                continue;
            }
            self.mem(fid, ipa).map_err(|e| ConvError {
                call: fid_name(fid),
                id: u64::from(fid),
                range,
                done: ipa - range.start,
                rest_unknown: false,
                kind: ErrKind::Smccc(e),
            })?;
            ipa += self.granule;
        }
        Ok(())
    }
}

impl Calls for PkvmCalls {
    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.each_granule(fid_for(to), to, range)
    }
}

impl Pkvm {
    /// `None` when no free granule can hold the ledger.
    pub fn new(granule: u64, free: &RangeList, phys_offset: u64, gate: Gate) -> Option<Self> {
        Some(Pkvm {
            granule,
            ledger: LedgerStore::place(free, granule, phys_offset)?,
            calls: PkvmCalls { granule, gate },
        })
    }

    fn call(&self, fid: u32, x1: u64) -> Result<[u64; 4], SmcccError> {
        self.calls.call(fid, x1)
    }

    fn mem(&self, fid: u32, ipa: u64) -> Result<(), SmcccError> {
        self.calls.mem(fid, ipa)
    }

    fn granule_at(&self, ipa: u64) -> MemRange {
        self.calls.granule_at(ipa)
    }

    fn unshare_for_reset(&self, ipa: u64, r: MemRange) -> Result<Unshared, ConvError> {
        match self.mem(PKVM_MEM_UNSHARE, ipa) {
            Ok(()) => Ok(Unshared::Now),
            Err(SmcccError::InvalidParameter) => Ok(Unshared::NotShared),
            Err(e) => Err(ConvError {
                call: "MEM_UNSHARE",
                id: u64::from(PKVM_MEM_UNSHARE),
                range: r,
                done: ipa - r.start,
                rest_unknown: false,
                kind: ErrKind::Smccc(e),
            }),
        }
    }

    /// `list` clipped to RAM and rounded out to granules.
    fn in_ram(&self, list: &RangeList, ram: &[MemRange]) -> Vec<MemRange> {
        let mut v = Vec::new();
        for l in list.iter() {
            for r in ram {
                let c = MemRange::new(l.start.max(r.start), l.end.min(r.end))
                    .align_outward(self.granule);
                let c = MemRange::new(c.start.max(r.start), c.end.min(r.end));
                if !c.is_empty() {
                    v.push(c);
                }
            }
        }
        v
    }
}

impl ConversionAbi for Pkvm {
    fn name(&self) -> &'static str {
        "pkvm"
    }

    fn granule(&self) -> u64 {
        self.granule
    }

    /// A share is recorded before the first call: a crash mid-way must not
    /// leave a shared granule the next boot does not know about.
    fn before(&mut self, range: MemRange, to: Target) {
        if to == Target::Shared {
            self.ledger.note_pending(range);
        }
    }

    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.calls.issue(range, to)
    }

    fn after(&mut self, done: MemRange, to: Target) {
        match to {
            Target::Shared => self.ledger.note_shared(done),
            Target::Private => self.ledger.note_private(done),
        }
    }

    fn calls(&self) -> Box<dyn Calls> {
        Box::new(self.calls)
    }

    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetOutcome, ConvError> {
        let mut out = ResetOutcome::default();
        // Only RAM is ever unshared: MEM_SHARE/UNSHARE of a non-RAM IPA
        // wedges the vCPU (docs/lanes.md), so a ledger entry outside RAM is
        // clipped, never trusted. `confirmed` ranges are the ones pKVM said
        // it shared.
        let (todo, confirmed): (Vec<MemRange>, Vec<MemRange>) = match self.ledger.load() {
            ResetPlan::Fresh => {
                out.report.method = "ledger-fresh-vm";
                (Vec::new(), Vec::new())
            }
            ResetPlan::Ranges { pending, shared } => {
                out.report.method = "ledger";
                let confirmed = self.in_ram(&shared, ram);
                let mut todo = self.in_ram(&pending, ram);
                todo.extend_from_slice(&confirmed);
                (todo, confirmed)
            }
            ResetPlan::Sweep => {
                // The overflowed record cannot tell a never-shared granule
                // from a forgotten one: -3 is taken as "private" here.
                out.report.method = "ledger-overflow-sweep";
                (ram.to_vec(), Vec::new())
            }
        };
        for r in todo {
            let mut ipa = r.start;
            while ipa < r.end {
                out.report.calls += 1;
                let answer = self.unshare_for_reset(ipa, r)?;
                let g = self.granule_at(ipa);
                if let Unshared::NotShared = answer
                    && confirmed.iter().any(|c| c.covers(&g))
                {
                    out.report.unknown += 1;
                    match out.unknown.last_mut() {
                        Some(last) if last.end == g.start => last.end = g.end,
                        _ => out.unknown.push(g),
                    }
                }
                ipa += self.granule;
            }
            out.report.ranges += 1;
            out.report.pages += r.len() / self.granule;
        }
        // A fresh record, still listing what could not be proven private.
        self.ledger.clear();
        for &u in &out.unknown {
            self.ledger.note_pending(u);
            self.ledger.note_shared(u);
        }
        Ok(out)
    }

    fn reserved(&self) -> Option<MemRange> {
        Some(self.ledger.range())
    }

    fn note_bare(&mut self, range: MemRange) {
        self.ledger.note_pending(range);
    }

    fn make_private(&mut self, range: MemRange) -> Result<(), ConvError> {
        let mut ipa = range.start;
        while ipa < range.end {
            // 0: it was shared; -3: it was not. Either way private now.
            self.unshare_for_reset(ipa, range)?;
            ipa += self.granule;
        }
        self.ledger.note_private(range);
        Ok(())
    }

    fn bookkeep(&mut self, range: MemRange) {
        self.ledger.note_pending(range);
        self.ledger.note_shared(range);
        self.ledger.note_private(range);
    }

    /// Keeps the ledger truthful whatever the suite asks: a MEM_SHARE is
    /// noted before it is made (its granule, even for an unaligned IPA), and
    /// confirmed or dropped by the answer.
    fn raw(&mut self, call: RawCall) -> Result<i64, WrongAbi> {
        let RawCall::Smccc { fid, x1 } = call else {
            return Err(WrongAbi);
        };
        let g = self.granule_at(x1);
        if fid == PKVM_MEM_SHARE {
            self.ledger.note_pending(g);
        }
        let x0 = match self.call(fid, x1) {
            Ok(r) => r[0] as i64,
            Err(e) => e.code(),
        };
        match (fid, x0) {
            (PKVM_MEM_SHARE, 0) => self.ledger.note_shared(g),
            // Refused: nothing became shared (a shared granule probed with a
            // second MEM_SHARE stays recorded as shared).
            (PKVM_MEM_SHARE, _) => self.ledger.drop_pending(g),
            (PKVM_MEM_UNSHARE, 0) => self.ledger.note_private(g),
            _ => {}
        }
        Ok(x0)
    }

    fn calls_for(&self, range: MemRange, to: Target) -> Issued {
        let fid = fid_for(to);
        Issued {
            count: range.len() / self.granule,
            first: RawCall::Smccc {
                fid,
                x1: range.start,
            },
            last: RawCall::Smccc {
                fid,
                x1: range.end.saturating_sub(self.granule),
            },
        }
    }

    /// KVM_FEATURES: answered by the hypervisor, changes nothing.
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        self.call(SMCCC_KVM_FEATURES, 0)
            .and_then(|r| {
                // The bitmap always has bit 0 (KVM_FEATURES itself).
                if r[0] & 1 == 1 && (r[0] as i64) >= 0 {
                    Ok(())
                } else {
                    Err(SmcccError::Other(r[0] as i64))
                }
            })
            .map_err(|e| ConvError {
                call: "KVM_FEATURES",
                id: u64::from(SMCCC_KVM_FEATURES),
                range: page,
                done: 0,
                rest_unknown: false,
                kind: ErrKind::Smccc(e),
            })
    }

    fn noop_op(&self) -> &'static str {
        "noop_kvm_features"
    }
}
