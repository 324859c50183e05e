//! `--backend auto` resolved against the host: the strongest evidence it
//! can give, and the line that says why. An explicit `--backend` is kept
//! as given.

use crate::accel::{self, Host};
use crate::backend::kind::BackendKind;
use crate::backend::nested::kernels::known;
use crate::backend::nested::swprot::Swprot;
use crate::cli::RunArgs;
use convtest_proto::arch::Arch;

/// What `--backend` resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub kind: BackendKind,
    /// auto turned on the swprot kvm.ko (x86 nested).
    pub swprot: bool,
    pub why: String,
}

/// Resolves `--backend auto` against the host: the strongest evidence it
/// can give. An explicit backend is kept as given. `swprot` says whether the
/// x86 nested lane can have KVM-enforced private memory (asked only then).
pub fn choose_backend(
    args: &RunArgs,
    arch: Arch,
    host: &Host,
    swprot: impl FnOnce() -> Swprot,
) -> Chosen {
    let keep = |kind: BackendKind, why: &str| Chosen {
        kind,
        swprot: false,
        why: why.to_string(),
    };
    if let Some(kind) = args.backend.kind() {
        return keep(kind, "as asked (--backend)");
    }
    let qemu_only = [
        (args.accel != crate::cli::AccelArg::Auto).then_some("--accel"),
        args.machine.map(|_| "--machine"),
        args.boot
            .filter(|b| b.is_disk_image())
            .map(|_| "--boot bios|uefi"),
    ];
    if let Some(opt) = qemu_only.into_iter().flatten().next() {
        return keep(
            BackendKind::Qemu,
            &format!(
                "auto: {opt} chooses a QEMU lane (boot-only: no conversion ABI, conv.* SKIP);                  drop it for real conversions"
            ),
        );
    }
    let native_kvm = accel::choose(crate::cli::AccelArg::Auto, arch, host)
        .is_ok_and(|c| c.accel == accel::Accel::Kvm);
    let l1_asked = args.l1.l1_kernel.is_some() || args.l1.l1_swprot || args.l1.l1_name.is_some();
    if native_kvm && !l1_asked {
        return keep(
            BackendKind::Vmm,
            "auto: this host's /dev/kvm is hardware KVM, so convtest's own VMM runs the guest on it",
        );
    }
    let base = if native_kvm {
        "auto: --l1-* options ask for the nested L1".to_string()
    } else {
        format!(
            "auto: this host has no hardware KVM for an {} guest ({}), so real KVM runs inside a \
             Debian L1 under QEMU TCG",
            arch.as_str(),
            accel::choose(crate::cli::AccelArg::Auto, arch, host)
                .map(|c| c.why)
                .unwrap_or_default()
        )
    };
    if arch == Arch::Aarch64 {
        return keep(
            BackendKind::Nested,
            &format!("{base}; arm64: pKVM protected VM (the strongest arm64 mode)"),
        );
    }
    let recipe = known(args.l1.debian()).swprot;
    if args.l1.l1_swprot || args.l1.l1_kernel.is_some() {
        return keep(BackendKind::Nested, &base);
    }
    if !recipe {
        return keep(
            BackendKind::Nested,
            &format!(
                "{base}; memory: the strongest mode this L1 kernel's KVM offers (there is no \
                 KVM_SW_PROTECTED_VM rebuild for it)"
            ),
        );
    }
    match swprot() {
        Swprot::Cached => Chosen {
            kind: BackendKind::Nested,
            swprot: true,
            why: format!(
                "{base}; memory: sw-protected (KVM-enforced private memory; the rebuilt kvm.ko is cached)"
            ),
        },
        Swprot::Buildable => Chosen {
            kind: BackendKind::Nested,
            swprot: true,
            why: format!(
                "{base}; memory: sw-protected (KVM-enforced private memory): FIRST RUN rebuilds \
                 kvm.ko from Debian's linux-source (downloads ~170 MB, builds ~5 min on 2 cores, \
                 then cached)"
            ),
        },
        Swprot::Missing(tools) => Chosen {
            kind: BackendKind::Nested,
            swprot: false,
            why: format!(
                "{base}; memory: emulated-private (isolation rests on VMM bookkeeping). For \
                 KVM-enforced private memory install {} (scripts/install-deps.sh) and run again",
                tools.join(", ")
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn host() -> Host {
        Host {
            arch: Some(Arch::X86_64),
            kvm_device: true,
            cpuinfo: "flags : fpu hypervisor\n".into(),
        }
    }

    fn chosen(line: &str, host: &Host, swprot: Swprot) -> Chosen {
        let cli = Cli::try_parse_from(line.split(' ')).expect("clap accepts it");
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let arch = args.arch.unwrap_or(Arch::X86_64);
        choose_backend(&args, arch, host, || swprot)
    }

    #[test]
    fn auto_takes_the_strongest_backend_and_says_why() {
        let soft = host();
        let hw = Host {
            cpuinfo: "flags : fpu vmx\n".into(),
            ..host()
        };
        let c = chosen("convtest run", &hw, Swprot::Cached);
        assert_eq!(c.kind, BackendKind::Vmm, "{}", c.why);
        let c = chosen("convtest run", &soft, Swprot::Cached);
        assert_eq!((c.kind, c.swprot), (BackendKind::Nested, true), "{}", c.why);
        assert!(
            c.why.contains("software KVM") && c.why.contains("sw-protected"),
            "{}",
            c.why
        );
        let c = chosen("convtest run", &soft, Swprot::Buildable);
        assert!(c.swprot && c.why.contains("FIRST RUN"), "{}", c.why);
        let c = chosen("convtest run", &soft, Swprot::Missing(vec!["dwarves"]));
        assert!(!c.swprot && c.why.contains("install dwarves"), "{}", c.why);
        assert!(c.why.contains("bookkeeping"), "{}", c.why);
        let c = chosen("convtest run --arch aarch64", &soft, Swprot::Cached);
        assert_eq!((c.kind, c.swprot), (BackendKind::Nested, false));
        assert!(c.why.contains("pKVM"), "{}", c.why);
        for line in [
            "convtest run --accel tcg",
            "convtest run --boot uefi",
            "convtest run --machine pc",
        ] {
            let c = chosen(line, &hw, Swprot::Cached);
            assert_eq!(c.kind, BackendKind::Qemu, "{line}: {}", c.why);
        }
        let c = chosen("convtest run --backend qemu", &hw, Swprot::Cached);
        assert_eq!(c.kind, BackendKind::Qemu);
        // --l1 asks for the L1 even on hardware KVM; an older kernel has no
        // swprot recipe, so auto does not ask for one.
        let c = chosen("convtest run --l1 debian-6.12", &hw, Swprot::Cached);
        assert_eq!(
            (c.kind, c.swprot),
            (BackendKind::Nested, false),
            "{}",
            c.why
        );
        let c = chosen("convtest run --l1 debian-6.1", &soft, Swprot::Cached);
        assert_eq!(
            (c.kind, c.swprot),
            (BackendKind::Nested, false),
            "{}",
            c.why
        );
    }
}
