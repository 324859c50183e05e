//! Which kernel the L1 boots, decided from `L1Options` and the arch before
//! anything is fetched, built or booted: a Debian kernel of the table, or
//! the user's `--l1-kernel` (its header checked). Every contradiction is a
//! usage error here, so none is found after minutes of work.

use super::kernel_image;
use super::kernels::{KnownL1, known};
use crate::cli::L1Options;
use crate::error::Error;
use convtest_proto::arch::Arch;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L1Choice<'a> {
    Debian {
        known: &'static KnownL1,
        /// Load the rebuilt KVM_SW_PROTECTED_VM kvm.ko (swprot.rs).
        swprot: bool,
        /// The build `--l1 NAME=ABI` pins (else the table's pin, or the
        /// newest of its series: series.rs).
        pin: Option<&'a str>,
    },
    User {
        kernel: &'a Path,
        modules: Option<&'a Path>,
    },
}

/// The L1 `opts` ask for on `arch`, or why it cannot be had.
pub fn choose(arch: Arch, opts: &L1Options) -> Result<L1Choice<'_>, Error> {
    if opts.l1_swprot && opts.l1_kernel.is_some() {
        return Err(Error::Usage(
            "--l1-swprot rebuilds kvm.ko for Debian's L1 kernel; it cannot be combined with --l1-kernel".into(),
        ));
    }
    if opts.l1_swprot && arch != Arch::X86_64 {
        return Err(Error::Usage(
            "--l1-swprot is x86_64 only; arm64 protection comes from pKVM".into(),
        ));
    }
    if let Some(kernel) = &opts.l1_kernel {
        kernel_image::check(kernel, arch)?;
        return Ok(L1Choice::User {
            kernel,
            modules: opts.l1_modules.as_deref(),
        });
    }
    let known = known(opts.debian());
    if !known.supports(arch) {
        return Err(Error::Usage(format!(
            "--l1 {}: Debian builds no {} kernel of it",
            known.name.as_str(),
            arch.as_str()
        )));
    }
    if opts.l1_swprot && !known.swprot {
        let with: Vec<&str> = super::kernels::KNOWN_L1
            .iter()
            .filter(|k| k.swprot)
            .map(|k| k.name.as_str())
            .collect();
        return Err(Error::Usage(format!(
            "--l1-swprot rebuilds kvm.ko from the linux-source of the exact L1 kernel, and convtest \
             has that recipe for --l1 {} only; --l1 {} runs its stock KVM (drop --l1-swprot; \
             with --backend auto, which turns it on when it can, pass --backend nested)",
            with.join(", "),
            known.name.as_str()
        )));
    }
    Ok(L1Choice::Debian {
        known,
        swprot: opts.l1_swprot,
        pin: opts.pin(),
    })
}

/// [`choose`] for callers that only want to know it will work, before the
/// guest is built.
pub fn check(arch: Arch, opts: &L1Options) -> Result<(), Error> {
    choose(arch, opts).map(drop)
}

/// Which build of a Debian L1 `opts` would boot on `arch`, found before
/// the guest is built: a pin that neither the cache nor the archive has,
/// with no other build of its series to stand in, fails in a second
/// instead of after the build. Asks the cache, then the archive's lists
/// (fetching them only when the private apt state has none).
pub fn check_build(arch: Arch, opts: &L1Options) -> Result<(), Error> {
    let L1Choice::Debian { known, swprot, pin } = choose(arch, opts)? else {
        return Ok(());
    };
    let cache = super::cache::Cache::locate()?;
    let apt = super::apt::Apt::new(&cache, true);
    super::assets::choose_build(&cache, &apt, known, arch, swprot, pin, false).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nested::kernel_image::tests::bzimage;
    use crate::backend::nested::kernels::{L1Name, known};
    use std::path::PathBuf;

    fn opts(name: Option<L1Name>, swprot: bool, kernel: Option<PathBuf>) -> L1Options {
        L1Options {
            l1_name: name.map(|name| crate::cli::L1Pick { name, abi: None }),
            l1_kernel: kernel,
            l1_modules: None,
            l1_swprot: swprot,
        }
    }

    #[test]
    fn default_is_debian_7_3_and_names_pick_their_entry() {
        let default = L1Options::default();
        let got = choose(Arch::X86_64, &default).expect("default");
        assert!(
            matches!(got, L1Choice::Debian { known, swprot: false, .. } if known.name == L1Name::Debian73)
        );
        for name in L1Name::ALL {
            for arch in [Arch::X86_64, Arch::Aarch64] {
                let asked = opts(Some(name), false, None);
                if !known(name).supports(arch) {
                    let e = choose(arch, &asked).expect_err("no such build");
                    assert!(e.to_string().contains("Debian builds no"), "{e}");
                    continue;
                }
                let got = choose(arch, &asked).expect("known");
                assert!(matches!(got, L1Choice::Debian { known, .. } if known.name == name));
            }
        }
        assert!(choose(Arch::X86_64, &opts(Some(L1Name::Debian73_16k), false, None)).is_err());
    }

    #[test]
    fn swprot_only_with_debian_7_3_on_x86() {
        assert!(matches!(
            choose(Arch::X86_64, &opts(Some(L1Name::Debian73), true, None)),
            Ok(L1Choice::Debian { swprot: true, .. })
        ));
        for name in [L1Name::Debian612, L1Name::Debian61] {
            let e = choose(Arch::X86_64, &opts(Some(name), true, None)).expect_err("no recipe");
            let msg = e.to_string();
            assert!(matches!(e, Error::Usage(_)));
            assert!(
                msg.contains("--l1 debian-7.3 only") && msg.contains(name.as_str()),
                "{msg}"
            );
        }
        assert!(choose(Arch::Aarch64, &opts(None, true, None)).is_err());
    }

    #[test]
    fn user_kernel_is_checked_here() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let empty = tmp.path().join("empty");
        std::fs::write(&empty, b"").expect("empty");
        let e = check(Arch::X86_64, &opts(None, false, Some(empty))).expect_err("empty");
        assert!(
            e.to_string().contains("found an empty file, 0 bytes"),
            "{e}"
        );
        let bz = tmp.path().join("bz");
        std::fs::write(&bz, bzimage("6.1.0-57-amd64", 4096)).expect("bz");
        assert!(matches!(
            choose(Arch::X86_64, &opts(None, false, Some(bz.clone()))),
            Ok(L1Choice::User { .. })
        ));
        let e = check(Arch::X86_64, &opts(None, true, Some(bz))).expect_err("swprot + own");
        assert!(e.to_string().contains("--l1-kernel"), "{e}");
    }
}
