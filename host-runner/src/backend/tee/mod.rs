//! `--tee tdx|snp`: the guest as a TDX trust domain or an SEV-SNP guest
//! under QEMU on hardware KVM, booted as the UEFI disk image by Debian's
//! TDVF / OVMF-AmdSev. What the host must offer is checked first and named
//! when missing (host.rs), the firmware is fetched from Debian into the
//! cache (firmware.rs, varstore.rs), the QEMU command line follows QEMU's
//! own documentation (command.rs), and the backend runs it (backend.rs).
//! None of this has run on TDX or SNP hardware (docs/tee.md).

pub mod backend;
pub mod command;
pub mod firmware;
pub mod host;
pub mod varstore;

use clap::ValueEnum;

/// Which confidential guest (`--tee`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tee {
    /// Intel TDX: a trust domain (QEMU `-object tdx-guest`, QEMU ≥ 10.1).
    Tdx,
    /// AMD SEV-SNP (QEMU `-object sev-snp-guest`, QEMU ≥ 9.1).
    Snp,
}

impl Tee {
    pub fn as_str(self) -> &'static str {
        match self {
            Tee::Tdx => "tdx",
            Tee::Snp => "snp",
        }
    }

    /// The technology's own name.
    pub fn title(self) -> &'static str {
        match self {
            Tee::Tdx => "TDX",
            Tee::Snp => "SEV-SNP",
        }
    }

    /// The KVM VM type QEMU creates (uapi `asm/kvm.h`): its bit in
    /// KVM_CAP_VM_TYPES.
    pub fn vm_type(self) -> (u32, &'static str) {
        match self {
            Tee::Tdx => (5, "KVM_X86_TDX_VM"),
            Tee::Snp => (4, "KVM_X86_SNP_VM"),
        }
    }

    /// QEMU's object for it, and the first release that has it.
    pub fn qemu_object(self) -> (&'static str, (u32, u32)) {
        match self {
            Tee::Tdx => ("tdx-guest", (10, 1)),
            Tee::Snp => ("sev-snp-guest", (9, 1)),
        }
    }

    /// The CPU flag hardware KVM shows for this vendor.
    pub fn cpu_flag(self) -> &'static str {
        match self {
            Tee::Tdx => "vmx",
            Tee::Snp => "svm",
        }
    }
}
