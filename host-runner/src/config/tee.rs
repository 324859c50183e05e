//! `--tee tdx|snp` fixes the lane: x86_64, the UEFI disk image on q35,
//! QEMU on hardware KVM. Options that cannot go with it are usage errors
//! that say why (the options every QEMU lane refuses are resolve.rs's to
//! check); whether the host has what it takes is the backend's preflight
//! (backend/tee/host.rs).

use super::lane::Lane;
use crate::accel::{Accel, Choice};
use crate::backend::kind::BackendKind;
use crate::backend::tee::Tee;
use crate::cli::{AccelArg, BackendArg, RunArgs};
use crate::error::Error;
use crate::machine::{Boot, Machine};
use convtest_proto::arch::Arch;

pub(super) fn lane(args: &RunArgs, tee: Tee) -> Result<Lane, Error> {
    let name = tee.as_str();
    let what = match tee {
        Tee::Tdx => "a TDX trust domain",
        Tee::Snp => "an SEV-SNP guest",
    };
    let usage = |m: String| Err(Error::Usage(format!("--tee {name}: {m}")));
    if args.arch == Some(Arch::Aarch64) {
        return usage("TDX and SEV-SNP are x86_64; drop --arch aarch64".into());
    }
    if args.boot.is_some_and(|b| b != Boot::Uefi) {
        return usage(
            "the guest boots as the UEFI disk image (TDVF and OVMF-AmdSev load no PVH kernel or BIOS image); drop --boot or use --boot uefi".into(),
        );
    }
    if args.machine.is_some_and(|m| m != Machine::Q35) {
        return usage("QEMU runs confidential guests on q35; drop --machine".into());
    }
    if !matches!(args.backend, BackendArg::Auto | BackendArg::Qemu) {
        return usage(format!(
            "QEMU creates {what}; convtest's own VMM does not: drop --backend or use --backend qemu"
        ));
    }
    if args.accel == AccelArg::Tcg {
        return usage(format!(
            "{what} needs hardware KVM, nothing emulates one; drop --accel tcg"
        ));
    }
    if args.vcpus > 1 {
        return usage(format!(
            "--vcpus {}: the guest starts CPUs with INIT-SIPI, which {what} cannot use (TDX wakes CPUs through the ACPI mailbox, SEV-SNP through the GHCB); use --vcpus 1",
            args.vcpus
        ));
    }
    if args.reboots > 0 {
        return usage(
            "--reboots: QEMU resets a confidential guest only from 11.0 on (a new VM), which --tee does not drive yet; use --reboots 0".into(),
        );
    }
    Ok(Lane {
        arch: Arch::X86_64,
        boot: Boot::Uefi,
        machine: Machine::Q35,
        backend: BackendKind::Qemu,
        backend_why: format!("--tee {name}: QEMU creates {what} on hardware KVM"),
        swprot: false,
        accel: Choice {
            accel: Accel::Kvm,
            why: format!("--tee {name}: {what} runs only on hardware KVM"),
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::accel::{Accel, Host};
    use crate::backend::kind::BackendKind;
    use crate::backend::tee::Tee;
    use crate::cli::{Cli, Command};
    use crate::config::{RunConfig, resolve};
    use crate::error::Error;
    use crate::machine::{Boot, Machine};
    use clap::Parser;

    fn resolve_line(line: &str) -> Result<RunConfig, Error> {
        let cli = Cli::try_parse_from(line.split(' ')).expect("clap accepts it");
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        // A software KVM, as on this project's machines: --tee still
        // resolves; the preflight is what refuses the host.
        let host = Host {
            arch: Some(convtest_proto::arch::Arch::X86_64),
            kvm_device: true,
            cpuinfo: "flags : fpu hypervisor\n".into(),
        };
        resolve(&args, &host)
    }

    #[test]
    fn tee_fixes_the_lane() {
        let c = resolve_line("convtest run --tee snp").expect("ok");
        assert_eq!(
            (c.backend, c.boot, c.machine, c.accel.accel, c.tee),
            (
                BackendKind::Qemu,
                Boot::Uefi,
                Machine::Q35,
                Accel::Kvm,
                Some(Tee::Snp)
            )
        );
        assert!(c.plan.contains("host=off"), "{}", c.plan);
        let c = resolve_line("convtest run --tee tdx --backend qemu --boot uefi --tests conv.*")
            .expect("ok");
        assert_eq!(c.tee, Some(Tee::Tdx));
        assert!(
            c.backend_why.contains("TDX trust domain"),
            "{}",
            c.backend_why
        );
    }

    #[test]
    fn what_cannot_go_with_tee_is_a_usage_error() {
        for line in [
            "convtest run --tee tdx --arch aarch64",
            "convtest run --tee tdx --boot pvh",
            "convtest run --tee snp --machine pc",
            "convtest run --tee snp --backend nested",
            "convtest run --tee snp --backend vmm",
            "convtest run --tee tdx --accel tcg",
            "convtest run --tee tdx --vcpus 2",
            "convtest run --tee snp --reboots 1",
            "convtest run --tee snp --vmm-fault ignore",
        ] {
            let e = resolve_line(line).expect_err(line);
            assert!(matches!(e, Error::Usage(_)), "{line}: {e}");
        }
        let e = resolve_line("convtest run --tee tdx --vcpus 2").expect_err("smp");
        assert!(e.to_string().contains("INIT-SIPI"), "{e}");
    }

    #[test]
    fn firmware_needs_tee() {
        assert!(
            Cli::try_parse_from(["convtest", "run", "--firmware", "/x.fd"]).is_err(),
            "--firmware without --tee"
        );
    }
}
