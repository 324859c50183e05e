//! The `--tee` backend: QEMU on hardware KVM as a TDX trust domain or an
//! SEV-SNP guest. Preflight names everything the host lacks (host.rs)
//! before the firmware is fetched or the guest built.

use super::command::{self, SevBits};
use super::{Tee, firmware, host};
use crate::backend::interface::{Backend, ConsoleFn};
use crate::backend::kind::BackendKind;
use crate::backend::process;
use crate::backend::qemu::binary;
use crate::backend::run_end::{self, RunEnd};
use crate::backend::spec::BootSpec;
use crate::error::{Error, shell_line};
use crate::machine::Boot;
use convtest_proto::arch::Arch;
use std::cell::RefCell;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

pub struct TeeQemu {
    pub tee: Tee,
    /// `--firmware`: the user's own TDVF / OVMF, used as given.
    pub firmware: Option<PathBuf>,
    pub quiet: bool,
    /// The firmware preflight settled on.
    chosen: RefCell<Option<PathBuf>>,
}

impl TeeQemu {
    pub fn new(tee: Tee, firmware: Option<PathBuf>, quiet: bool) -> TeeQemu {
        TeeQemu {
            tee,
            firmware,
            quiet,
            chosen: RefCell::new(None),
        }
    }

    fn firmware(&self) -> Result<PathBuf, Error> {
        if let Some(f) = self.chosen.borrow().as_ref() {
            return Ok(f.clone());
        }
        let f = match &self.firmware {
            Some(p) if p.is_file() => p.clone(),
            Some(p) => return Err(Error::OvmfMissing { path: p.clone() }),
            None => firmware::ensure(self.tee, self.quiet)?,
        };
        *self.chosen.borrow_mut() = Some(f.clone());
        Ok(f)
    }
}

impl Backend for TeeQemu {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn preflight(&self, arch: Arch, boot: Boot) -> Result<(), Error> {
        if arch != Arch::X86_64 || boot != Boot::Uefi {
            return Err(Error::Usage(format!(
                "--tee {} boots an x86_64 UEFI image (--arch x86_64 --boot uefi)",
                self.tee.as_str()
            )));
        }
        host::check(self.tee, &host::probe(self.tee))?;
        let fw = self.firmware()?;
        if !self.quiet {
            eprintln!(
                "convtest: --tee {}: firmware {}",
                self.tee.as_str(),
                fw.display()
            );
        }
        Ok(())
    }

    fn run(&self, spec: &BootSpec<'_>, console: &mut ConsoleFn<'_>) -> Result<RunEnd, Error> {
        let fw = self.firmware()?;
        let sev = SevBits::of_host().unwrap_or(SevBits::EPYC);
        let bin = binary(Arch::X86_64);
        let args = command::args(self.tee, spec, &fw, sev);
        let line = shell_line(OsString::from(bin), args.iter().cloned());
        let mut cmd = Command::new(bin);
        cmd.args(&args);
        let finished =
            process::supervise(cmd, &line, spec.timeout, console).map_err(|e| match e {
                Error::Spawn { source, .. } if source.kind() == ErrorKind::NotFound => {
                    Error::QemuMissing { binary: bin.into() }
                }
                other => other,
            })?;
        Ok(run_end::run_end(finished, spec, line))
    }
}
