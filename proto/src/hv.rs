//! Decoding what a hypervisor says about itself: x86 CPUID leaves and the
//! arm64 SMCCC vendor-hypervisor service. The guest executes the raw
//! instructions; turning their registers into a finding happens here so it
//! can be tested on the host.

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

/// A signature as text, trailing NULs dropped, non-printables as `.`.
pub struct Sig(pub [u8; 12]);

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.0.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        for &b in &self.0[..end] {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypervisorName {
    Static(&'static str),
    Sig([u8; 12]),
    /// arm64 vendor-hyp UID.
    Uid([u32; 4]),
}

impl fmt::Display for HypervisorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HypervisorName::Static(s) => f.write_str(s),
            HypervisorName::Sig(s) => Sig(*s).fmt(f),
            HypervisorName::Uid(u) if *u == KVM_UID => f.write_str("KVM"),
            HypervisorName::Uid(u) => {
                write!(f, "uid:{:08x}-{:08x}-{:08x}-{:08x}", u[0], u[1], u[2], u[3])
            }
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
                "AMD SEV-SNP guest (SEV_STATUS={status:#x}): this build has no SEV-SNP backend (C-bit page tables, GHCB page-state change, PVALIDATE, #VC handler); {NOT_ENCRYPTED}"
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

// ---- arm64 SMCCC ----------------------------------------------------------

pub const SMCCC_VENDOR_HYP_CALL_UID: u32 = 0x8600_ff01;
pub const SMCCC_KVM_FEATURES: u32 = 0x8600_0000;
pub const PKVM_HYP_MEMINFO: u32 = 0xc600_0002;
pub const PKVM_MEM_SHARE: u32 = 0xc600_0003;
pub const PKVM_MEM_UNSHARE: u32 = 0xc600_0004;
/// The KVM vendor-hypervisor UUID as returned in w0..w3.
pub const KVM_UID: [u32; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];
/// SMCCC NOT_SUPPORTED (-1) as a 32-bit register value.
pub const SMCCC_NOT_SUPPORTED: u32 = 0xffff_ffff;

/// Feature-bitmap bit of a vendor-hyp function: its function number.
pub const fn kvm_feature_bit(func_id: u32) -> u64 {
    1 << (func_id & 0xffff)
}

pub const PKVM_NEEDED_FEATURES: u64 = kvm_feature_bit(PKVM_HYP_MEMINFO)
    | kvm_feature_bit(PKVM_MEM_SHARE)
    | kvm_feature_bit(PKVM_MEM_UNSHARE);

/// What the SMCCC conduit answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmcccAnswer<T> {
    /// The call instruction itself trapped as undefined: nothing at EL2/EL3
    /// implements SMCCC on this conduit.
    Undefined,
    Value(T),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
    /// The DTB names no PSCI method.
    None,
}

impl Conduit {
    pub fn from_psci_method(m: &str) -> Self {
        match m {
            "hvc" => Conduit::Hvc,
            "smc" => Conduit::Smc,
            _ => Conduit::None,
        }
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Conduit::Hvc => "hvc",
            Conduit::Smc => "smc",
            Conduit::None => "none",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmcccProbe {
    pub conduit: Conduit,
    pub uid: SmcccAnswer<[u32; 4]>,
    /// KVM_FEATURES bitmap (x0), asked only of KVM.
    pub features: Option<u64>,
    /// HYP_MEMINFO x0 (granule or negative error), asked only when advertised.
    pub meminfo: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmFinding {
    NoConduit,
    Undefined(Conduit),
    UidNotSupported(Conduit),
    Foreign([u32; 4]),
    /// KVM, but HYP_MEMINFO / MEM_SHARE / MEM_UNSHARE are not all offered:
    /// a normal (non-protected) VM.
    KvmNotProtected {
        features: u64,
    },
    BadGranule(i64),
    Pkvm {
        granule: u64,
    },
}

impl SmcccProbe {
    pub fn finding(&self) -> ArmFinding {
        if self.conduit == Conduit::None {
            return ArmFinding::NoConduit;
        }
        let uid = match self.uid {
            SmcccAnswer::Undefined => return ArmFinding::Undefined(self.conduit),
            SmcccAnswer::Value(u) => u,
        };
        if uid[0] == SMCCC_NOT_SUPPORTED {
            return ArmFinding::UidNotSupported(self.conduit);
        }
        if uid != KVM_UID {
            return ArmFinding::Foreign(uid);
        }
        let features = self.features.unwrap_or(0);
        if features & PKVM_NEEDED_FEATURES != PKVM_NEEDED_FEATURES {
            return ArmFinding::KvmNotProtected { features };
        }
        match self.meminfo {
            Some(g) if valid_granule(g) => ArmFinding::Pkvm { granule: g as u64 },
            Some(g) => ArmFinding::BadGranule(g),
            None => ArmFinding::BadGranule(-1),
        }
    }

    pub fn hypervisor_name(&self) -> HypervisorName {
        match self.uid {
            SmcccAnswer::Value(u) if u[0] != SMCCC_NOT_SUPPORTED => HypervisorName::Uid(u),
            _ => HypervisorName::Static("none"),
        }
    }
}

/// An SMCCC call that did not succeed: the raw x0 kept with its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmcccError {
    /// -1 NOT_SUPPORTED (a normal VM asking pKVM-only functions).
    NotSupported,
    /// -2 NOT_REQUIRED.
    NotRequired,
    /// -3 INVALID_PARAMETER (pKVM: unaligned IPA, granule already in that state).
    InvalidParameter,
    Other(i64),
    /// The call instruction trapped as undefined.
    Undefined,
    /// The DTB names no conduit.
    NoConduit,
}

impl SmcccError {
    /// The raw x0 as a signed value; 0 for the two cases with no answer.
    pub const fn code(self) -> i64 {
        match self {
            SmcccError::NotSupported => -1,
            SmcccError::NotRequired => -2,
            SmcccError::InvalidParameter => -3,
            SmcccError::Other(c) => c,
            SmcccError::Undefined | SmcccError::NoConduit => 0,
        }
    }
}

impl fmt::Display for SmcccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmcccError::NotSupported => f.write_str("-1 (NOT_SUPPORTED)"),
            SmcccError::NotRequired => f.write_str("-2 (NOT_REQUIRED)"),
            SmcccError::InvalidParameter => f.write_str("-3 (INVALID_PARAMETER)"),
            SmcccError::Other(c) => write!(f, "{c} (unexpected)"),
            SmcccError::Undefined => f.write_str("no answer: the call trapped as undefined"),
            SmcccError::NoConduit => f.write_str("no answer: no SMCCC conduit"),
        }
    }
}

/// x0 of a pKVM memory call (MEM_SHARE, MEM_UNSHARE): 0 is success, the
/// SMCCC error codes are errors, anything else is kept raw.
pub fn smccc_status(x0: u64) -> Result<(), SmcccError> {
    match x0 as i64 {
        0 => Ok(()),
        -1 => Err(SmcccError::NotSupported),
        -2 => Err(SmcccError::NotRequired),
        -3 => Err(SmcccError::InvalidParameter),
        other => Err(SmcccError::Other(other)),
    }
}

/// A granule must be a power of two of at least 4 KiB.
pub fn valid_granule(g: i64) -> bool {
    g >= 4096 && (g as u64).is_power_of_two()
}

impl fmt::Display for ArmFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArmFinding::NoConduit => {
                f.write_str("the DTB names no PSCI/SMCCC conduit (/psci method)")
            }
            ArmFinding::Undefined(c) => write!(
                f,
                "SMCCC over {} trapped as undefined: no hypervisor answers vendor-hyp calls",
                c.as_str()
            ),
            ArmFinding::UidNotSupported(c) => write!(
                f,
                "VENDOR_HYP_CALL_UID over {} answered NOT_SUPPORTED: no vendor hypervisor service",
                c.as_str()
            ),
            ArmFinding::Foreign(u) => write!(
                f,
                "vendor hypervisor {} is not KVM and offers no conversion ABI",
                HypervisorName::Uid(*u)
            ),
            ArmFinding::KvmNotProtected { features } => write!(
                f,
                "KVM vendor hypervisor without HYP_MEMINFO/MEM_SHARE/MEM_UNSHARE (KVM_FEATURES={features:#x}): not a protected VM"
            ),
            ArmFinding::BadGranule(g) => write!(
                f,
                "pKVM HYP_MEMINFO returned {g}: not a power-of-two granule >= 4096"
            ),
            ArmFinding::Pkvm { granule } => write!(f, "pKVM protected VM, granule {granule}"),
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
        let text = snp.finding().to_string();
        assert!(text.starts_with(
            "AMD SEV-SNP guest (SEV_STATUS=0x10007): this build has no SEV-SNP backend"
        ));
        assert!(text.contains("PVALIDATE") && text.contains("never encrypted"));
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

    #[test]
    fn arm_findings() {
        let base = SmcccProbe {
            conduit: Conduit::Hvc,
            uid: SmcccAnswer::Value(KVM_UID),
            features: Some(0x1d),
            meminfo: Some(4096),
        };
        assert_eq!(base.finding(), ArmFinding::Pkvm { granule: 4096 });
        assert_eq!(base.hypervisor_name().to_string(), "KVM");
        // A normal KVM VM: features only has bit 0.
        let normal = SmcccProbe {
            features: Some(0x1),
            meminfo: None,
            ..base
        };
        assert!(normal.finding().to_string().contains("not a protected VM"));
        assert_eq!(
            SmcccProbe {
                meminfo: Some(12288),
                ..base
            }
            .finding(),
            ArmFinding::BadGranule(12288)
        );
        assert_eq!(
            SmcccProbe {
                meminfo: Some(-1),
                ..base
            }
            .finding(),
            ArmFinding::BadGranule(-1)
        );
        assert_eq!(
            SmcccProbe {
                uid: SmcccAnswer::Undefined,
                ..base
            }
            .finding(),
            ArmFinding::Undefined(Conduit::Hvc)
        );
        let ns = SmcccProbe {
            uid: SmcccAnswer::Value([SMCCC_NOT_SUPPORTED, 0, 0, 0]),
            ..base
        };
        assert_eq!(ns.finding(), ArmFinding::UidNotSupported(Conduit::Hvc));
        assert_eq!(ns.hypervisor_name().to_string(), "none");
        assert_eq!(
            SmcccProbe {
                conduit: Conduit::None,
                ..base
            }
            .finding(),
            ArmFinding::NoConduit
        );
        assert!(matches!(
            SmcccProbe {
                uid: SmcccAnswer::Value([1, 2, 3, 4]),
                ..base
            }
            .finding(),
            ArmFinding::Foreign(_)
        ));
    }

    #[test]
    fn feature_bits_match_design_measurement() {
        // DESIGN.md §3: a protected guest saw FEATURES=0x1d.
        assert_eq!(0x1d & PKVM_NEEDED_FEATURES, PKVM_NEEDED_FEATURES);
        assert_eq!(kvm_feature_bit(PKVM_MEM_SHARE), 1 << 3);
    }

    #[test]
    fn smccc_status_codes() {
        assert_eq!(smccc_status(0), Ok(()));
        assert_eq!(smccc_status(u64::MAX), Err(SmcccError::NotSupported));
        assert_eq!(
            smccc_status(-3i64 as u64),
            Err(SmcccError::InvalidParameter)
        );
        assert_eq!(smccc_status(7).unwrap_err().code(), 7);
        assert_eq!(SmcccError::InvalidParameter.code(), -3);
        assert!(
            SmcccError::NotSupported
                .to_string()
                .contains("NOT_SUPPORTED")
        );
    }

    #[test]
    fn granules() {
        assert!(valid_granule(4096) && valid_granule(65536));
        assert!(
            !valid_granule(2048)
                && !valid_granule(0)
                && !valid_granule(-3)
                && !valid_granule(12288)
        );
    }
}
