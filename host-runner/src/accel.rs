//! Picking KVM or TCG. `/dev/kvm` alone proves nothing: a software KVM (as
//! on the project's CI machines) exposes the device but hangs on `vmcall`,
//! so on x86 KVM also needs vmx/svm in the CPU flags.

use crate::cli::AccelArg;
use crate::error::Error;
use convtest_proto::arch::Arch;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The accelerator and why it was chosen, for the run's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub accel: Accel,
    pub why: String,
}

/// What the host offers; a plain struct so tests can fake it.
#[derive(Clone, Debug)]
pub struct Host {
    pub arch: Option<Arch>,
    pub kvm_device: bool,
    pub cpuinfo: String,
}

impl Host {
    pub fn probe() -> Host {
        Host {
            arch: Arch::from_host(std::env::consts::ARCH),
            kvm_device: Path::new("/dev/kvm").exists(),
            // No cpuinfo (not Linux) reads as "no hardware virtualization".
            cpuinfo: std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
        }
    }

    fn hw_virt_flag(&self) -> Option<&'static str> {
        let flags = self.cpuinfo.lines().find(|l| l.starts_with("flags"))?;
        let flags = flags.split_once(':')?.1;
        flags.split_ascii_whitespace().find_map(|f| match f {
            "vmx" => Some("vmx"),
            "svm" => Some("svm"),
            _ => None,
        })
    }
}

pub fn choose(requested: AccelArg, guest: Arch, host: &Host) -> Result<Choice, Error> {
    let tcg = |why: String| {
        Ok(Choice {
            accel: Accel::Tcg,
            why,
        })
    };
    let native = host.arch == Some(guest);
    match requested {
        AccelArg::Tcg => tcg("--accel tcg".into()),
        AccelArg::Kvm if !native => Err(Error::Unsupported {
            what: format!(
                "--accel kvm cannot run an {} guest on an {} host; use --accel tcg or auto",
                guest.as_str(),
                host.arch.map_or(std::env::consts::ARCH, Arch::as_str)
            ),
        }),
        AccelArg::Kvm if !host.kvm_device => Err(Error::Unsupported {
            what: "--accel kvm: /dev/kvm does not exist".into(),
        }),
        AccelArg::Kvm => Ok(Choice {
            accel: Accel::Kvm,
            why: "--accel kvm".into(),
        }),
        AccelArg::Auto if !native => tcg(format!(
            "auto: an {} guest on an {} host is emulated",
            guest.as_str(),
            host.arch.map_or(std::env::consts::ARCH, Arch::as_str)
        )),
        AccelArg::Auto if !host.kvm_device => tcg("auto: no /dev/kvm".into()),
        AccelArg::Auto => match guest {
            Arch::X86_64 => match host.hw_virt_flag() {
                Some(flag) => Ok(Choice {
                    accel: Accel::Kvm,
                    why: format!("auto: /dev/kvm and {flag} in /proc/cpuinfo"),
                }),
                None => tcg(
                    "auto: /dev/kvm exists but /proc/cpuinfo has no vmx/svm (software KVM)".into(),
                ),
            },
            Arch::Aarch64 => Ok(Choice {
                accel: Accel::Kvm,
                why: "auto: /dev/kvm on an aarch64 host".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_VMX: &str = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor lahf_lm\n";
    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme vmx de pse\n";
    const SVM: &str = "flags\t\t: fpu svm\n";

    fn x86(kvm_device: bool, cpuinfo: &str) -> Host {
        Host {
            arch: Some(Arch::X86_64),
            kvm_device,
            cpuinfo: cpuinfo.into(),
        }
    }

    #[test]
    fn auto_needs_device_and_flag() {
        assert_eq!(
            choose(AccelArg::Auto, Arch::X86_64, &x86(true, VMX))
                .map(|c| c.accel)
                .ok(),
            Some(Accel::Kvm)
        );
        assert_eq!(
            choose(AccelArg::Auto, Arch::X86_64, &x86(true, SVM))
                .map(|c| c.accel)
                .ok(),
            Some(Accel::Kvm)
        );
        let soft = choose(AccelArg::Auto, Arch::X86_64, &x86(true, NO_VMX)).expect("chooses");
        assert_eq!(soft.accel, Accel::Tcg);
        assert!(soft.why.contains("software KVM"), "{}", soft.why);
        assert_eq!(
            choose(AccelArg::Auto, Arch::X86_64, &x86(false, VMX))
                .map(|c| c.accel)
                .ok(),
            Some(Accel::Tcg)
        );
        // "vmx" only counts as a whole flag on the flags line.
        let tricky = "model name\t: vmx-capable\nflags\t\t: fpu vmxx\n";
        assert_eq!(
            choose(AccelArg::Auto, Arch::X86_64, &x86(true, tricky))
                .map(|c| c.accel)
                .ok(),
            Some(Accel::Tcg)
        );
    }

    #[test]
    fn cross_arch_is_tcg_and_kvm_is_refused() {
        let c = choose(AccelArg::Auto, Arch::Aarch64, &x86(true, VMX)).expect("chooses");
        assert_eq!(c.accel, Accel::Tcg);
        assert!(
            c.why.contains("aarch64 guest on an x86_64 host"),
            "{}",
            c.why
        );
        assert!(matches!(
            choose(AccelArg::Kvm, Arch::Aarch64, &x86(true, VMX)),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn explicit_choices() {
        assert_eq!(
            choose(AccelArg::Tcg, Arch::X86_64, &x86(true, VMX))
                .map(|c| c.accel)
                .ok(),
            Some(Accel::Tcg)
        );
        assert_eq!(
            choose(AccelArg::Kvm, Arch::X86_64, &x86(true, NO_VMX))
                .map(|c| c.accel)
                .ok(),
            Some(Accel::Kvm)
        );
        assert!(choose(AccelArg::Kvm, Arch::X86_64, &x86(false, VMX)).is_err());
        let arm = Host {
            arch: Some(Arch::Aarch64),
            kvm_device: true,
            cpuinfo: String::new(),
        };
        assert_eq!(
            choose(AccelArg::Auto, Arch::Aarch64, &arm)
                .map(|c| c.accel)
                .ok(),
            Some(Accel::Kvm)
        );
    }
}
