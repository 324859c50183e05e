//! The GHCB MSR protocol (AMD GHCB specification, publication 56421, "GHCB
//! MSR Protocol"; the same layouts in Linux `arch/x86/include/asm/sev-common.h`;
//! docs/design.md §4): the guest writes a request into MSR 0xC001_0130,
//! executes VMGEXIT, and reads the response back from the same MSR.
//! GHCBInfo is bits 11:0, GHCBData bits 63:12.

use core::fmt;

/// MSR_AMD64_SEV_ES_GHCB.
pub const MSR_GHCB: u32 = 0xC001_0130;

const INFO_MASK: u64 = 0xfff;

/// CPUID request / response.
pub const CPUID_REQ: u64 = 0x004;
pub const CPUID_RESP: u64 = 0x005;
/// Register the GHCB page's GPA.
pub const REG_GPA_REQ: u64 = 0x012;
pub const REG_GPA_RESP: u64 = 0x013;
/// SNP page state change request / response.
pub const PSC_REQ: u64 = 0x014;
pub const PSC_RESP: u64 = 0x015;
/// Termination request.
pub const TERM_REQ: u64 = 0x100;

/// GFNs the PSC request carries: GHCBData[51:12].
const GFN_MASK: u64 = (1 << 40) - 1;

/// A page state change: GHCBData[55:52].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscOp {
    Private = 1,
    Shared = 2,
}

impl PscOp {
    pub const fn as_str(self) -> &'static str {
        match self {
            PscOp::Private => "private",
            PscOp::Shared => "shared",
        }
    }
}

/// The MSR value asking the hypervisor to make the 4 KiB page `gfn` `op`.
pub const fn psc_request(gfn: u64, op: PscOp) -> u64 {
    psc_request_raw(gfn, op as u8)
}

/// The same with any 4-bit op (the rejection tests send invalid ones).
pub const fn psc_request_raw(gfn: u64, op: u8) -> u64 {
    (((op & 0xf) as u64) << 52) | ((gfn & GFN_MASK) << 12) | PSC_REQ
}

/// Why a page state change response is not a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscResponseError {
    /// GHCBInfo is not 0x015: the hypervisor answered something else.
    NotPscResponse { msr: u64 },
    /// GHCBData[63:32], the error code, is not 0.
    Error { code: u32 },
}

impl fmt::Display for PscResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PscResponseError::NotPscResponse { msr } => write!(
                f,
                "GHCB MSR {msr:#x} after VMGEXIT is not a page-state-change response (0x015)"
            ),
            PscResponseError::Error { code } => {
                write!(f, "page-state-change response error {code:#x}")
            }
        }
    }
}

/// The MSR value after the VMGEXIT of a page state change request.
pub const fn psc_response(msr: u64) -> Result<(), PscResponseError> {
    if msr & INFO_MASK != PSC_RESP {
        return Err(PscResponseError::NotPscResponse { msr });
    }
    match (msr >> 32) as u32 {
        0 => Ok(()),
        code => Err(PscResponseError::Error { code }),
    }
}

/// The MSR value asking for one CPUID register: `reg` 0..=3 = eax, ebx,
/// ecx, edx (GHCBData[31:30]), leaf `function` in GHCBData[63:32]. The MSR
/// protocol has no sub-leaf: it serves leaves whose sub-leaf is 0.
pub const fn cpuid_request(function: u32, reg: u8) -> u64 {
    ((function as u64) << 32) | (((reg & 3) as u64) << 30) | CPUID_REQ
}

/// The register value from a CPUID response, or `None` when the
/// hypervisor answered something else.
pub const fn cpuid_response(msr: u64) -> Option<u32> {
    if msr & INFO_MASK != CPUID_RESP {
        return None;
    }
    Some((msr >> 32) as u32)
}

/// The MSR value registering the GHCB page at `gfn`.
pub const fn register_request(gfn: u64) -> u64 {
    (gfn << 12) | REG_GPA_REQ
}

/// Whether the hypervisor confirmed registering `gfn`.
pub const fn register_response(msr: u64, gfn: u64) -> bool {
    msr & INFO_MASK == REG_GPA_RESP && msr >> 12 == gfn
}

/// The MSR value asking the hypervisor to end the guest: reason set in
/// GHCBData[15:12], reason code in GHCBData[23:16] (set 0 = the GHCB
/// specification's general reasons).
pub const fn terminate_request(set: u8, reason: u8) -> u64 {
    ((reason as u64) << 16) | (((set & 0xf) as u64) << 12) | TERM_REQ
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn psc_request_layout() {
        // Shared (2) in bits 55:52, GFN 0x12345 in 51:12, 0x014 in 11:0.
        assert_eq!(psc_request(0x12345, PscOp::Shared), 0x0020_0000_1234_5014);
        assert_eq!(psc_request(1, PscOp::Private), 0x0010_0000_0000_1014);
        // A GFN wider than 40 bits cannot spill into the op.
        assert_eq!(psc_request(1 << 40, PscOp::Private) >> 52, 1);
    }

    #[test]
    fn psc_response_decoding() {
        assert_eq!(psc_response(PSC_RESP), Ok(()));
        assert_eq!(
            psc_response(0x0000_0100_0000_0015),
            Err(PscResponseError::Error { code: 0x100 })
        );
        let e = psc_response(CPUID_RESP).expect_err("wrong response");
        assert!(e.to_string().contains("0x5"), "{e}");
        // Bit 63 set: Linux's generic error.
        assert_eq!(
            psc_response((1 << 63) | PSC_RESP),
            Err(PscResponseError::Error { code: 0x8000_0000 })
        );
    }

    #[test]
    fn cpuid_and_register_layouts() {
        assert_eq!(cpuid_request(0x8000_001f, 1), 0x8000_001f_4000_0004);
        assert_eq!(cpuid_response(0x0000_0033_0000_0005), Some(0x33));
        assert_eq!(cpuid_response(0x0000_0033_0000_0015), None);
        assert_eq!(register_request(0x7f), 0x7f012);
        assert!(register_response(0x7f013, 0x7f));
        assert!(!register_response(0x7e013, 0x7f));
        assert_eq!(terminate_request(0, 3), 0x3_0100);
    }
}
