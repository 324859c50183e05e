//! What a #VC handler needs to serve port I/O through the GHCB page: the
//! page's layout (AMD GHCB spec, "GHCB Layout"; Linux `struct ghcb` in
//! `arch/x86/include/asm/svm.h`), the IOIO exit information (AMD64 APM vol.
//! 2, "IOIO Intercept": type, size, port), and the decoding of the port
//! instructions this kernel executes — #VC carries only the exit code, so
//! the handler reads the instruction itself.

/// Exit codes #VC pushes as its error code (SVM exit codes).
pub const EXIT_CPUID: u64 = 0x72;
pub const EXIT_IOIO: u64 = 0x7b;

/// Byte offsets in the 4 KiB GHCB page.
pub const GHCB_RAX: usize = 0x1f8;
pub const GHCB_RCX: usize = 0x308;
pub const GHCB_RDX: usize = 0x310;
pub const GHCB_RBX: usize = 0x318;
pub const GHCB_SW_EXIT_CODE: usize = 0x390;
pub const GHCB_SW_EXIT_INFO_1: usize = 0x398;
pub const GHCB_SW_EXIT_INFO_2: usize = 0x3a0;
pub const GHCB_VALID_BITMAP: usize = 0x3f0;
pub const GHCB_PROTOCOL_VERSION: usize = 0xffa;
pub const GHCB_USAGE: usize = 0xffc;
/// The protocol version this guest speaks (SNP needs 2).
pub const GHCB_VERSION: u16 = 2;

/// The valid-bitmap bit of a save-area field: its offset / 8.
pub const fn valid_bit(offset: usize) -> (usize, u8) {
    let qword = offset / 8;
    (qword / 8, 1 << (qword % 8))
}

/// One port instruction, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortIo {
    /// `in` (true) or `out`.
    pub input: bool,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    /// The port: an immediate, or `None` for DX.
    pub imm_port: Option<u8>,
    /// Instruction length, to step over it.
    pub len: u8,
}

/// Decodes `in`/`out` (E4–E7 with an imm8 port, EC–EF with DX), with an
/// optional 0x66 operand-size prefix; `None` for anything else (string
/// I/O included, which this kernel never issues).
pub fn decode_port_io(code: &[u8]) -> Option<PortIo> {
    let (prefix, rest) = match code.first()? {
        0x66 => (true, &code[1..]),
        _ => (false, code),
    };
    let op = *rest.first()?;
    let wide = op & 1 == 1;
    let size = match (wide, prefix) {
        (false, _) => 1,
        (true, true) => 2,
        (true, false) => 4,
    };
    let p = u8::from(prefix);
    match op {
        0xe4..=0xe7 => Some(PortIo {
            input: op & 2 == 0,
            size,
            imm_port: Some(*rest.get(1)?),
            len: p + 2,
        }),
        0xec..=0xef => Some(PortIo {
            input: op & 2 == 0,
            size,
            imm_port: None,
            len: p + 1,
        }),
        _ => None,
    }
}

/// SW_EXITINFO1 of an IOIO exit, as the APM's IOIO intercept encodes it:
/// bit 0 = in, bits 4–6 = 8/16/32-bit operand, bits 7–9 = 16/32/64-bit
/// address (64 here), port in bits 31:16.
pub const fn ioio_exit_info(port: u16, size: u8, input: bool) -> u64 {
    let size_bit = match size {
        1 => 1 << 4,
        2 => 1 << 5,
        _ => 1 << 6,
    };
    ((port as u64) << 16) | (1 << 9) | size_bit | (input as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_port_instructions() {
        // out dx, al
        assert_eq!(
            decode_port_io(&[0xee]),
            Some(PortIo {
                input: false,
                size: 1,
                imm_port: None,
                len: 1
            })
        );
        // in al, dx
        assert_eq!(
            decode_port_io(&[0xec]).map(|p| (p.input, p.size)),
            Some((true, 1))
        );
        // out dx, eax / out dx, ax
        assert_eq!(decode_port_io(&[0xef]).map(|p| p.size), Some(4));
        assert_eq!(
            decode_port_io(&[0x66, 0xef]).map(|p| (p.size, p.len)),
            Some((2, 2))
        );
        // out 0xf4, al
        assert_eq!(
            decode_port_io(&[0xe6, 0xf4]),
            Some(PortIo {
                input: false,
                size: 1,
                imm_port: Some(0xf4),
                len: 2
            })
        );
        // cpuid, outsb: not served.
        assert_eq!(decode_port_io(&[0x0f, 0xa2]), None);
        assert_eq!(decode_port_io(&[0x6e]), None);
        assert_eq!(decode_port_io(&[0xe6]), None, "truncated");
    }

    #[test]
    fn exit_info_and_layout() {
        // out 0x3f8, 1 byte: port << 16, 64-bit addressing, SZ8, OUT.
        assert_eq!(ioio_exit_info(0x3f8, 1, false), 0x03f8_0210);
        assert_eq!(ioio_exit_info(0x3fd, 1, true), 0x03fd_0211);
        assert_eq!(ioio_exit_info(0xf4, 4, false) & 0x70, 0x40);
        assert_eq!(valid_bit(GHCB_RAX), (7, 0x80));
        assert_eq!(valid_bit(GHCB_SW_EXIT_CODE), (14, 1 << 2));
        assert_eq!(valid_bit(GHCB_RBX), (12, 1 << 3));
    }
}
