//! The guest faults that live in the firmware's call path (`gfault=`
//! skip-share / skip-unshare, partial-*): an ABI asks the gate before every
//! trap, and a skipped call reports success without reaching the
//! hypervisor; before converting a range it asks which granule, if any, to
//! leave out — the buggy firmware convtest must be able to catch. With no
//! fault the gate lets everything through.

use convtest_proto::plan::GuestFault;
use convtest_proto::tracker::Target;

#[derive(Clone, Copy, Debug, Default)]
pub struct Gate {
    fault: Option<GuestFault>,
}

impl Gate {
    pub fn new(fault: Option<GuestFault>) -> Self {
        Gate { fault }
    }

    /// Whether a call converting to `to` is to be skipped (answered 0).
    pub fn skips(&self, to: Option<Target>) -> bool {
        matches!(
            (self.fault, to),
            (Some(GuestFault::SkipShare), Some(Target::Shared))
                | (Some(GuestFault::SkipUnshare), Some(Target::Private))
        )
    }

    /// The granule (index from 0) a conversion of `granules` granules to
    /// `to` is to leave out, converted or not, while its callers record
    /// them all.
    pub fn omits(&self, to: Target, granules: u64) -> Option<u64> {
        self.fault.and_then(|f| f.omits(to, granules))
    }
}
