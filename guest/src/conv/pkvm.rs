//! `pkvm`: the protected-KVM vendor hypercalls MEM_SHARE / MEM_UNSHARE
//! (SMCCC HVC64 over the DTB's conduit, x1 = IPA of one granule). One call
//! per granule, so a range costs `len / granule` calls.
//!
//! Reset-to-private uses the shared-range ledger (`super::ledger`): a fresh
//! protected VM starts with every granule private, so only what an earlier
//! boot of this VM shared (listed in the ledger) is unshared. Sweeping all
//! RAM one 4K granule at a time would cost ~65k calls per 256 MiB at every
//! boot; the ledger makes a clean boot cost zero calls and a warm reboot
//! cost exactly the granules that were shared. A record that overflowed asks
//! for the sweep. Unsharing a granule that is already private answers -3,
//! which the reset accepts.

use super::ledger::LedgerStore;
use super::tracked::{Backend, ConvError, ErrKind, Rejection, ResetReport};
use crate::arch;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::hv::{
    PKVM_MEM_SHARE, PKVM_MEM_UNSHARE, SMCCC_KVM_FEATURES, SmcccAnswer, SmcccError, smccc_status,
};
use convtest_proto::ledger::Plan;
use convtest_proto::range::{MemRange, RangeList};
use convtest_proto::tracker::PageState;

pub struct Pkvm {
    granule: u64,
    ledger: LedgerStore,
}

/// x0..x3 of one call, or why there was no answer.
fn call(fid: u32, a1: u64) -> Result<[u64; 4], SmcccError> {
    match arch::smccc_call(fid, a1, 0, 0) {
        None => Err(SmcccError::NoConduit),
        Some(SmcccAnswer::Undefined) => Err(SmcccError::Undefined),
        Some(SmcccAnswer::Value(r)) => Ok(r),
    }
}

/// MEM_SHARE / MEM_UNSHARE of the granule at `ipa`.
fn mem(fid: u32, ipa: u64) -> Result<(), SmcccError> {
    call(fid, ipa).and_then(|r| smccc_status(r[0]))
}

fn fid_name(fid: u32) -> &'static str {
    match fid {
        PKVM_MEM_SHARE => "MEM_SHARE",
        PKVM_MEM_UNSHARE => "MEM_UNSHARE",
        _ => "KVM_FEATURES",
    }
}

fn code(r: Result<(), SmcccError>) -> i64 {
    r.map_or_else(|e| e.code(), |()| 0)
}

impl Pkvm {
    /// `None` when no free granule can hold the ledger.
    pub fn new(granule: u64, free: &RangeList, phys_offset: u64) -> Option<Self> {
        Some(Pkvm {
            granule,
            ledger: LedgerStore::place(free, granule, phys_offset)?,
        })
    }

    /// One call per granule of `range`; stops at the first refusal.
    fn each_granule(&self, fid: u32, range: MemRange) -> Result<(), ConvError> {
        let mut ipa = range.start;
        while ipa < range.end {
            mem(fid, ipa).map_err(|e| ConvError {
                call: fid_name(fid),
                id: u64::from(fid),
                range,
                done: ipa - range.start,
                kind: ErrKind::Smccc(e),
            })?;
            ipa += self.granule;
        }
        Ok(())
    }

    /// Unshares every granule of `r`; -3 (already private) counts as done.
    fn force_private(&self, r: MemRange, calls: &mut u64) -> Result<(), ConvError> {
        let mut ipa = r.start;
        while ipa < r.end {
            *calls += 1;
            match mem(PKVM_MEM_UNSHARE, ipa) {
                Ok(()) | Err(SmcccError::InvalidParameter) => {}
                Err(e) => {
                    return Err(ConvError {
                        call: "MEM_UNSHARE",
                        id: u64::from(PKVM_MEM_UNSHARE),
                        range: r,
                        done: ipa - r.start,
                        kind: ErrKind::Smccc(e),
                    });
                }
            }
            ipa += self.granule;
        }
        Ok(())
    }
}

impl Backend for Pkvm {
    fn name(&self) -> &'static str {
        "pkvm"
    }

    fn granule(&self) -> u64 {
        self.granule
    }

    fn convert(&mut self, range: MemRange, to: PageState) -> Result<(), ConvError> {
        match to {
            PageState::Shared => {
                // Recorded before the first call: a crash mid-way must not
                // leave a shared granule the next boot does not know about.
                self.ledger.note_pending(range);
                let res = self.each_granule(PKVM_MEM_SHARE, range);
                let done = res.as_ref().map_or_else(|e| e.done, |()| range.len());
                self.ledger
                    .note_shared(MemRange::from_len(range.start, done));
                res
            }
            PageState::Private | PageState::Unknown => {
                let res = self.each_granule(PKVM_MEM_UNSHARE, range);
                let done = res.as_ref().map_or_else(|e| e.done, |()| range.len());
                self.ledger
                    .note_private(MemRange::from_len(range.start, done));
                res
            }
        }
    }

    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetReport, ConvError> {
        let mut rep = ResetReport::default();
        // Only RAM is ever unshared: MEM_SHARE/UNSHARE of a non-RAM IPA
        // wedges the vCPU (findings doc §2), so a ledger entry outside RAM
        // is clipped, never trusted.
        let todo: Vec<MemRange> = match self.ledger.load() {
            Plan::Fresh => {
                rep.method = "ledger-fresh-vm";
                Vec::new()
            }
            Plan::Ranges { pending, shared } => {
                rep.method = "ledger";
                let mut v = Vec::new();
                for l in pending.iter().chain(shared.iter()) {
                    for r in ram {
                        let s = l.start.max(r.start);
                        let e = l.end.min(r.end);
                        let clipped = MemRange::new(s, e).align_outward(self.granule);
                        let clipped =
                            MemRange::new(clipped.start.max(r.start), clipped.end.min(r.end));
                        if !clipped.is_empty() {
                            v.push(clipped);
                        }
                    }
                }
                v
            }
            Plan::Sweep => {
                rep.method = "ledger-overflow-sweep";
                ram.to_vec()
            }
        };
        for r in todo {
            self.force_private(r, &mut rep.calls)?;
            rep.ranges += 1;
            rep.pages += r.len() / self.granule;
        }
        self.ledger.clear();
        Ok(rep)
    }

    fn reserved(&self) -> Option<MemRange> {
        Some(self.ledger.range())
    }

    /// pKVM answers -3 (INVALID_PARAMETER) for an unaligned IPA and for a
    /// granule already in the requested state (measured: a second
    /// MEM_SHARE of the same granule → -3). Not probed: MEM_SHARE of an IPA
    /// outside RAM — it wedges the vCPU for good (findings doc §2), and an
    /// IPA just above the end of RAM is untested for the same reason.
    fn rejections(&mut self, page: MemRange, _ram_end: u64) -> Vec<Rejection> {
        let g = page.start;
        let mut out = Vec::new();
        let mut push = |what, fid: u32, ipa: u64, got: i64| {
            out.push(Rejection {
                what,
                call: format!("{} ipa={ipa:#x}", fid_name(fid)),
                expected: -3,
                got,
            })
        };
        // The ledger hears of every call that might share, so an
        // unexpected acceptance is still undone at the next boot.
        self.ledger.note_pending(page);
        let unaligned = mem(PKVM_MEM_SHARE, g + 8);
        push("unaligned IPA", PKVM_MEM_SHARE, g + 8, code(unaligned));
        let unshare_private = mem(PKVM_MEM_UNSHARE, g);
        push(
            "unshare of a private granule",
            PKVM_MEM_UNSHARE,
            g,
            code(unshare_private),
        );
        // Setup for the next case: the granule shared once (must be 0).
        let first = mem(PKVM_MEM_SHARE, g);
        let again = if first.is_ok() {
            code(mem(PKVM_MEM_SHARE, g))
        } else {
            // Report the failed setup as the answer: it is not -3 either
            // unless pKVM thought the granule was shared already.
            code(first)
        };
        push("share of a shared granule", PKVM_MEM_SHARE, g, again);
        // Back to private, whatever happened above (-3 = already private).
        let mut calls = 0;
        if self.force_private(page, &mut calls).is_ok() {
            self.ledger.note_private(page);
        }
        out
    }

    /// KVM_FEATURES: answered by the hypervisor, changes nothing.
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        call(SMCCC_KVM_FEATURES, 0)
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
                kind: ErrKind::Smccc(e),
            })
    }

    fn noop_op(&self) -> &'static str {
        "noop_kvm_features"
    }

    fn describe(&self, range: MemRange, to: PageState) -> String {
        let fid = if to == PageState::Shared {
            PKVM_MEM_SHARE
        } else {
            PKVM_MEM_UNSHARE
        };
        format!(
            "{} x{} (one per {}-byte granule from {:#x})",
            fid_name(fid),
            range.len() / self.granule,
            self.granule,
            range.start
        )
    }
}
