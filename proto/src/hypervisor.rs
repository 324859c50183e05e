//! The header's `hypervisor=` word, from either ABI family's probe
//! ([`crate::cpuid`], [`crate::smccc`]).

use core::fmt;

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

/// How the header names the hypervisor the probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypervisorName {
    Static(&'static str),
    /// x86 CPUID 0x40000000 signature.
    Sig([u8; 12]),
    /// arm64 vendor-hyp UID of a hypervisor with no name here (KVM's is
    /// named `KVM` by [`crate::smccc::SmcccProbe::hypervisor_name`]).
    Uid([u32; 4]),
}

impl fmt::Display for HypervisorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HypervisorName::Static(s) => f.write_str(s),
            HypervisorName::Sig(s) => Sig(*s).fmt(f),
            HypervisorName::Uid(u) => {
                write!(f, "uid:{:08x}-{:08x}-{:08x}-{:08x}", u[0], u[1], u[2], u[3])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn names() {
        assert_eq!(HypervisorName::Static("none").to_string(), "none");
        assert_eq!(
            HypervisorName::Sig(*b"KVMKVMKVM\0\0\0").to_string(),
            "KVMKVMKVM"
        );
        assert_eq!(Sig(*b"a\x01b\0\0\0\0\0\0\0\0\0").to_string(), "a.b");
        assert_eq!(
            HypervisorName::Uid([1, 2, 3, 0xdead_beef]).to_string(),
            "uid:00000001-00000002-00000003-deadbeef"
        );
    }
}
