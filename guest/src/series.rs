//! The guest's side of a reboot series (`reboots=N`): the boot record in a
//! persistent page of private RAM (`convtest_proto::reboot` says why it is
//! trusted over the host), which boot this is, and the planned reset.

use crate::arch::{Current, Platform};
use crate::persist::PersistentPage;
use convtest_proto::plan::Plan;
use convtest_proto::range::RangeList;
use convtest_proto::reboot::{BootIndex, BootRecord, Stage, WORDS, boot_index};

pub struct Series {
    page: PersistentPage,
    seed: u64,
    reboots: u32,
    pub index: BootIndex,
}

impl Series {
    /// Takes the record's page out of `test_ram`, reads what the previous
    /// boot left, decides this boot's index and records that it started.
    pub fn begin(
        test_ram: &mut RangeList,
        phys_offset: u64,
        plan: &Plan<'_>,
    ) -> Result<Series, &'static str> {
        let page = PersistentPage::place(
            test_ram,
            Current::PAGE_SIZE,
            (WORDS * 8) as u64,
            phys_offset,
        )
        .ok_or("no free RAM page for the boot record")?;
        test_ram
            .subtract(&page.range())
            .map_err(|_| "free RAM map too fragmented for the boot record")?;
        let found = BootRecord::decode(&page.read::<WORDS>());
        let s = Series {
            index: boot_index(found, plan.seed, plan.reboots, plan.boot),
            page,
            seed: plan.seed,
            reboots: plan.reboots,
        };
        s.record(Stage::Running);
        Ok(s)
    }

    fn record(&self, stage: Stage) {
        let r = BootRecord {
            seed: self.seed,
            reboots: self.reboots,
            boot: self.index.index,
            stage,
        };
        self.page.write(&r.encode());
    }

    /// No boot of the series follows this one.
    pub fn is_last(&self) -> bool {
        self.index.index >= self.reboots
    }

    /// Records that this boot ended as planned and resets the machine.
    pub fn reset(&self) -> ! {
        self.record(Stage::Dirty);
        Current::reboot()
    }
}
