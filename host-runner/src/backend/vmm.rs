//! `--backend vmm`: convtest's own KVM VMM on this host's /dev/kvm. The VMM
//! runs as a child (`convtest vmm …`) so the watchdog can kill a vCPU wedged
//! inside the kernel exactly like a wedged QEMU.

use super::{Backend, BootSpec, ConsoleFn, RunEnd, process};
use crate::cli::{BackendKind, Boot, VmmOptions};
use crate::error::{Error, shell_line};
use convtest_proto::arch::Arch;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

pub struct OwnVmm;

/// The `convtest vmm` arguments for one guest; nested hands the same list
/// to the runner inside L1.
pub fn vmm_args(
    arch: Arch,
    kernel: &Path,
    cmdline: &str,
    memory_mib: u32,
    vcpus: u32,
    opts: &VmmOptions,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "vmm".into(),
        "--arch".into(),
        arch.as_str().into(),
        "--kernel".into(),
        kernel.into(),
        "--cmdline".into(),
        cmdline.into(),
        "--memory".into(),
        memory_mib.to_string().into(),
        "--vcpus".into(),
        vcpus.to_string().into(),
    ];
    if let Some(c) = opts.content {
        a.extend(["--content".into(), c.as_str().into()]);
    }
    a.extend(["--vmm-memory".into(), opts.vmm_memory.as_str().into()]);
    a.extend(["--vm-type".into(), opts.vm_type.as_str().into()]);
    a.extend([
        "--vcpu-watchdog".into(),
        opts.vcpu_watchdog.to_string().into(),
    ]);
    a.extend(["--reset-policy".into(), opts.reset_policy.as_str().into()]);
    if !opts.vmm_fault.is_empty() {
        let kinds: Vec<&str> = opts.vmm_fault.iter().map(|f| f.as_str()).collect();
        a.extend(["--vmm-fault".into(), kinds.join(",").into()]);
    }
    a
}

impl Backend for OwnVmm {
    fn kind(&self) -> BackendKind {
        BackendKind::Vmm
    }

    fn preflight(&self, arch: Arch, _boot: Boot) -> Result<(), Error> {
        let host = std::env::consts::ARCH;
        if Arch::from_host(host) != Some(arch) {
            return Err(Error::Usage(format!(
                "--backend vmm runs {} guests on {} hosts only (this is {host}); use --backend nested",
                arch.as_str(),
                arch.as_str()
            )));
        }
        crate::vmm::preflight()
    }

    fn run(&self, spec: &BootSpec<'_>, console: &mut ConsoleFn<'_>) -> Result<RunEnd, Error> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io("locating", Path::new("convtest"), e))?;
        let args = vmm_args(
            spec.arch,
            spec.payload,
            spec.cmdline,
            spec.memory_mib,
            spec.vcpus,
            spec.vmm,
        );
        let command = shell_line(exe.clone().into_os_string(), args.iter().cloned());
        let mut cmd = Command::new(&exe);
        cmd.args(&args);
        let finished = process::supervise(cmd, &command, spec.timeout, console)?;
        Ok(super::run_end(finished, spec, command))
    }
}
