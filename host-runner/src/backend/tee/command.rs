//! QEMU's command line for a confidential guest, as QEMU documents it
//! (`docs/system/i386/tdx.rst`, `amd-memory-encryption.rst`; docs/design.md
//! §4): q35, the confidential-guest object, the firmware with `-bios` (TDVF
//! and OVMF-AmdSev are not flash images), the UEFI disk image on virtio,
//! and convtest's usual headless console and exit device.

use super::Tee;
use crate::backend::qemu::HEADLESS_SERIAL_STDIO;
use crate::backend::spec::BootSpec;
use std::ffi::OsString;
use std::path::Path;

/// `sev-snp-guest`'s cbitpos and reduced-phys-bits: the host's CPUID
/// 0x8000001F EBX bits 5:0 and 11:6 (AMD APM vol. 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SevBits {
    pub cbitpos: u32,
    pub reduced_phys_bits: u32,
}

impl SevBits {
    /// The values of current EPYC parts, used when this CPU reports none.
    pub const EPYC: SevBits = SevBits {
        cbitpos: 51,
        reduced_phys_bits: 1,
    };

    /// From this CPU's CPUID, when it reports SEV (0x8000001F EAX bit 1).
    pub fn of_host() -> Option<SevBits> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::__cpuid;
            if __cpuid(0x8000_0000).eax < 0x8000_001f {
                return None;
            }
            let l = __cpuid(0x8000_001f);
            (l.eax & 2 != 0).then_some(SevBits {
                cbitpos: l.ebx & 0x3f,
                reduced_phys_bits: (l.ebx >> 6) & 0x3f,
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }
}

/// The id the machine's `confidential-guest-support` names.
fn object_id(tee: Tee) -> &'static str {
    match tee {
        Tee::Tdx => "tdx0",
        Tee::Snp => "sev0",
    }
}

/// QEMU's arguments for `spec` (its payload: the UEFI disk image) as `tee`.
pub fn args(tee: Tee, spec: &BootSpec<'_>, firmware: &Path, sev: SevBits) -> Vec<OsString> {
    let id = object_id(tee);
    let (cpu, machine, object) = match tee {
        Tee::Tdx => (
            "host",
            format!("q35,kernel-irqchip=split,confidential-guest-support={id}"),
            format!("tdx-guest,id={id}"),
        ),
        // AMD's SNP launch recipes name a CPU model whose CPUID the SNP
        // firmware accepts; `host` can carry bits it rejects.
        Tee::Snp => (
            "EPYC-v4",
            format!("q35,confidential-guest-support={id}"),
            format!(
                "sev-snp-guest,id={id},cbitpos={},reduced-phys-bits={}",
                sev.cbitpos, sev.reduced_phys_bits
            ),
        ),
    };
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let mem = format!("{}M", spec.memory_mib);
    push(&["-accel", "kvm", "-cpu", cpu, "-m", &mem]);
    if spec.vcpus > 1 {
        let smp = spec.vcpus.to_string();
        push(&["-smp", &smp]);
    }
    push(&["-machine", &machine, "-object", &object]);
    push(&HEADLESS_SERIAL_STDIO);
    if spec.reboots == 0 {
        push(&["-no-reboot"]);
    }
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    a.push("-bios".into());
    a.push(firmware.into());
    let mut drive = OsString::from("if=virtio,format=raw,file=");
    drive.push(
        spec.payload
            .as_os_str()
            .to_string_lossy()
            .replace(',', ",,"),
    );
    a.push("-drive".into());
    a.push(drive);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::qemu::{binary, find_in_path};
    use crate::error::shell_line;
    use crate::machine::{Boot, Machine};
    use convtest_proto::arch::Arch;
    use std::process::Command;

    fn line(tee: Tee, image: &Path, fw: &Path) -> String {
        let spec = crate::backend::spec::test_spec(Arch::X86_64, Boot::Uefi, Machine::Q35, image);
        shell_line(
            OsString::from(binary(Arch::X86_64)),
            args(tee, &spec, fw, SevBits::EPYC),
        )
    }

    #[test]
    fn command_lines_follow_qemus_docs() {
        let img = Path::new("/w/uefi.img");
        assert_eq!(
            line(Tee::Tdx, img, Path::new("/c/OVMF.inteltdx.nopk.fd")),
            "qemu-system-x86_64 -accel kvm -cpu host -m 256M \
             -machine q35,kernel-irqchip=split,confidential-guest-support=tdx0 -object tdx-guest,id=tdx0 \
             -nodefaults -no-user-config -display none -serial stdio -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -bios /c/OVMF.inteltdx.nopk.fd \
             -drive if=virtio,format=raw,file=/w/uefi.img"
        );
        let snp = line(Tee::Snp, img, Path::new("/c/OVMF.amdsev.fd"));
        assert!(
            snp.starts_with(
                "qemu-system-x86_64 -accel kvm -cpu EPYC-v4 -m 256M \
                 -machine q35,confidential-guest-support=sev0 \
                 -object sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1 "
            ),
            "{snp}"
        );
    }

    /// Runs the exact SNP command line with this host's QEMU: it must get
    /// past QEMU's option parsing and fail only where KVM is asked for an
    /// SNP VM. A misspelt property, as a control, fails in the parsing.
    #[test]
    fn snp_command_line_passes_qemus_own_parsing() {
        let bin = binary(Arch::X86_64);
        if find_in_path(bin).is_none() || host_runs(Tee::Snp) {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let fw = tmp.path().join("OVMF.amdsev.fd");
        let img = tmp.path().join("uefi.img");
        std::fs::write(&fw, vec![0u8; 4 << 20]).expect("firmware stand-in");
        std::fs::write(&img, vec![0u8; 1 << 20]).expect("image stand-in");
        let spec = crate::backend::spec::test_spec(Arch::X86_64, Boot::Uefi, Machine::Q35, &img);
        let a = args(Tee::Snp, &spec, &fw, SevBits::EPYC);
        let err = qemu_stderr(bin, &a);
        let kvm_side = [
            "vm-type SEV-SNP not supported by KVM",
            "Could not access KVM kernel module",
            "failed to initialize kvm",
        ];
        assert!(
            kvm_side.iter().any(|k| err.contains(k)),
            "QEMU must fail only for lack of KVM SNP support, said: {err}"
        );
        // The control: a misspelt property is caught by the parsing itself.
        let typo: Vec<OsString> = a
            .iter()
            .map(|s| {
                OsString::from(
                    s.to_string_lossy()
                        .replace("reduced-phys-bits=", "reduced-phys-bitz="),
                )
            })
            .collect();
        let err = qemu_stderr(bin, &typo);
        assert!(
            err.contains("Parameter 'reduced-phys-bits' is missing"),
            "{err}"
        );
    }

    /// QEMU before 10.1 does not know the TDX object: the TDX line cannot
    /// be checked here, and QEMU says why.
    #[test]
    fn tdx_object_needs_qemu_10_1() {
        let bin = binary(Arch::X86_64);
        let Some(v) = find_in_path(bin).and_then(|_| {
            let out = Command::new(bin).arg("--version").output().ok()?;
            super::super::host::parse_version(&String::from_utf8_lossy(&out.stdout))
        }) else {
            return;
        };
        if (v.0, v.1) >= (10, 1) {
            return;
        }
        let a: Vec<OsString> = ["-machine", "none", "-object", "tdx-guest,id=tdx0"]
            .map(OsString::from)
            .into();
        let err = qemu_stderr(bin, &a);
        assert!(
            err.contains("'qom-type' does not accept value 'tdx-guest'"),
            "{err}"
        );
    }

    fn host_runs(tee: Tee) -> bool {
        super::super::host::missing(tee, &super::super::host::probe(tee)).is_empty()
    }

    /// QEMU's stderr, run with a timeout so nothing can hang the tests.
    fn qemu_stderr(bin: &str, args: &[OsString]) -> String {
        let out = Command::new("timeout")
            .arg("20")
            .arg(bin)
            .args(args)
            .output()
            .expect("run qemu");
        assert!(!out.status.success(), "QEMU must not start a guest here");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
