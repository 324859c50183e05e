//! TDX numbers the guest sends and the answers it decodes (docs/design.md
//! §4; Intel TDX GHCI specification, TDX Module ABI specification; the same
//! values in Linux `arch/x86/include/asm/shared/tdx.h` and td-shim).

use crate::size_walk::PageSize;
use core::fmt;

/// `TDG.VP.VMCALL<MapGPA>` sub-function (r11 in).
pub const TDVMCALL_MAP_GPA: u64 = 0x10001;
/// `TDG.MEM.PAGE.ACCEPT` TDCALL leaf (rax in).
pub const TDG_MEM_PAGE_ACCEPT: u64 = 6;

/// TDVMCALL status in r10 (GHCI "TDG.VP.VMCALL" completion codes).
pub const VMCALL_SUCCESS: u64 = 0;
pub const VMCALL_RETRY: u64 = 1;
pub const VMCALL_INVALID_OPERAND: u64 = 0x8000_0000_0000_0000;
pub const VMCALL_GPA_INUSE: u64 = 0x8000_0000_0000_0001;
pub const VMCALL_ALIGN_ERROR: u64 = 0x8000_0000_0000_0002;
pub const VMCALL_SUBFUNC_UNSUPPORTED: u64 = 0x8000_0000_0000_0003;

/// TDCALL completion status in rax: the class is bits 63:32, the low half
/// names the operand (TDX Module ABI spec, "Completion Status Codes").
pub const ACCEPT_ALREADY_ACCEPTED: u64 = 0x0000_0B0A_0000_0000;
pub const ACCEPT_SIZE_MISMATCH: u64 = 0xC000_0B0B_0000_0001;
pub const ACCEPT_OPERAND_BUSY: u64 = 0x8000_0200_0000_0000;
pub const ACCEPT_OPERAND_INVALID: u64 = 0xC000_0100_0000_0000;

/// The shared bit of a TD's GPAs: bit GPAW-1 (GPAW from `TDG.VP.INFO`,
/// 48 or 52). `None` for any other width.
pub const fn shared_bit(gpaw: u64) -> Option<u64> {
    match gpaw {
        48 | 52 => Some(1 << (gpaw - 1)),
        _ => None,
    }
}

/// What r10 said after `TDG.VP.VMCALL<MapGPA>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmcallStatus {
    Success,
    /// Resume at r11: the VMM converted everything below it.
    Retry,
    InvalidOperand,
    GpaInUse,
    AlignError,
    SubfuncUnsupported,
    Other(u64),
    /// An answer the `tdx-guest` crate reports without its code (its
    /// `TdVmcallError::Other`, which also covers a failed TDCALL itself).
    Unnamed,
}

impl VmcallStatus {
    pub const fn from_raw(r10: u64) -> VmcallStatus {
        match r10 {
            VMCALL_SUCCESS => VmcallStatus::Success,
            VMCALL_RETRY => VmcallStatus::Retry,
            VMCALL_INVALID_OPERAND => VmcallStatus::InvalidOperand,
            VMCALL_GPA_INUSE => VmcallStatus::GpaInUse,
            VMCALL_ALIGN_ERROR => VmcallStatus::AlignError,
            VMCALL_SUBFUNC_UNSUPPORTED => VmcallStatus::SubfuncUnsupported,
            other => VmcallStatus::Other(other),
        }
    }

    /// The raw r10 value, when one is known.
    pub const fn raw(self) -> Option<u64> {
        Some(match self {
            VmcallStatus::Success => VMCALL_SUCCESS,
            VmcallStatus::Retry => VMCALL_RETRY,
            VmcallStatus::InvalidOperand => VMCALL_INVALID_OPERAND,
            VmcallStatus::GpaInUse => VMCALL_GPA_INUSE,
            VmcallStatus::AlignError => VMCALL_ALIGN_ERROR,
            VmcallStatus::SubfuncUnsupported => VMCALL_SUBFUNC_UNSUPPORTED,
            VmcallStatus::Other(c) => c,
            VmcallStatus::Unnamed => return None,
        })
    }

    const fn name(self) -> &'static str {
        match self {
            VmcallStatus::Success => "SUCCESS",
            VmcallStatus::Retry => "RETRY",
            VmcallStatus::InvalidOperand => "INVALID_OPERAND",
            VmcallStatus::GpaInUse => "GPA_INUSE",
            VmcallStatus::AlignError => "ALIGN_ERROR",
            VmcallStatus::SubfuncUnsupported => "SUBFUNC_UNSUPPORTED",
            VmcallStatus::Other(_) => "unknown status",
            VmcallStatus::Unnamed => "a status the tdx-guest crate does not name",
        }
    }
}

impl fmt::Display for VmcallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.raw() {
            Some(raw) => write!(f, "{} ({raw:#x})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// What rax said after `TDG.MEM.PAGE.ACCEPT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptStatus {
    Success,
    /// The page was accepted before: nothing was zeroed this time.
    AlreadyAccepted,
    /// The Secure EPT maps this GPA at another page size.
    SizeMismatch,
    /// Another operation holds the Secure EPT entry: try again.
    OperandBusy,
    OperandInvalid,
    Other(u64),
    /// A status the `tdx-guest` crate reports without its code.
    Unnamed,
}

impl AcceptStatus {
    /// Decodes by class (bits 63:32), as the TDX module's codes carry the
    /// operand id in the low half.
    pub const fn from_raw(rax: u64) -> AcceptStatus {
        if rax == 0 {
            return AcceptStatus::Success;
        }
        match rax >> 32 {
            0x0000_0B0A => AcceptStatus::AlreadyAccepted,
            0xC000_0B0B => AcceptStatus::SizeMismatch,
            0x8000_0200 => AcceptStatus::OperandBusy,
            0xC000_0100 => AcceptStatus::OperandInvalid,
            _ => AcceptStatus::Other(rax),
        }
    }

    pub const fn raw(self) -> Option<u64> {
        Some(match self {
            AcceptStatus::Success => 0,
            AcceptStatus::AlreadyAccepted => ACCEPT_ALREADY_ACCEPTED,
            AcceptStatus::SizeMismatch => ACCEPT_SIZE_MISMATCH,
            AcceptStatus::OperandBusy => ACCEPT_OPERAND_BUSY,
            AcceptStatus::OperandInvalid => ACCEPT_OPERAND_INVALID,
            AcceptStatus::Other(c) => c,
            AcceptStatus::Unnamed => return None,
        })
    }

    const fn name(self) -> &'static str {
        match self {
            AcceptStatus::Success => "SUCCESS",
            AcceptStatus::AlreadyAccepted => "PAGE_ALREADY_ACCEPTED",
            AcceptStatus::SizeMismatch => "PAGE_SIZE_MISMATCH",
            AcceptStatus::OperandBusy => "OPERAND_BUSY",
            AcceptStatus::OperandInvalid => "OPERAND_INVALID",
            AcceptStatus::Other(_) => "unknown status",
            AcceptStatus::Unnamed => "a status the tdx-guest crate does not name",
        }
    }
}

impl fmt::Display for AcceptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.raw() {
            Some(raw) => write!(f, "{} ({raw:#x})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// `TDG.MEM.PAGE.ACCEPT`'s level in rcx bits 2:0 (0 = 4K, 1 = 2M).
pub const fn accept_level(size: PageSize) -> u64 {
    match size {
        PageSize::Size4K => 0,
        PageSize::Size2M => 1,
    }
}

/// rcx of `TDG.MEM.PAGE.ACCEPT`: the GPA with the level in bits 2:0.
pub const fn accept_rcx(gpa: u64, size: PageSize) -> u64 {
    gpa | accept_level(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn shared_bit_follows_gpaw() {
        assert_eq!(shared_bit(48), Some(1 << 47));
        assert_eq!(shared_bit(52), Some(1 << 51));
        assert_eq!(shared_bit(39), None);
    }

    #[test]
    fn vmcall_codes_round_trip() {
        for raw in [
            0,
            1,
            VMCALL_INVALID_OPERAND,
            VMCALL_GPA_INUSE,
            VMCALL_ALIGN_ERROR,
            0x42,
        ] {
            assert_eq!(VmcallStatus::from_raw(raw).raw(), Some(raw));
        }
        assert_eq!(VmcallStatus::from_raw(1), VmcallStatus::Retry);
        assert_eq!(
            VmcallStatus::InvalidOperand.to_string(),
            "INVALID_OPERAND (0x8000000000000000)"
        );
        assert_eq!(VmcallStatus::Unnamed.raw(), None);
    }

    #[test]
    fn accept_codes_decode_by_class() {
        assert_eq!(AcceptStatus::from_raw(0), AcceptStatus::Success);
        assert_eq!(
            AcceptStatus::from_raw(ACCEPT_SIZE_MISMATCH),
            AcceptStatus::SizeMismatch
        );
        // The operand id in the low half does not change the class.
        assert_eq!(
            AcceptStatus::from_raw(0xC000_0B0B_0000_0000),
            AcceptStatus::SizeMismatch
        );
        assert_eq!(
            AcceptStatus::from_raw(ACCEPT_ALREADY_ACCEPTED),
            AcceptStatus::AlreadyAccepted
        );
        assert_eq!(
            AcceptStatus::from_raw(0xC000_0101_0000_0001),
            AcceptStatus::Other(0xC000_0101_0000_0001)
        );
        assert_eq!(accept_rcx(0x20_0000, PageSize::Size2M), 0x20_0001);
        assert_eq!(accept_rcx(0x1000, PageSize::Size4K), 0x1000);
    }
}
