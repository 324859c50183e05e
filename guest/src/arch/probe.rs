//! What the hypervisor discovery instructions returned ([`Probe`], from
//! `Platform::probe`) and what that means ([`Finding`]); the decoding itself
//! is `convtest_proto`'s (`cpuid`, `smccc`), tested on the host.

#[cfg(target_arch = "x86_64")]
use convtest_proto::cpuid::{X86Cpuid, X86Finding};
use convtest_proto::hypervisor::HypervisorName;
#[cfg(target_arch = "aarch64")]
use convtest_proto::smccc::{ArmFinding, SmcccProbe};
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
