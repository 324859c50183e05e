//! arm64 SMCCC: the vendor-hypervisor service (UID, KVM_FEATURES), pKVM's
//! HYP_MEMINFO / MEM_SHARE / MEM_UNSHARE and the status codes they answer.
//! The guest executes the `hvc`/`smc`; turning their registers into a
//! finding happens here so it can be tested on the host.

use crate::hypervisor::HypervisorName;
use core::fmt;

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

    /// pKVM's granule, when this is a protected VM with a valid one.
    pub fn pkvm_granule(&self) -> Option<u64> {
        match self.finding() {
            ArmFinding::Pkvm { granule } => Some(granule),
            _ => None,
        }
    }

    /// Name for the header's `hypervisor=`.
    pub fn hypervisor_name(&self) -> HypervisorName {
        match self.uid {
            SmcccAnswer::Value(KVM_UID) => HypervisorName::Static("KVM"),
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

    #[test]
    fn arm_findings() {
        let base = SmcccProbe {
            conduit: Conduit::Hvc,
            uid: SmcccAnswer::Value(KVM_UID),
            features: Some(0x1d),
            meminfo: Some(4096),
        };
        assert_eq!(base.finding(), ArmFinding::Pkvm { granule: 4096 });
        assert_eq!(base.pkvm_granule(), Some(4096));
        assert_eq!(base.hypervisor_name().to_string(), "KVM");
        // A normal KVM VM: features only has bit 0.
        let normal = SmcccProbe {
            features: Some(0x1),
            meminfo: None,
            ..base
        };
        assert!(normal.finding().to_string().contains("not a protected VM"));
        assert_eq!(normal.pkvm_granule(), None);
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
        // docs/design.md §3: a protected guest saw FEATURES=0x1d.
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
