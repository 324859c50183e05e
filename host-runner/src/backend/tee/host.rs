//! What a TDX or SNP run needs from the host, checked before anything is
//! built: hardware KVM of the right vendor, KVM_CAP_VM_TYPES offering the
//! VM type QEMU will create, and a QEMU that knows the object. Everything
//! missing is named at once (exit status 2).

use super::Tee;
use crate::backend::qemu::binary;
use crate::error::Error;
use convtest_proto::arch::Arch;
use std::process::Command;

/// What /dev/kvm answered to KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmAnswer {
    NoDevice,
    /// /dev/kvm could not be opened, or the ioctl failed: why.
    Failed(String),
    /// The bitmap of VM types.
    VmTypes(u64),
}

/// What the QEMU on PATH says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QemuAnswer {
    NotOnPath,
    /// It ran but could not be read: why.
    Unreadable(String),
    Found {
        version: (u32, u32, u32),
        /// `-object help`: the user-creatable object types.
        objects: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// `vmx` / `svm` on /proc/cpuinfo's flags line.
    pub virt_flags: Vec<String>,
    pub kvm: KvmAnswer,
    pub qemu: QemuAnswer,
    /// The KVM module parameter that turns the VM type on
    /// (`kvm_intel.tdx`, `kvm_amd.sev_snp`), when readable.
    pub module_param: Option<String>,
}

/// The module parameter each VM type hangs on.
fn param_path(tee: Tee) -> &'static str {
    match tee {
        Tee::Tdx => "/sys/module/kvm_intel/parameters/tdx",
        Tee::Snp => "/sys/module/kvm_amd/parameters/sev_snp",
    }
}

/// Looks at this host.
pub fn probe(tee: Tee) -> HostFacts {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    HostFacts {
        virt_flags: virt_flags(&cpuinfo),
        kvm: probe_kvm(),
        qemu: probe_qemu(binary(Arch::X86_64)),
        module_param: std::fs::read_to_string(param_path(tee))
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

fn virt_flags(cpuinfo: &str) -> Vec<String> {
    let Some(flags) = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
    else {
        return Vec::new();
    };
    flags
        .1
        .split_ascii_whitespace()
        .filter(|f| matches!(*f, "vmx" | "svm"))
        .map(str::to_string)
        .collect()
}

fn probe_kvm() -> KvmAnswer {
    if !std::path::Path::new("/dev/kvm").exists() {
        return KvmAnswer::NoDevice;
    }
    match kvm_ioctls::Kvm::new() {
        Err(e) => KvmAnswer::Failed(format!("opening /dev/kvm: {e}")),
        Ok(kvm) => {
            let p = convtest_vmm::facts::probe(&kvm, convtest_vmm::facts::cap::VM_TYPES);
            match u64::try_from(p.value) {
                Ok(v) => KvmAnswer::VmTypes(v),
                Err(_) => KvmAnswer::Failed(format!(
                    "KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES) failed with errno {}",
                    -p.value
                )),
            }
        }
    }
}

fn probe_qemu(bin: &str) -> QemuAnswer {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new(bin)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "`{bin} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if crate::backend::qemu::find_in_path(bin).is_none() {
        return QemuAnswer::NotOnPath;
    }
    let version = match run(&["--version"]).map(|v| parse_version(&v)) {
        Ok(Some(v)) => v,
        Ok(None) => return QemuAnswer::Unreadable(format!("`{bin} --version` names no version")),
        Err(e) => return QemuAnswer::Unreadable(e),
    };
    match run(&["-object", "help"]) {
        Ok(text) => QemuAnswer::Found {
            version,
            objects: parse_objects(&text),
        },
        Err(e) => QemuAnswer::Unreadable(e),
    }
}

/// `QEMU emulator version 10.0.2 (Debian …)` → (10, 0, 2).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    let mut nums = word.split('.').map(|n| n.parse::<u32>().ok());
    Some((
        nums.next()??,
        nums.next()??,
        nums.next().flatten().unwrap_or(0),
    ))
}

/// The indented names under `-object help`'s heading.
pub fn parse_objects(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(' '))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every reason this host cannot run `tee`, in words that say what to get.
pub fn missing(tee: Tee, f: &HostFacts) -> Vec<String> {
    let mut out = Vec::new();
    let want = tee.cpu_flag();
    if !f.virt_flags.iter().any(|x| x == want) {
        out.push(match f.virt_flags.first() {
            Some(other) => format!(
                "hardware KVM on {}: this CPU shows `{other}`, {} needs `{want}` ({})",
                if tee == Tee::Tdx { "Intel" } else { "AMD" },
                tee.as_str(),
                if tee == Tee::Tdx {
                    "an Intel host with TDX"
                } else {
                    "an AMD EPYC host with SEV-SNP"
                }
            ),
            None => format!(
                "hardware KVM: /proc/cpuinfo shows no `{want}` flag, so this host's /dev/kvm (if any) is a software KVM"
            ),
        });
    }
    let (bit, name) = tee.vm_type();
    let param = || {
        let path = param_path(tee);
        match &f.module_param {
            Some(v) => format!("; {path} is {v}"),
            None => format!("; {path} does not exist"),
        }
    };
    match &f.kvm {
        KvmAnswer::NoDevice => out.push("/dev/kvm: not present".into()),
        KvmAnswer::Failed(why) => out.push(format!("KVM_CAP_VM_TYPES: {why}")),
        KvmAnswer::VmTypes(v) if v & (1 << bit) == 0 => out.push(format!(
            "KVM_CAP_VM_TYPES (235) is {v:#x}, without bit {bit} ({name}): this kernel's KVM offers no {} VMs{}",
            tee.title(),
            param()
        )),
        KvmAnswer::VmTypes(_) => {}
    }
    let (object, (major, minor)) = tee.qemu_object();
    let bin = binary(Arch::X86_64);
    match &f.qemu {
        QemuAnswer::NotOnPath => out.push(format!("{bin}: not on PATH")),
        QemuAnswer::Unreadable(why) => out.push(format!("{bin}: {why}")),
        QemuAnswer::Found { version, objects } if !objects.iter().any(|o| o == object) => {
            let (a, b, c) = version;
            out.push(format!(
                "QEMU {a}.{b}.{c} has no `{object}` object (--tee {} needs QEMU >= {major}.{minor})",
                tee.as_str()
            ));
        }
        QemuAnswer::Found { .. } => {}
    }
    out
}

/// `Ok` when `facts` show nothing missing; otherwise the error that names it all.
pub fn check(tee: Tee, facts: &HostFacts) -> Result<(), Error> {
    let missing = missing(tee, facts);
    if missing.is_empty() {
        return Ok(());
    }
    let items: Vec<String> = missing
        .iter()
        .enumerate()
        .map(|(i, m)| format!("({}) {m}", i + 1))
        .collect();
    Err(Error::Unsupported {
        what: format!(
            "--tee {} cannot run on this host, it lacks: {}",
            tee.as_str(),
            items.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu(v: (u32, u32, u32), objects: &[&str]) -> QemuAnswer {
        QemuAnswer::Found {
            version: v,
            objects: objects.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// This project's machine: a software KVM, QEMU 10.0.2.
    fn here() -> HostFacts {
        HostFacts {
            virt_flags: vec![],
            kvm: KvmAnswer::VmTypes(0x3),
            qemu: qemu((10, 0, 2), &["sev-guest", "sev-snp-guest"]),
            module_param: None,
        }
    }

    #[test]
    fn everything_missing_is_named_at_once() {
        let m = missing(Tee::Tdx, &here());
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(
            m[0].contains("no `vmx` flag") && m[0].contains("software KVM"),
            "{}",
            m[0]
        );
        assert!(
            m[1].contains("is 0x3, without bit 5 (KVM_X86_TDX_VM)")
                && m[1].contains("/sys/module/kvm_intel/parameters/tdx does not exist"),
            "{}",
            m[1]
        );
        assert_eq!(
            m[2],
            "QEMU 10.0.2 has no `tdx-guest` object (--tee tdx needs QEMU >= 10.1)"
        );
        // QEMU 10.0 has the SNP object: two reasons only.
        let m = missing(Tee::Snp, &here());
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[1].contains("without bit 4 (KVM_X86_SNP_VM)"), "{}", m[1]);
        let e = check(Tee::Snp, &here()).expect_err("cannot run");
        assert!(
            e.to_string()
                .starts_with("--tee snp cannot run on this host, it lacks: (1) hardware KVM"),
            "{e}"
        );
    }

    #[test]
    fn a_ready_host_passes_and_the_wrong_vendor_is_named() {
        let tdx_host = HostFacts {
            virt_flags: vec!["vmx".into()],
            kvm: KvmAnswer::VmTypes(0b10_0011),
            qemu: qemu((10, 1, 0), &["tdx-guest", "sev-snp-guest"]),
            module_param: Some("Y".into()),
        };
        assert_eq!(missing(Tee::Tdx, &tdx_host), Vec::<String>::new());
        let m = missing(Tee::Snp, &tdx_host);
        assert!(
            m[0].contains("this CPU shows `vmx`, snp needs `svm`"),
            "{m:?}"
        );
        assert!(
            m[1].contains("/sys/module/kvm_amd/parameters/sev_snp is Y"),
            "{m:?}"
        );
    }

    #[test]
    fn no_device_and_no_qemu() {
        let f = HostFacts {
            virt_flags: vec!["svm".into()],
            kvm: KvmAnswer::NoDevice,
            qemu: QemuAnswer::NotOnPath,
            module_param: None,
        };
        assert_eq!(
            missing(Tee::Snp, &f),
            vec![
                "/dev/kvm: not present".to_string(),
                "qemu-system-x86_64: not on PATH".to_string()
            ]
        );
    }

    #[test]
    fn parses_what_qemu_prints() {
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\nCopyright"),
            Some((10, 0, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 10.1\n"),
            Some((10, 1, 0))
        );
        assert_eq!(parse_version("nothing"), None);
        assert_eq!(
            parse_objects("List of user creatable objects:\n  sev-guest\n  tdx-guest\n"),
            vec!["sev-guest".to_string(), "tdx-guest".to_string()]
        );
        assert_eq!(
            virt_flags("processor\t: 0\nflags\t\t: fpu vmx svmx svm\n"),
            vec!["vmx".to_string(), "svm".to_string()]
        );
    }
}
