//! What every test works with: the boot's facts, the plan, the RAM it may
//! overwrite, the converter (or why there is none) and the CPUs that came up.

use crate::boot::BootInfo;
use crate::conv::{Converter, NoConverter};
use crate::smp;
use alloc::boxed::Box;
use convtest_proto::plan::{Parsed, Plan};
use convtest_proto::range::{MemRange, RangeList};

pub struct Ctx {
    pub boot: &'static BootInfo,
    pub parsed: Parsed<'static>,
    pub plan: Plan<'static>,
    /// Free RAM minus the heap: what memory tests may overwrite.
    pub test_ram: RangeList,
    pub heap: MemRange,
    pub converter: Result<Box<dyn Converter>, NoConverter>,
    /// What secondary CPU bring-up did (wanted 0: the plan named one CPU).
    pub smp: smp::Report,
}
