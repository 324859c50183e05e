//! Time the VMM spends in host calls while serving one exit: the part of
//! an exit's cost that is the kernel's, reported apart in the bench lines.

use std::time::Instant;

/// ns since `t`, saturating (584 years).
pub fn ns_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Time in host calls while serving one exit, ns; `None`: not called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostTime {
    /// KVM_SET_MEMORY_ATTRIBUTES.
    pub attributes: Option<u64>,
    /// Punch and discard: making the pages read zero.
    pub clear: Option<u64>,
}

impl HostTime {
    /// Runs `f`, adding its duration to `part`.
    pub fn time<T>(part: &mut Option<u64>, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        let spent = ns_since(t);
        *part = Some(part.unwrap_or(0).saturating_add(spent));
        r
    }
}
