//! x86 CPUID: what a hypervisor (or a TDX module, or an SEV-capable CPU)
//! says about itself through CPUID leaves and SEV_STATUS. The guest executes
//! the raw instructions; turning their registers into a finding happens here
//! so it can be tested on the host.

use crate::hypervisor::{HypervisorName, Sig};
use core::fmt;

/// CPUID 0x40000001 EAX bit: KVM_FEATURE_HC_MAP_GPA_RANGE.
pub const KVM_FEATURE_HC_MAP_GPA_RANGE: u32 = 1 << 16;
pub const KVM_SIGNATURE: [u8; 12] = *b"KVMKVMKVM\0\0\0";
/// CPUID 0x21 subleaf 0 in EBX, EDX, ECX order.
pub const TDX_SIGNATURE: [u8; 12] = *b"IntelTDX    ";
pub const HYPERVISOR_LEAF: u32 = 0x4000_0000;
pub const TDX_LEAF: u32 = 0x21;
/// CPUID 0x80000000 EAX: the highest extended leaf.
pub const EXT_MAX_LEAF: u32 = 0x8000_0000;
/// CPUID 0x8000001F: AMD encrypted-memory capabilities.
pub const SEV_LEAF: u32 = 0x8000_001f;
/// CPUID 0x8000001F EAX bit 1: SEV supported (gates the SEV_STATUS read).
pub const SEV_CPUID_BIT: u32 = 1 << 1;
/// SEV_STATUS, read-only; hypervisors that do not implement it raise #GP.
pub const MSR_SEV_STATUS: u32 = 0xc001_0131;
pub const SEV_STATUS_SEV: u64 = 1 << 0;
pub const SEV_STATUS_ES: u64 = 1 << 1;
pub const SEV_STATUS_SNP: u64 = 1 << 2;

/// Twelve signature bytes from three CPUID registers in the order given.
pub fn signature(a: u32, b: u32, c: u32) -> [u8; 12] {
    let mut s = [0u8; 12];
    s[0..4].copy_from_slice(&a.to_le_bytes());
    s[4..8].copy_from_slice(&b.to_le_bytes());
    s[8..12].copy_from_slice(&c.to_le_bytes());
    s
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuVendor {
    Intel,
    Amd,
    Hygon,
    Other([u8; 12]),
}

impl CpuVendor {
    /// From CPUID 0 EBX, EDX, ECX.
    pub fn from_cpuid0(ebx: u32, edx: u32, ecx: u32) -> Self {
        match &signature(ebx, edx, ecx) {
            b"GenuineIntel" => CpuVendor::Intel,
            b"AuthenticAMD" => CpuVendor::Amd,
            b"HygonGenuine" => CpuVendor::Hygon,
            other => CpuVendor::Other(*other),
        }
    }

    /// AMD and Hygon trap with `vmmcall`, everyone else with `vmcall`.
    pub fn uses_vmmcall(self) -> bool {
        matches!(self, CpuVendor::Amd | CpuVendor::Hygon)
    }
}

/// Raw CPUID answers the x86 probe collected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct X86Cpuid {
    /// CPUID.1:ECX bit 31.
    pub hypervisor_bit: bool,
    /// CPUID 0x40000000: max leaf and signature (EBX, ECX, EDX).
    pub hv_max_leaf: u32,
    pub hv_signature: [u8; 12],
    /// CPUID 0x40000001 EAX when the hypervisor range reaches it.
    pub hv_features: Option<u32>,
    /// Highest basic leaf (CPUID 0 EAX); 0x21 must be within it.
    pub max_basic_leaf: u32,
    /// CPUID 0x21 subleaf 0 signature (EBX, EDX, ECX) when in range.
    pub tdx_signature: Option<[u8; 12]>,
    /// Highest extended leaf (CPUID 0x80000000 EAX); 0x8000001F must be within it.
    pub max_ext_leaf: u32,
    /// CPUID 0x8000001F EAX when in range.
    pub sev_leaf_eax: Option<u32>,
    /// RDMSR SEV_STATUS, attempted only when [`X86Cpuid::sev_cpuid`].
    pub sev_status: SevStatus,
}

/// What reading SEV_STATUS (MSR 0xC0010131) gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SevStatus {
    /// Not read: CPUID 0x8000001F is out of range or EAX bit 1 is clear.
    #[default]
    NotAsked,
    /// RDMSR raised #GP: the hypervisor does not implement the MSR, so this
    /// is not an SEV guest (a VMM can pass the host's SEV CPUID bit through).
    Faulted,
    Value(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X86Finding {
    Tdx,
    /// SEV_STATUS bit 2: SEV-SNP guest (memory validated with PVALIDATE,
    /// page state changed through the GHCB).
    SevSnp {
        status: u64,
    },
    /// SEV_STATUS bit 1 without bit 2: SEV-ES guest.
    SevEs {
        status: u64,
    },
    /// SEV_STATUS bit 0 with bits 1 and 2 clear: plain SEV guest.
    Sev {
        status: u64,
    },
    /// KVM with MAP_GPA_RANGE advertised.
    KvmMapGpaRange,
    /// KVM without bit 16: the VMM did not enable the exit.
    KvmWithoutMapGpaRange {
        features: u32,
    },
    /// Some other hypervisor signature.
    Foreign([u8; 12]),
    /// CPUID.1:ECX[31] clear.
    BareMetal,
}

impl X86Cpuid {
    /// CPUID 0x8000001F EAX bit 1: the CPU model supports SEV, so asking
    /// SEV_STATUS is meaningful (it may still #GP; see [`SevStatus::Faulted`]).
    pub fn sev_cpuid(&self) -> bool {
        self.sev_leaf_eax
            .is_some_and(|eax| eax & SEV_CPUID_BIT != 0)
    }

    /// TDX first, then SEV (SEV_STATUS is the CPU's own word, so it outranks
    /// the hypervisor bit and signature: KVM also offers MAP_GPA_RANGE to SEV
    /// guests), then the hypervisor leaves.
    pub fn finding(&self) -> X86Finding {
        if self.tdx_signature == Some(TDX_SIGNATURE) {
            return X86Finding::Tdx;
        }
        if let SevStatus::Value(status) = self.sev_status {
            if status & SEV_STATUS_SNP != 0 {
                return X86Finding::SevSnp { status };
            }
            if status & SEV_STATUS_ES != 0 {
                return X86Finding::SevEs { status };
            }
            if status & SEV_STATUS_SEV != 0 {
                return X86Finding::Sev { status };
            }
        }
        if !self.hypervisor_bit {
            return X86Finding::BareMetal;
        }
        if self.hv_signature == KVM_SIGNATURE {
            let features = self.hv_features.unwrap_or(0);
            return if features & KVM_FEATURE_HC_MAP_GPA_RANGE != 0 {
                X86Finding::KvmMapGpaRange
            } else {
                X86Finding::KvmWithoutMapGpaRange { features }
            };
        }
        X86Finding::Foreign(self.hv_signature)
    }

    /// Name for the header's `hypervisor=`.
    pub fn hypervisor_name(&self) -> HypervisorName {
        match self.finding() {
            X86Finding::Tdx => HypervisorName::Static("tdx"),
            _ if !self.hypervisor_bit => HypervisorName::Static("none"),
            _ => HypervisorName::Sig(self.hv_signature),
        }
    }
}

/// Why an SEV guest must not fall back to KVM's MAP_GPA_RANGE.
const NOT_ENCRYPTED: &str =
    "MAP_GPA_RANGE would only change the hypervisor's view of memory the guest never encrypted";

impl fmt::Display for X86Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            X86Finding::Tdx => f.write_str("CPUID 0x21 reports IntelTDX (TDG.VP.VMCALL MapGPA)"),
            X86Finding::SevSnp { status } => write!(
                f,
                "AMD SEV-SNP guest (SEV_STATUS={status:#x}): GHCB page state change and PVALIDATE"
            ),
            X86Finding::SevEs { status } => write!(
                f,
                "AMD SEV-ES guest (SEV_STATUS={status:#x}): this build has no SEV-ES backend (C-bit page tables, GHCB, #VC handler); {NOT_ENCRYPTED}"
            ),
            X86Finding::Sev { status } => write!(
                f,
                "AMD SEV guest (SEV_STATUS={status:#x}): this build has no SEV backend (C-bit page tables); {NOT_ENCRYPTED}"
            ),
            X86Finding::KvmMapGpaRange => f.write_str(
                "hypervisor KVMKVMKVM advertises MAP_GPA_RANGE (CPUID 0x40000001 EAX bit 16)",
            ),
            X86Finding::KvmWithoutMapGpaRange { features } => write!(
                f,
                "hypervisor KVMKVMKVM without MAP_GPA_RANGE (CPUID 0x40000001 EAX={features:#x}, bit 16 clear: the VMM did not enable KVM_CAP_EXIT_HYPERCALL)"
            ),
            X86Finding::Foreign(sig) => {
                write!(f, "hypervisor {} offers no conversion ABI", Sig(*sig))
            }
            X86Finding::BareMetal => {
                f.write_str("no hypervisor (CPUID.1:ECX bit 31 clear) offers a conversion ABI")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn regs(s: &[u8; 12]) -> (u32, u32, u32) {
        let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        (w(0), w(4), w(8))
    }

    #[test]
    fn vendor() {
        let (b, d, c) = regs(b"AuthenticAMD");
        assert_eq!(CpuVendor::from_cpuid0(b, d, c), CpuVendor::Amd);
        assert!(CpuVendor::Amd.uses_vmmcall());
        let (b, d, c) = regs(b"GenuineIntel");
        assert_eq!(CpuVendor::from_cpuid0(b, d, c), CpuVendor::Intel);
        assert!(!CpuVendor::Intel.uses_vmmcall());
    }

    #[test]
    fn x86_findings() {
        let (b, c, d) = regs(b"TCGTCGTCGTCG");
        let tcg = X86Cpuid {
            hypervisor_bit: true,
            hv_signature: signature(b, c, d),
            ..Default::default()
        };
        assert_eq!(
            tcg.finding().to_string(),
            "hypervisor TCGTCGTCGTCG offers no conversion ABI"
        );
        assert_eq!(tcg.hypervisor_name().to_string(), "TCGTCGTCGTCG");

        let kvm = X86Cpuid {
            hypervisor_bit: true,
            hv_signature: KVM_SIGNATURE,
            hv_features: Some(0x0100_0000),
            ..Default::default()
        };
        assert_eq!(
            kvm.finding(),
            X86Finding::KvmWithoutMapGpaRange {
                features: 0x0100_0000
            }
        );
        assert_eq!(kvm.hypervisor_name().to_string(), "KVMKVMKVM");
        let kvm_map = X86Cpuid {
            hv_features: Some(1 << 16),
            ..kvm
        };
        assert_eq!(kvm_map.finding(), X86Finding::KvmMapGpaRange);

        let bare = X86Cpuid::default();
        assert_eq!(bare.finding(), X86Finding::BareMetal);

        let tdx = X86Cpuid {
            tdx_signature: Some(TDX_SIGNATURE),
            ..kvm
        };
        assert_eq!(tdx.finding(), X86Finding::Tdx);
    }

    #[test]
    fn sev_findings() {
        let kvm_map = X86Cpuid {
            hypervisor_bit: true,
            hv_signature: KVM_SIGNATURE,
            hv_features: Some(KVM_FEATURE_HC_MAP_GPA_RANGE),
            max_ext_leaf: SEV_LEAF,
            sev_leaf_eax: Some(SEV_CPUID_BIT),
            ..Default::default()
        };
        assert!(kvm_map.sev_cpuid());

        // KVM offers MAP_GPA_RANGE to SEV guests too: SEV must win.
        let sev = X86Cpuid {
            sev_status: SevStatus::Value(SEV_STATUS_SEV),
            ..kvm_map
        };
        assert_eq!(sev.finding(), X86Finding::Sev { status: 1 });
        assert_eq!(
            sev.finding().to_string(),
            "AMD SEV guest (SEV_STATUS=0x1): this build has no SEV backend (C-bit page tables); \
             MAP_GPA_RANGE would only change the hypervisor's view of memory the guest never encrypted"
        );
        assert_eq!(sev.hypervisor_name().to_string(), "KVMKVMKVM");

        let es = X86Cpuid {
            sev_status: SevStatus::Value(SEV_STATUS_SEV | SEV_STATUS_ES),
            ..kvm_map
        };
        assert_eq!(es.finding(), X86Finding::SevEs { status: 3 });
        let text = es.finding().to_string();
        assert!(
            text.starts_with("AMD SEV-ES guest (SEV_STATUS=0x3): this build has no SEV-ES backend")
        );
        assert!(text.contains("#VC handler") && text.contains("never encrypted"));

        // Bits above 2 (feature enables such as DebugSwap) are kept in the text.
        let snp = X86Cpuid {
            sev_status: SevStatus::Value(0x10007),
            ..kvm_map
        };
        assert_eq!(snp.finding(), X86Finding::SevSnp { status: 0x10007 });
        assert_eq!(
            snp.finding().to_string(),
            "AMD SEV-SNP guest (SEV_STATUS=0x10007): GHCB page state change and PVALIDATE"
        );
        assert_eq!(snp.hypervisor_name().to_string(), "KVMKVMKVM");

        // SEV_STATUS outranks a hidden hypervisor bit, and the name stays "none".
        let hidden = X86Cpuid {
            hypervisor_bit: false,
            hv_signature: [0; 12],
            hv_features: None,
            ..sev
        };
        assert_eq!(hidden.finding(), X86Finding::Sev { status: 1 });
        assert_eq!(hidden.hypervisor_name().to_string(), "none");
    }

    #[test]
    fn sev_cpuid_without_sev_status_is_not_sev() {
        let kvm_map = X86Cpuid {
            hypervisor_bit: true,
            hv_signature: KVM_SIGNATURE,
            hv_features: Some(KVM_FEATURE_HC_MAP_GPA_RANGE),
            max_ext_leaf: SEV_LEAF,
            sev_leaf_eax: Some(SEV_CPUID_BIT | 1),
            ..Default::default()
        };
        // The VMM passed the host's SEV CPUID bit through, RDMSR raised #GP.
        let faulted = X86Cpuid {
            sev_status: SevStatus::Faulted,
            ..kvm_map
        };
        assert!(faulted.sev_cpuid());
        assert_eq!(faulted.finding(), X86Finding::KvmMapGpaRange);
        // The MSR exists but reads 0 (SEV-capable host CPU, ordinary guest).
        let zero = X86Cpuid {
            sev_status: SevStatus::Value(0),
            ..kvm_map
        };
        assert_eq!(zero.finding(), X86Finding::KvmMapGpaRange);
        // TCG: the read faulted, the finding is TCG's own.
        let (b, c, d) = regs(b"TCGTCGTCGTCG");
        let tcg = X86Cpuid {
            hv_signature: signature(b, c, d),
            hv_features: None,
            ..faulted
        };
        assert_eq!(
            tcg.finding().to_string(),
            "hypervisor TCGTCGTCGTCG offers no conversion ABI"
        );
        // A faulted read on bare metal is still bare metal.
        let bare = X86Cpuid {
            sev_leaf_eax: Some(SEV_CPUID_BIT),
            sev_status: SevStatus::Faulted,
            ..Default::default()
        };
        assert_eq!(bare.finding(), X86Finding::BareMetal);
        // No SEV bit: the probe never asks.
        assert!(
            !X86Cpuid {
                sev_leaf_eax: Some(0),
                ..Default::default()
            }
            .sev_cpuid()
        );
        assert!(!X86Cpuid::default().sev_cpuid());
    }

    #[test]
    fn tdx_outranks_sev() {
        let both = X86Cpuid {
            tdx_signature: Some(TDX_SIGNATURE),
            sev_status: SevStatus::Value(SEV_STATUS_SEV),
            ..Default::default()
        };
        assert_eq!(both.finding(), X86Finding::Tdx);
    }

    #[test]
    fn tdx_signature_register_order() {
        // EBX="Inte" EDX="lTDX" ECX="    "
        let (b, d, c) = regs(b"IntelTDX    ");
        assert_eq!(signature(b, d, c), TDX_SIGNATURE);
    }
}
