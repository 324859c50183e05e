//! The backends that run guests, as the rest of convtest names them.

/// A backend that runs guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// QEMU (system emulation; TCG or KVM). No conversion ABI: conv.* SKIP.
    Qemu,
    /// convtest's own KVM VMM on this host's /dev/kvm: serves MAP_GPA_RANGE
    /// (x86) or runs a pKVM protected VM (arm64), answers host checks.
    Vmm,
    /// QEMU TCG running a Linux L1 (Debian kernel, real KVM / pKVM) that
    /// runs convtest's VMM: for hosts without usable KVM.
    Nested,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Qemu => "qemu",
            BackendKind::Vmm => "vmm",
            BackendKind::Nested => "nested",
        }
    }

    /// Backends whose VMM is convtest's own, which answers host checks.
    pub fn has_own_vmm(self) -> bool {
        matches!(self, BackendKind::Vmm | BackendKind::Nested)
    }
}
