//! The guest faults that live in the firmware's call path (`gfault=`
//! skip-share / skip-unshare): an ABI asks the gate before every trap,
//! and a skipped call reports success without reaching the hypervisor —
//! the buggy firmware convtest must be able to catch. With no fault the
//! gate lets everything through.

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
}
