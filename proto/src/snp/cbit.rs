//! Where an SEV guest's encryption bit sits in its page-table entries:
//! CPUID 0x8000001F EBX bits 5:0 (AMD64 APM vol. 2, "Memory Encryption";
//! docs/design.md §4). A private page is mapped with the bit set, a shared
//! one with it clear.

/// The C-bit's position from CPUID 0x8000001F EBX, if it is one a page
/// table can hold (above the 4 KiB offset, below bit 52).
pub const fn c_bit_position(ebx: u32) -> Option<u32> {
    let pos = ebx & 0x3f;
    if pos >= 12 && pos < 52 {
        Some(pos)
    } else {
        None
    }
}

/// The page-table bit of that position.
pub const fn c_bit_mask(pos: u32) -> u64 {
    1 << pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_from_ebx() {
        // EPYC: 51, with the reduced-phys-bits field above it.
        assert_eq!(c_bit_position(0x0000_0173), Some(51));
        assert_eq!(c_bit_position(47), Some(47));
        assert_eq!(c_bit_position(0), None);
        assert_eq!(c_bit_position(63), None);
        assert_eq!(c_bit_mask(51), 1 << 51);
    }
}
