//! The shared-range ledger: a boot-persistent record of guest memory that
//! may currently be shared with the host, kept by the guest in one private
//! granule of its own RAM.
//!
//! Why it exists: reset-to-private must run at every boot, but on pKVM a
//! conversion is one hypercall per granule, so unsharing all of RAM with 4K
//! granules costs hundreds of thousands of calls. A fresh protected VM starts
//! all private, and after a warm reboot only what the previous boot shared
//! can be shared. So the guest notes a range as *pending* before it asks to
//! share it, as *shared* once the hypervisor confirmed, and drops it only
//! after the hypervisor confirmed the unshare; the next boot unshares exactly
//! what is listed. The page itself is never shared, so the host cannot forge
//! it; a missing or corrupt record means a fresh VM (its memory never held a
//! record), and a record that overflowed asks for a full sweep instead.
//!
//! The two lists let the reset fail closed: a granule the hypervisor
//! confirmed shared that it then calls "not shared" (pKVM's -3 to
//! MEM_UNSHARE) is a contradiction to report, while the same answer for a
//! pending granule (the share never completed) just means it stayed private.
//!
//! Layout in 64-bit words: magic, flags (bit 0 = overflowed), pending count,
//! shared count, the pending (start, end) pairs, the shared pairs, then a
//! checksum over everything before it.

use crate::range::{MemRange, RANGE_CAPACITY, RangeError, RangeList};

pub const MAGIC: u64 = 0x6c65_6467_6572_7632; // "ledgerv2"
const FLAG_OVERFLOW: u64 = 1;
const HEADER: usize = 4;
/// Words the encoded ledger occupies at most.
pub const WORDS: usize = HEADER + 4 * RANGE_CAPACITY + 1;
pub const BYTES: u64 = (WORDS * 8) as u64;
// The smallest granule (4K) must hold it.
const _: () = assert!(BYTES <= 4096);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ledger {
    /// Ranges a share was asked for but not (yet) confirmed; sorted, disjoint.
    pub pending: RangeList,
    /// Ranges the hypervisor confirmed shared; sorted, disjoint.
    pub shared: RangeList,
    /// More disjoint ranges were shared than the record holds: everything
    /// must be swept at the next boot.
    pub overflowed: bool,
}

/// What the next boot must unshare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "decoded once per reset and consumed right away: boxing the ranges would put them on the heap for nothing"
)]
pub enum ResetPlan {
    /// No valid record: a fresh VM, nothing was ever shared.
    Fresh,
    /// Exactly these ranges (either list may be empty).
    Ranges {
        pending: RangeList,
        shared: RangeList,
    },
    /// The record overflowed: sweep all RAM.
    Sweep,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    pub const fn new() -> Self {
        Ledger {
            pending: RangeList::new(),
            shared: RangeList::new(),
            overflowed: false,
        }
    }

    /// Before asking to share `r`.
    pub fn note_pending(&mut self, r: MemRange) {
        if self.overflowed {
            return;
        }
        if let Err(RangeError::Full) = self.pending.insert_merged(r) {
            self.overflowed = true;
        }
    }

    /// After the hypervisor confirmed `r` is shared.
    pub fn note_shared(&mut self, r: MemRange) {
        if self.overflowed {
            return;
        }
        let moved = self
            .pending
            .subtract(&r)
            .and_then(|()| self.shared.insert_merged(r));
        if moved.is_err() {
            self.overflowed = true;
        }
    }

    /// After the hypervisor refused to share `r`: nothing of it became
    /// shared by that call (what was shared before stays recorded so).
    pub fn drop_pending(&mut self, r: MemRange) {
        if self.overflowed {
            return;
        }
        if self.pending.subtract(&r).is_err() {
            self.overflowed = true;
        }
    }

    /// After the hypervisor confirmed `r` is private again. An overflowed
    /// record stays overflowed: it no longer knows what else is shared.
    pub fn note_private(&mut self, r: MemRange) {
        if self.overflowed {
            return;
        }
        // Subtracting one range splits at most one entry in two; if that
        // does not fit, the record can no longer be exact.
        if self.pending.subtract(&r).is_err() || self.shared.subtract(&r).is_err() {
            self.overflowed = true;
        }
    }

    pub fn encode(&self) -> [u64; WORDS] {
        let mut w = [0u64; WORDS];
        w[0] = MAGIC;
        w[1] = if self.overflowed { FLAG_OVERFLOW } else { 0 };
        w[2] = self.pending.len() as u64;
        w[3] = self.shared.len() as u64;
        let mut n = HEADER;
        for r in self.pending.iter().chain(self.shared.iter()) {
            w[n] = r.start;
            w[n + 1] = r.end;
            n += 2;
        }
        w[n] = checksum(&w[..n]);
        w
    }

    /// The boot's reading of whatever the granule holds.
    pub fn decode(w: &[u64; WORDS]) -> ResetPlan {
        if w[0] != MAGIC || w[1] & !FLAG_OVERFLOW != 0 {
            return ResetPlan::Fresh;
        }
        let (np, ns) = (w[2], w[3]);
        if np > RANGE_CAPACITY as u64 || ns > RANGE_CAPACITY as u64 {
            return ResetPlan::Fresh;
        }
        let n = HEADER + 2 * (np + ns) as usize;
        if w[n] != checksum(&w[..n]) {
            return ResetPlan::Fresh;
        }
        if w[1] & FLAG_OVERFLOW != 0 {
            return ResetPlan::Sweep;
        }
        let list = |from: usize, count: u64| {
            let mut list = RangeList::new();
            for i in 0..count as usize {
                let r = MemRange::new(w[from + 2 * i], w[from + 2 * i + 1]);
                if r.is_empty() || list.push(r).is_err() {
                    return None;
                }
            }
            // Valid checksum but overlapping entries: trust nothing in it.
            list.validate().is_ok().then_some(list)
        };
        match (list(HEADER, np), list(HEADER + 2 * np as usize, ns)) {
            (Some(pending), Some(shared)) => ResetPlan::Ranges { pending, shared },
            _ => ResetPlan::Sweep,
        }
    }
}

fn checksum(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x243f_6a88_85a3_08d3, |acc, &w| crate::prng::mix(acc ^ w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(p: ResetPlan) -> (RangeList, RangeList) {
        match p {
            ResetPlan::Ranges { pending, shared } => (pending, shared),
            other => panic!("expected ranges, got {other:?}"),
        }
    }

    #[test]
    fn roundtrip_and_merge() {
        let mut l = Ledger::new();
        for r in [
            MemRange::new(0x1000, 0x2000),
            MemRange::new(0x2000, 0x3000),
            MemRange::new(0x10000, 0x11000),
        ] {
            l.note_pending(r);
            l.note_shared(r);
        }
        l.note_private(MemRange::new(0x1000, 0x2000));
        let (pending, shared) = ranges(Ledger::decode(&l.encode()));
        assert!(pending.is_empty());
        assert_eq!(
            shared.as_slice(),
            [
                MemRange::new(0x2000, 0x3000),
                MemRange::new(0x10000, 0x11000)
            ]
        );
        l.note_private(MemRange::new(0, 0x20000));
        let (pending, shared) = ranges(Ledger::decode(&l.encode()));
        assert!(
            pending.is_empty() && shared.is_empty(),
            "all unshared: an empty, valid record"
        );
    }

    #[test]
    fn an_unconfirmed_share_stays_pending() {
        let mut l = Ledger::new();
        l.note_pending(MemRange::new(0x4000, 0x8000));
        // The hypervisor confirmed only the first granule.
        l.note_shared(MemRange::new(0x4000, 0x5000));
        let (pending, shared) = ranges(Ledger::decode(&l.encode()));
        assert_eq!(pending.as_slice(), [MemRange::new(0x5000, 0x8000)]);
        assert_eq!(shared.as_slice(), [MemRange::new(0x4000, 0x5000)]);
    }

    #[test]
    fn a_refused_share_leaves_only_what_was_shared_before() {
        let mut l = Ledger::new();
        let g = MemRange::new(0x4000, 0x5000);
        l.note_pending(g);
        l.note_shared(g);
        // A second MEM_SHARE of the shared granule (a state probe): noted
        // before the call, refused with -3.
        l.note_pending(g);
        l.drop_pending(g);
        let (pending, shared) = ranges(Ledger::decode(&l.encode()));
        assert!(pending.is_empty());
        assert_eq!(shared.as_slice(), [g]);
    }

    #[test]
    fn garbage_is_fresh() {
        assert_eq!(Ledger::decode(&[0; WORDS]), ResetPlan::Fresh);
        let mut w = Ledger::new().encode();
        w[2] = 1; // count changed, checksum not
        assert_eq!(Ledger::decode(&w), ResetPlan::Fresh);
        let mut w = Ledger::new().encode();
        w[3] = u64::MAX;
        assert_eq!(Ledger::decode(&w), ResetPlan::Fresh);
    }

    #[test]
    fn overflow_asks_for_a_sweep() {
        let mut l = Ledger::new();
        for i in 0..(RANGE_CAPACITY as u64 + 1) {
            l.note_pending(MemRange::from_len(i * 0x2000, 0x1000));
        }
        assert!(l.overflowed);
        assert_eq!(Ledger::decode(&l.encode()), ResetPlan::Sweep);
        l.note_private(MemRange::new(0, u64::MAX));
        assert_eq!(
            Ledger::decode(&l.encode()),
            ResetPlan::Sweep,
            "stays overflowed"
        );
    }
}
