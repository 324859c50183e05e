//! `--backend nested`: QEMU TCG runs a Linux L1 with real KVM (x86: emulated
//! AMD SVM; arm64: pKVM at EL2), whose /init is convtest itself (l1init.rs)
//! running its own VMM on the guest.
//!
//! Before QEMU starts (not under `--timeout`): the L1 kernel and modules
//! (Debian's, cached; assets.rs), the swprot kvm.ko if asked (swprot.rs),
//! convtest built static for the L1 (runner_build.rs), and the initramfs
//! holding all of it plus the guest (initramfs.rs). The console bytes go to
//! the caller unchanged; the run's exit status is the inner VMM's (watch.rs).

mod apt;
mod assets;
mod cache;
mod initramfs;
mod l1_qemu;
mod modules;
mod runner_build;
mod swprot;
mod watch;

use super::{Backend, BootSpec, ConsoleFn, RunEnd, process, qemu};
use crate::cli::{Arch, BackendKind, Boot};
use crate::error::{Error, shell_line};
use crate::l1init;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub struct Nested;

/// Tools the Debian assets need (every Debian host has them).
const APT_TOOLS: [&str; 2] = ["apt-get", "dpkg-deb"];

impl Backend for Nested {
    fn kind(&self) -> BackendKind {
        BackendKind::Nested
    }

    fn preflight(&self, arch: Arch, _boot: Boot) -> Result<(), Error> {
        let binary = qemu::binary(arch);
        if qemu::find_in_path(binary).is_none() {
            return Err(Error::QemuMissing {
                binary: binary.into(),
            });
        }
        for tool in APT_TOOLS {
            if qemu::find_in_path(tool).is_none() {
                return Err(Error::Usage(format!(
                    "--backend nested fetches Debian's L1 kernel with {tool}, which is not on PATH \
                     (a Debian host has it; or pass --l1-kernel)"
                )));
            }
        }
        // The pinned toolchain is the build workspace's; without the source
        // tree here, the runner build itself will say what is missing.
        let workspace = crate::config::default_workspace();
        if workspace.is_dir() && !runner_build::target_installed(&workspace, arch)? {
            return Err(Error::Usage(format!(
                "--backend nested builds convtest for {} as the L1's /init; add the target with \
                 `rustup target add {0}` or run `scripts/install-deps.sh`",
                runner_build::musl_target(arch)
            )));
        }
        Ok(())
    }

    fn run(&self, spec: &BootSpec<'_>, console: &mut ConsoleFn<'_>) -> Result<RunEnd, Error> {
        let quiet = spec.quiet;
        let scratch = crate::cleanup::Scratch::new("convtest-nested-")?;
        let started = Instant::now();
        let l1 = prepare_l1(spec, scratch.path(), quiet)?;
        let runner = runner_build::build(spec.workspace, spec.arch, quiet)?;
        let vmm_args = super::vmm::vmm_args(
            spec.arch,
            Path::new(l1init::PAYLOAD),
            spec.cmdline,
            spec.memory_mib,
            spec.vmm,
        );
        let initrd = scratch.path().join("initramfs.cpio");
        initramfs::write(
            &initrd,
            &initramfs::Contents {
                init: &runner,
                payload: spec.payload,
                modules: &l1.kernel.modules,
                vmm_args: &vmm_args,
                conf: &[("kvm".into(), l1.kvm.into())],
            },
        )?;
        if !quiet {
            eprintln!(
                "convtest: L1 ready in {:.1} s: kernel {}, kvm {}, {}",
                started.elapsed().as_secs_f64(),
                l1.kernel.kernel.display(),
                l1.kvm,
                l1.origin
            );
        }
        let binary = qemu::binary(spec.arch);
        let args = l1_qemu::args(spec.arch, &l1.kernel.kernel, &initrd);
        let command = shell_line(binary.into(), args.clone());
        let mut cmd = Command::new(binary);
        cmd.args(&args);
        let mut watch = watch::L1Watch::default();
        let finished = process::supervise(cmd, &command, spec.timeout, &mut |bytes: &[u8]| {
            watch.feed(bytes);
            console(bytes)
        })?;
        Ok(watch.run_end(finished, spec, command))
    }
}

struct L1 {
    kernel: assets::L1Kernel,
    /// `stock` or `swprot`, printed by /init as `kvm=`.
    kvm: &'static str,
    /// Where the kernel came from, for the log line.
    origin: String,
}

fn prepare_l1(spec: &BootSpec<'_>, work: &Path, quiet: bool) -> Result<L1, Error> {
    let opts = spec.l1;
    if opts.l1_swprot && opts.l1_kernel.is_some() {
        return Err(Error::Usage(
            "--l1-swprot rebuilds kvm.ko for Debian's L1 kernel; it cannot be combined with --l1-kernel".into(),
        ));
    }
    if opts.l1_swprot && spec.arch != Arch::X86_64 {
        return Err(Error::Usage(
            "--l1-swprot is x86_64 only; arm64 protection comes from pKVM".into(),
        ));
    }
    if let Some(kernel) = &opts.l1_kernel {
        return Ok(L1 {
            kernel: assets::user(kernel, opts.l1_modules.as_deref(), work)?,
            kvm: "stock",
            origin: "from --l1-kernel".into(),
        });
    }
    let cache = cache::Cache::locate()?;
    let apt = apt::Apt::new(&cache, quiet);
    let mut kernel = assets::debian(&cache, &apt, spec.arch, quiet)?;
    let kvm = if opts.l1_swprot {
        let ko = swprot::kvm_ko(&cache, &apt, quiet)?;
        let slot = kernel
            .modules
            .iter_mut()
            .find(|m| m.name == "kvm")
            .ok_or_else(|| Error::MissingOutput {
                path: assets::unpacked_dir(&cache, spec.arch).join("modules/kvm.ko"),
            })?;
        slot.path = ko;
        "swprot"
    } else {
        "stock"
    };
    let downloaded = apt.downloaded.borrow();
    let origin = if downloaded.is_empty() {
        format!(
            "Debian {} from the cache {} (no download)",
            assets::debian_release(spec.arch),
            cache.root().display()
        )
    } else {
        format!(
            "Debian {} (downloaded {} into {})",
            assets::debian_release(spec.arch),
            downloaded.join(", "),
            cache.root().display()
        )
    };
    drop(downloaded);
    Ok(L1 {
        kernel,
        kvm,
        origin,
    })
}

/// Whether this host can give the x86 nested lane KVM-enforced private
/// memory (the swprot kvm.ko), for `--backend auto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swprot {
    /// Built before: no cost.
    Cached,
    /// Not built yet, but every build tool is here.
    Buildable,
    /// These packages are missing.
    Missing(Vec<&'static str>),
}

pub fn swprot_readiness() -> Swprot {
    if cache::Cache::locate().is_ok_and(|c| swprot::cached(&c).is_some()) {
        return Swprot::Cached;
    }
    match swprot::missing_tools() {
        m if m.is_empty() => Swprot::Buildable,
        m => Swprot::Missing(m),
    }
}
