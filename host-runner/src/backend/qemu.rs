//! The QEMU backend: one command line per arch / machine / boot / accel,
//! the serial console on stdio, and the exit status read as the guest's
//! power-off hint (run_end.rs). QEMU adds no lines of its own to the
//! console, so the runner is the first host side to read the guest's
//! bytes: they go through the relay (convtest_proto::relay) before
//! anything reads them, so no guest line can read as a host layer's.

use super::interface::{Backend, ConsoleFn};
use super::kind::BackendKind;
use super::process;
use super::run_end::{self, RunEnd};
use super::spec::BootSpec;
use crate::error::{Error, shell_line};
use crate::machine::{Boot, Machine};
use convtest_proto::arch::Arch;
use convtest_proto::relay::GuestRelay;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// No default devices, no display, the first serial port on stdio: every
/// QEMU convtest starts (guest or nested L1) is a console on a pipe.
pub const HEADLESS_SERIAL_STDIO: [&str; 6] = [
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-serial",
    "stdio",
];

pub struct Qemu {
    pub ovmf_code: PathBuf,
    pub ovmf_vars: PathBuf,
}

impl Default for Qemu {
    fn default() -> Self {
        Qemu {
            ovmf_code: OVMF_CODE.into(),
            ovmf_vars: OVMF_VARS.into(),
        }
    }
}

pub fn binary(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86_64",
        Arch::Aarch64 => "qemu-system-aarch64",
    }
}

/// QEMU's arguments for one boot. `uefi_vars` is the run's private copy of
/// the OVMF variable store (the guest may write it).
pub fn args(spec: &BootSpec<'_>, ovmf_code: &Path, uefi_vars: Option<&Path>) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let machine = match spec.machine {
        Machine::Microvm => "microvm",
        Machine::Pc => "pc",
        Machine::Virt => "virt",
        Machine::VirtEl2 => "virt,virtualization=on",
        Machine::Q35 => "q35",
    };
    // A directly booted guest on microvm or virt reads no ACPI table (PVH
    // start info, the DTB; it powers off through isa-debug-exit or PSCI),
    // and building the tables was half of QEMU's time to the first KTAP
    // line under TCG (x86 microvm 60 -> 32 ms, docs/lanes.md). The PC
    // machines keep theirs: firmware boots and the TEE lanes use them.
    let acpi_off = matches!(spec.boot, Boot::Pvh | Boot::Image)
        && matches!(
            spec.machine,
            Machine::Microvm | Machine::Virt | Machine::VirtEl2
        );
    let machine = if acpi_off {
        format!("{machine},acpi=off")
    } else {
        machine.to_string()
    };
    push(&["-M", &machine, "-accel", spec.accel.as_str(), "-cpu", "max"]);
    let mem = format!("{}M", spec.memory_mib);
    push(&["-m", &mem]);
    if spec.vcpus > 1 {
        let smp = spec.vcpus.to_string();
        push(&["-smp", &smp]);
    }
    push(&HEADLESS_SERIAL_STDIO);
    if spec.reboots == 0 {
        // An unplanned reset (x86 triple fault) ends the run instead of looping.
        push(&["-no-reboot"]);
    }
    if spec.arch == Arch::X86_64 {
        push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    }
    match spec.boot {
        Boot::Pvh | Boot::Image => {
            a.push("-kernel".into());
            a.push(spec.payload.into());
            a.push("-append".into());
            a.push(spec.cmdline.into());
        }
        Boot::Bios | Boot::Uefi => {
            if spec.boot == Boot::Bios {
                // The BIOS loader sets a VESA mode through int 10h and stalls
                // silently without a VGA card (-nodefaults removes it).
                a.push("-vga".into());
                a.push("std".into());
            }
            if let (Boot::Uefi, Some(vars)) = (spec.boot, uefi_vars) {
                a.push("-drive".into());
                a.push(drive("if=pflash,format=raw,readonly=on,file=", ovmf_code));
                a.push("-drive".into());
                a.push(drive("if=pflash,format=raw,file=", vars));
            }
            a.push("-drive".into());
            a.push(drive("format=raw,file=", spec.payload));
        }
    }
    a
}

/// A `-drive` value; commas in the path are doubled as QEMU's option parser wants.
fn drive(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(path.as_os_str().to_string_lossy().replace(',', ",,"));
    s
}

/// First `name` on PATH that is a file.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Backend for Qemu {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn preflight(&self, arch: Arch, boot: Boot) -> Result<(), Error> {
        let bin = binary(arch);
        if find_in_path(bin).is_none() {
            return Err(Error::QemuMissing { binary: bin.into() });
        }
        if boot == Boot::Uefi {
            for fw in [&self.ovmf_code, &self.ovmf_vars] {
                if !fw.is_file() {
                    return Err(Error::OvmfMissing { path: fw.clone() });
                }
            }
        }
        Ok(())
    }

    fn run(&self, spec: &BootSpec<'_>, console: &mut ConsoleFn<'_>) -> Result<RunEnd, Error> {
        // Holds the per-run OVMF variable store; removed when the run ends.
        let scratch = crate::cleanup::Scratch::new("convtest-qemu-")?;
        let vars = if spec.boot == Boot::Uefi {
            let copy = scratch.path().join("OVMF_VARS.fd");
            std::fs::copy(&self.ovmf_vars, &copy).map_err(|e| match e.kind() {
                ErrorKind::NotFound => Error::OvmfMissing {
                    path: self.ovmf_vars.clone(),
                },
                _ => Error::io("copying", &self.ovmf_vars, e),
            })?;
            Some(copy)
        } else {
            None
        };
        let bin = binary(spec.arch);
        let args = args(spec, &self.ovmf_code, vars.as_deref());
        let command = shell_line(OsString::from(bin), args.iter().cloned());
        let mut cmd = Command::new(bin);
        cmd.args(&args);
        let mut relay = GuestRelay::new();
        let mut relayed = |bytes: &[u8]| {
            let mut out = Vec::with_capacity(bytes.len());
            relay.guest(bytes, &mut out);
            console(&out)
        };
        let finished = process::supervise(cmd, &command, spec.timeout, &mut relayed);
        let mut rest = Vec::new();
        relay.finish(&mut rest);
        if !rest.is_empty() {
            console(&rest);
        }
        let finished = finished.map_err(|e| match e {
            Error::Spawn { source, .. } if source.kind() == ErrorKind::NotFound => {
                Error::QemuMissing { binary: bin.into() }
            }
            other => other,
        })?;
        Ok(run_end::run_end(finished, spec, command))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::Accel;

    fn spec(arch: Arch, boot: Boot, machine: Machine, payload: &Path) -> BootSpec<'_> {
        crate::backend::spec::test_spec(arch, boot, machine, payload)
    }

    fn line(spec: &BootSpec<'_>, vars: Option<&Path>) -> String {
        shell_line(
            OsString::from(binary(spec.arch)),
            args(spec, Path::new(OVMF_CODE), vars),
        )
    }

    #[test]
    fn x86_pvh_microvm() {
        let s = spec(
            Arch::X86_64,
            Boot::Pvh,
            Machine::Microvm,
            Path::new("/t/convtest-guest"),
        );
        assert_eq!(
            line(&s, None),
            "qemu-system-x86_64 -M microvm,acpi=off -accel tcg -cpu max -m 256M -nodefaults -no-user-config -display none \
             -serial stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel /t/convtest-guest \
             -append 'tests=* seed=0x5eed'"
        );
    }

    #[test]
    fn x86_pvh_pc_kvm_with_reboots() {
        let mut s = spec(Arch::X86_64, Boot::Pvh, Machine::Pc, Path::new("/k"));
        s.accel = Accel::Kvm;
        s.reboots = 2;
        s.memory_mib = 512;
        let l = line(&s, None);
        assert!(
            l.starts_with("qemu-system-x86_64 -M pc -accel kvm -cpu max -m 512M "),
            "{l}"
        );
        assert!(
            !l.contains("-no-reboot"),
            "planned reboots must reset, not exit: {l}"
        );
    }

    #[test]
    fn x86_bios_and_uefi() {
        let s = spec(
            Arch::X86_64,
            Boot::Bios,
            Machine::Pc,
            Path::new("/w/bios.img"),
        );
        let l = line(&s, None);
        assert!(
            l.ends_with(
                "-device isa-debug-exit,iobase=0xf4,iosize=0x04 -vga std -drive format=raw,file=/w/bios.img"
            ),
            "{l}"
        );
        assert!(
            !l.contains("-kernel") && !l.contains("-append") && !l.contains("pflash"),
            "{l}"
        );

        let s = spec(
            Arch::X86_64,
            Boot::Uefi,
            Machine::Pc,
            Path::new("/w/uefi.img"),
        );
        let l = line(&s, Some(Path::new("/tmp/run,1/VARS.fd")));
        assert!(
            l.ends_with(
                "-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
                 -drive if=pflash,format=raw,file=/tmp/run,,1/VARS.fd -drive format=raw,file=/w/uefi.img"
            ),
            "{l}"
        );
    }

    #[test]
    fn aarch64_virt_el1_and_el2() {
        let s = spec(
            Arch::Aarch64,
            Boot::Image,
            Machine::Virt,
            Path::new("/t/Image"),
        );
        assert_eq!(
            line(&s, None),
            "qemu-system-aarch64 -M virt,acpi=off -accel tcg -cpu max -m 256M -nodefaults -no-user-config -display none \
             -serial stdio -no-reboot -kernel /t/Image -append 'tests=* seed=0x5eed'"
        );
        let s = spec(
            Arch::Aarch64,
            Boot::Image,
            Machine::VirtEl2,
            Path::new("/t/Image"),
        );
        assert!(
            line(&s, None)
                .starts_with("qemu-system-aarch64 -M virt,virtualization=on,acpi=off -accel tcg")
        );
    }

    #[test]
    fn preflight_names_missing_firmware() {
        let q = Qemu {
            ovmf_code: "/nonexistent/CODE.fd".into(),
            ovmf_vars: OVMF_VARS.into(),
        };
        match q.preflight(Arch::X86_64, Boot::Uefi) {
            Err(Error::OvmfMissing { path }) => assert_eq!(path, Path::new("/nonexistent/CODE.fd")),
            Err(Error::QemuMissing { .. }) => {} // this host has no QEMU at all
            other => panic!("unexpected {other:?}"),
        }
    }
}
