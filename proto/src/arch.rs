//! The two guest architectures, by the names the CLI, the guest build and the
//! nested lanes use.

/// A guest (and host) architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The bare-metal Rust target the guest builds for.
    pub fn target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none",
        }
    }

    /// `std::env::consts::ARCH` (or a user's word) → the arch, if it is one of ours.
    pub fn from_host(arch: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.as_str() == arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Arch::ALL {
            assert_eq!(Arch::from_host(a.as_str()), Some(a));
        }
        assert_eq!(Arch::from_host("riscv64"), None);
    }
}
