//! Where the shared-range ledger (`convtest_proto::ledger`) lives: one
//! private, persistent granule (`crate::persist`), so a warm reboot finds
//! what the previous boot shared.

use crate::persist::PersistentPage;
use convtest_proto::ledger::{self, Ledger, WORDS};
use convtest_proto::range::{MemRange, RangeList};

pub struct LedgerStore {
    page: PersistentPage,
    ledger: Ledger,
}

impl LedgerStore {
    /// The top `granule` of the highest range of `free`, if one fits.
    pub fn place(free: &RangeList, granule: u64, phys_offset: u64) -> Option<Self> {
        Some(LedgerStore {
            page: PersistentPage::place(free, granule, ledger::BYTES, phys_offset)?,
            ledger: Ledger::new(),
        })
    }

    pub fn range(&self) -> MemRange {
        self.page.range()
    }

    /// What the previous boot left.
    pub fn load(&self) -> ledger::ResetPlan {
        Ledger::decode(&self.page.read::<WORDS>())
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

    /// After the hypervisor refused to share `r`.
    pub fn drop_pending(&mut self, r: MemRange) {
        self.ledger.drop_pending(r);
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
        self.page.write(&self.ledger.encode());
    }
}
