//! KVM `KVM_HC_MAP_GPA_RANGE` (hypercall 12) argument encoding and return
//! decoding (docs/design.md §4). The trap instruction itself lives in the guest's
//! arch layer; what goes into and comes out of its registers is decided here.

use crate::range::{MemRange, is_aligned};
use core::fmt;

pub const KVM_HC_MAP_GPA_RANGE: u64 = 12;
pub const PAGE_4K: u64 = 4096;
/// Attribute bits 0..3: page-size hint.
pub const ATTR_PAGE_SZ_4K: u64 = 0;
pub const ATTR_PAGE_SZ_2M: u64 = 1;
pub const ATTR_PAGE_SZ_1G: u64 = 2;
/// Attribute bit 4: set = encrypted/private, clear = shared.
pub const ATTR_ENC_STATUS: u64 = 1 << 4;

/// Registers of one call: rbx = gpa, rcx = npages, rdx = attrs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapGpaArgs {
    pub gpa: u64,
    pub npages: u64,
    pub attrs: u64,
}

/// The largest page-size hint both ends of `range` are aligned to.
pub fn size_hint(range: MemRange) -> u64 {
    let both = |a: u64| is_aligned(range.start, a) && is_aligned(range.end, a);
    if both(1 << 30) {
        ATTR_PAGE_SZ_1G
    } else if both(2 << 20) {
        ATTR_PAGE_SZ_2M
    } else {
        ATTR_PAGE_SZ_4K
    }
}

/// Arguments converting `range` (4K-aligned) to private or shared, with the
/// size hint when the range allows one. Deliberately malformed ranges (the
/// rejection tests) go through `raw` instead.
pub fn args(range: MemRange, private: bool) -> MapGpaArgs {
    let enc = if private { ATTR_ENC_STATUS } else { 0 };
    MapGpaArgs {
        gpa: range.start,
        npages: range.len() / PAGE_4K,
        attrs: size_hint(range) | enc,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapGpaError {
    /// -22: unaligned gpa, npages 0, or gfn overflow.
    Inval,
    /// -1000: the VMM did not enable KVM_CAP_EXIT_HYPERCALL for it.
    NoSys,
    /// -1: called from CPL != 0.
    Perm,
    Other(i64),
}

impl MapGpaError {
    pub const fn code(self) -> i64 {
        match self {
            MapGpaError::Inval => -22,
            MapGpaError::NoSys => -1000,
            MapGpaError::Perm => -1,
            MapGpaError::Other(c) => c,
        }
    }
}

impl fmt::Display for MapGpaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            MapGpaError::Inval => "EINVAL",
            MapGpaError::NoSys => "ENOSYS: the VMM did not enable the exit",
            MapGpaError::Perm => "EPERM: CPL != 0",
            MapGpaError::Other(_) => "unexpected",
        };
        write!(f, "{} ({what})", self.code())
    }
}

/// rax after the call.
pub fn decode(rax: u64) -> Result<(), MapGpaError> {
    match rax as i64 {
        0 => Ok(()),
        -22 => Err(MapGpaError::Inval),
        -1000 => Err(MapGpaError::NoSys),
        -1 => Err(MapGpaError::Perm),
        other => Err(MapGpaError::Other(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_alignment() {
        assert_eq!(
            size_hint(MemRange::from_len(0x1000, 0x1000)),
            ATTR_PAGE_SZ_4K
        );
        assert_eq!(
            size_hint(MemRange::from_len(0x20_0000, 0x20_0000)),
            ATTR_PAGE_SZ_2M
        );
        assert_eq!(
            size_hint(MemRange::from_len(0x20_0000, 0x20_1000)),
            ATTR_PAGE_SZ_4K
        );
        assert_eq!(
            size_hint(MemRange::from_len(0x4000_0000, 0x4000_0000)),
            ATTR_PAGE_SZ_1G
        );
    }

    #[test]
    fn args_encode_direction() {
        let a = args(MemRange::from_len(0x20_0000, 0x20_0000), true);
        assert_eq!(
            a,
            MapGpaArgs {
                gpa: 0x20_0000,
                npages: 512,
                attrs: ATTR_PAGE_SZ_2M | ATTR_ENC_STATUS
            }
        );
        let s = args(MemRange::from_len(0x3000, 0x1000), false);
        assert_eq!(s.attrs, 0);
        assert_eq!(s.npages, 1);
    }

    #[test]
    fn return_codes() {
        assert_eq!(decode(0), Ok(()));
        assert_eq!(decode(-22i64 as u64), Err(MapGpaError::Inval));
        assert_eq!(decode(-1000i64 as u64), Err(MapGpaError::NoSys));
        assert_eq!(decode(u64::MAX), Err(MapGpaError::Perm));
        assert_eq!(decode(-5i64 as u64).unwrap_err().code(), -5);
    }
}
