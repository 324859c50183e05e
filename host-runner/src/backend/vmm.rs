//! `--backend vmm`: convtest's own KVM VMM on this host's /dev/kvm. The VMM
//! runs as a child (`convtest vmm …`) so the watchdog can kill a vCPU wedged
//! inside the kernel exactly like a wedged QEMU.

use super::{Backend, BootSpec, ConsoleFn, RunEnd, process};
use crate::backend::kind::BackendKind;
use crate::cli::VMM_COMMAND;
use crate::error::{Error, shell_line};
use crate::machine::Boot;
use convtest_proto::arch::Arch;
use convtest_vmm::{VmmConfig, VmmOptions};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

pub struct OwnVmm;

/// The `convtest vmm` arguments for one guest; nested hands the same list
/// to the L1's /init.
pub fn vmm_args(
    arch: Arch,
    kernel: &Path,
    cmdline: &str,
    memory_mib: u32,
    vcpus: u32,
    options: &VmmOptions,
) -> Vec<OsString> {
    let config = VmmConfig {
        arch: Some(arch),
        kernel: kernel.to_path_buf(),
        cmdline: cmdline.to_string(),
        memory_mib,
        vcpus,
        options: options.clone(),
    };
    let mut args = vec![OsString::from(VMM_COMMAND)];
    args.extend(config.to_argv());
    args
}

impl Backend for OwnVmm {
    fn kind(&self) -> BackendKind {
        BackendKind::Vmm
    }

    fn preflight(&self, arch: Arch, _boot: Boot) -> Result<(), Error> {
        let host = std::env::consts::ARCH;
        if Arch::from_host(host) != Some(arch) {
            return Err(Error::Unsupported {
                what: format!(
                    "--backend vmm runs {} guests on {} hosts only (this is {host}); use --backend nested",
                    arch.as_str(),
                    arch.as_str()
                ),
            });
        }
        convtest_vmm::preflight().map_err(|e| Error::Unsupported {
            what: format!(
                "--backend vmm needs /dev/kvm ({e}); on a host without usable KVM use --backend nested"
            ),
        })
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
