//! Whether this binary is a board kit's (`convtest bundle` builds it with
//! `CONVTEST_KIT=<arch>`): such a convtest runs prebuilt guests only, so
//! everything that would start cargo, rustup or a download refuses here,
//! with exit status 2 and the command that works instead.

use crate::error::Error;
use convtest_proto::arch::Arch;

/// The arch the kit was built for, when this binary is a kit's.
pub const KIT_ARCH: Option<&str> = option_env!("CONVTEST_KIT");

pub fn is_kit() -> bool {
    KIT_ARCH.is_some()
}

/// The guest's file name inside a kit of `arch`.
pub fn guest_file(arch: Arch) -> &'static str {
    match arch {
        Arch::Aarch64 => "Image",
        Arch::X86_64 => "kernel.elf",
    }
}

/// `Ok` on a normal build; on a kit, the refusal for `what`.
pub fn refuse_build(what: impl Into<String>) -> Result<(), Error> {
    match KIT_ARCH {
        None => Ok(()),
        Some(arch) => Err(Error::NeedsBuild {
            what: what.into(),
            kernel: guest_file(Arch::from_host(arch).unwrap_or(Arch::Aarch64)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kit_refusal_names_what_and_the_command_that_works() {
        let e = Error::NeedsBuild {
            what: "--backend nested builds the L1's /init".into(),
            kernel: guest_file(Arch::Aarch64),
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("--backend nested builds")
                && msg.contains("--kernel ./Image")
                && msg.contains("no cargo"),
            "{msg}"
        );
        // The test binary is no kit.
        assert!(refuse_build("x").is_ok());
        assert_eq!(guest_file(Arch::X86_64), "kernel.elf");
    }
}
