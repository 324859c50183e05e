//! Where the shared-range ledger (`convtest_proto::ledger`) lives: one
//! private granule at the top of the highest free RAM range, the same place
//! at every boot of the same machine. Every update is written through to the
//! point of coherency, so a warm reboot that starts with the MMU and caches
//! off still reads what the previous boot wrote last.

use convtest_proto::ledger::{self, Ledger, WORDS};
use convtest_proto::range::{MemRange, RangeList, align_down};

pub struct LedgerStore {
    at: MemRange,
    phys_offset: u64,
    ledger: Ledger,
}

impl LedgerStore {
    /// The top `granule` of the highest range of `free`, if one fits.
    pub fn place(free: &RangeList, granule: u64, phys_offset: u64) -> Option<Self> {
        let top = free.iter().max_by_key(|r| r.end)?;
        let end = align_down(top.end, granule);
        let start = end.checked_sub(granule)?;
        (start >= top.start && granule >= ledger::BYTES).then(|| LedgerStore {
            at: MemRange::new(start, end),
            phys_offset,
            ledger: Ledger::new(),
        })
    }

    pub fn range(&self) -> MemRange {
        self.at
    }

    fn words(&self) -> *mut [u64; WORDS] {
        self.at.start.wrapping_add(self.phys_offset) as *mut [u64; WORDS]
    }

    /// What the previous boot left.
    pub fn load(&self) -> ledger::Plan {
        // SAFETY: `at` is a granule of free RAM this store owns (removed
        // from what tests may use), mapped at `phys_offset`, 8-byte aligned.
        let w = unsafe { self.words().read_volatile() };
        Ledger::decode(&w)
    }

    /// Starts a new, empty record (after the reset made everything private).
    pub fn clear(&mut self) {
        self.ledger = Ledger::new();
        self.save();
    }

    /// Before asking to share `r`.
    pub fn note_pending(&mut self, r: MemRange) {
        self.ledger.note_pending(r);
        self.save();
    }

    /// After the hypervisor confirmed `r` shared.
    pub fn note_shared(&mut self, r: MemRange) {
        if r.is_empty() {
            return;
        }
        self.ledger.note_shared(r);
        self.save();
    }

    pub fn note_private(&mut self, r: MemRange) {
        if r.is_empty() {
            return;
        }
        self.ledger.note_private(r);
        self.save();
    }

    fn save(&self) {
        let w = self.ledger.encode();
        // SAFETY: as in `load`.
        unsafe { self.words().write_volatile(w) };
        crate::arch::clean_dcache(self.at.start.wrapping_add(self.phys_offset), ledger::BYTES);
    }
}
