//! The conversion seam: one `Converter` per hypervisor ABI, chosen by
//! `detect()` from what the arch layer's probe found. Suites talk only to
//! this trait.

use alloc::boxed::Box;
use convtest_proto::hv::HypervisorName;
#[cfg(target_arch = "aarch64")]
use convtest_proto::hv::{ArmFinding, SmcccProbe};
#[cfg(target_arch = "x86_64")]
use convtest_proto::hv::{X86Cpuid, X86Finding};
use convtest_proto::range::MemRange;
use core::fmt;

/// Registers the discovery instructions returned, per arch.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    #[cfg(target_arch = "x86_64")]
    X86(X86Cpuid),
    #[cfg(target_arch = "aarch64")]
    Arm(SmcccProbe),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    #[cfg(target_arch = "x86_64")]
    X86(X86Finding),
    #[cfg(target_arch = "aarch64")]
    Arm(ArmFinding),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(target_arch = "x86_64")]
            Finding::X86(x) => x.fmt(f),
            #[cfg(target_arch = "aarch64")]
            Finding::Arm(a) => a.fmt(f),
        }
    }
}

impl Probe {
    pub fn finding(&self) -> Finding {
        match self {
            #[cfg(target_arch = "x86_64")]
            Probe::X86(c) => Finding::X86(c.finding()),
            #[cfg(target_arch = "aarch64")]
            Probe::Arm(s) => Finding::Arm(s.finding()),
        }
    }

    pub fn hypervisor(&self) -> HypervisorName {
        match self {
            #[cfg(target_arch = "x86_64")]
            Probe::X86(c) => c.hypervisor_name(),
            #[cfg(target_arch = "aarch64")]
            Probe::Arm(s) => s.hypervisor_name(),
        }
    }
}

/// A conversion call the hypervisor refused, with the raw code it returned.
#[allow(
    dead_code,
    reason = "constructed by the conversion backends (MAP_GPA_RANGE, pKVM issues)"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvError {
    pub call: &'static str,
    pub range: MemRange,
    pub code: i64,
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} returned {}", self.call, self.range, self.code)
    }
}

/// One hypervisor's private<->shared conversion ABI.
#[allow(
    dead_code,
    reason = "share/unshare are driven by the conversion tests once a backend exists"
)]
pub trait Converter {
    /// Backend name as reported in the header and JSON (`kvm-map-gpa-range`, `pkvm`, …).
    fn name(&self) -> &'static str;
    /// Smallest convertible unit in bytes.
    fn granule(&self) -> u64;
    /// Make `range` (granule-aligned, guest-physical) visible to the host.
    fn share(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// Make `range` private to the guest again.
    fn unshare(&mut self, range: MemRange) -> Result<(), ConvError>;
}

/// Why no converter was chosen: the probe's finding, shown as the SKIP reason.
#[derive(Clone, Copy, Debug)]
pub struct NoConverter(pub Finding);

impl fmt::Display for NoConverter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let usable = match self.0 {
            #[cfg(target_arch = "x86_64")]
            Finding::X86(x) => matches!(x, X86Finding::KvmMapGpaRange | X86Finding::Tdx),
            #[cfg(target_arch = "aarch64")]
            Finding::Arm(a) => matches!(a, ArmFinding::Pkvm { .. }),
        };
        if usable {
            write!(f, "{}, but this build has no backend for it yet", self.0)
        } else {
            self.0.fmt(f)
        }
    }
}

/// Picks the converter matching the probe's finding. No backend exists yet,
/// so every finding ends as `NoConverter` carrying what was seen.
pub fn detect(probe: &Probe) -> Result<Box<dyn Converter>, NoConverter> {
    Err(NoConverter(probe.finding()))
}
