//! One L1 boot for a list of inner runs, shared by `Nested::run` (one run)
//! and `run_many`: the L1's kernel and modules, its /init built static,
//! the initramfs with the guest and the run list, and the outer QEMU
//! supervised with every console chunk handed to the caller.
//!
//! Everything before QEMU starts is outside the timeout.

use super::inner_run::InnerRun;
use super::l1_choice::{self, L1Choice};
use super::{apt, cache, initramfs, l1_build, l1_qemu, swprot};
use crate::backend::spec::BootSpec;
use crate::backend::{process, qemu};
use crate::error::{Error, shell_line};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Booted {
    pub finished: process::Finished,
    /// The outer QEMU command line.
    pub command: String,
    /// When QEMU was started, and how long until it was reaped.
    pub spawned: Instant,
    pub wall: Duration,
}

/// Boots the L1 for `runs` (already checked) and returns when it ends or
/// `timeout` kills it. `chunk` gets the console as it arrives; what it
/// returns is typed into the L1 console.
pub fn boot(
    spec: &BootSpec<'_>,
    runs: &[InnerRun],
    timeout: Duration,
    chunk: &mut dyn FnMut(&[u8]) -> Vec<u8>,
) -> Result<Booted, Error> {
    let quiet = spec.quiet;
    let scratch = crate::cleanup::Scratch::new("convtest-nested-")?;
    let started = Instant::now();
    let l1 = prepare_l1(spec, scratch.path(), quiet)?;
    let init = l1_build::build(spec.workspace, spec.arch, quiet)?;
    let initrd = scratch.path().join("initramfs.cpio");
    initramfs::write(
        &initrd,
        &initramfs::Contents {
            init: &init,
            payload: spec.payload,
            modules: &l1.kernel.modules,
            runs,
            conf: &[("kvm".to_string(), l1.kvm.to_string())]
                .into_iter()
                .chain(l1.build.iter().cloned())
                .collect::<Vec<_>>(),
            kit: spec.kit,
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
    let args = l1_qemu::args(
        spec.arch,
        &l1.kernel.kernel,
        &initrd,
        spec.memory_mib,
        spec.vcpus,
    );
    let command = shell_line(binary.into(), args.clone());
    let mut cmd = Command::new(binary);
    cmd.args(&args);
    let spawned = Instant::now();
    let finished = process::supervise(cmd, &command, timeout, chunk)?;
    Ok(Booted {
        finished,
        command,
        spawned,
        wall: spawned.elapsed(),
    })
}

struct L1 {
    kernel: super::assets::L1Kernel,
    /// `stock` or `swprot`, printed by /init as `kvm=`.
    kvm: &'static str,
    /// Where the kernel came from, for the log line.
    origin: String,
    /// Which build of a Debian kernel, as facts /init prints (JSON `l1{}`).
    build: Vec<(String, String)>,
}

fn prepare_l1(spec: &BootSpec<'_>, work: &Path, quiet: bool) -> Result<L1, Error> {
    let known = match l1_choice::choose(spec.arch, spec.l1)? {
        L1Choice::User { kernel, modules } => {
            let kernel = super::assets::user(kernel, modules, spec.arch, work)?;
            let origin = match &kernel.release {
                Some(r) => format!("from --l1-kernel ({r})"),
                None => "from --l1-kernel".into(),
            };
            return Ok(L1 {
                kernel,
                kvm: "stock",
                origin,
                build: Vec::new(),
            });
        }
        L1Choice::Debian { known, swprot, pin } => (known, swprot, pin),
    };
    let (known, swprot, pin) = known;
    let cache = cache::Cache::locate()?;
    let apt = apt::Apt::new(&cache, quiet);
    let chosen = super::assets::choose_build(&cache, &apt, known, spec.arch, swprot, pin, true)?;
    let abi = chosen.abi.as_str();
    let mut kernel = super::assets::debian(&cache, &apt, known, abi, spec.arch, quiet)?;
    let kvm = if swprot {
        let ko = swprot::kvm_ko(&cache, &apt, abi, chosen.source_version.as_deref(), quiet)?;
        let slot = kernel
            .modules
            .iter_mut()
            .find(|m| m.name == "kvm")
            .ok_or_else(|| Error::MissingOutput {
                path: super::assets::unpacked_dir(&cache, known, abi, spec.arch)
                    .join("modules/kvm.ko"),
            })?;
        slot.path = ko;
        "swprot"
    } else {
        "stock"
    };
    let release = known.release_of(abi, spec.arch);
    let downloaded = apt.downloaded.borrow();
    let how = match chosen.how {
        super::series::How::Pinned => "the pinned build".to_string(),
        super::series::How::Explicit => "the build --l1 pins".to_string(),
        super::series::How::NewestOfSeries { pinned } => {
            format!("NOT the pinned {pinned}: the newest build of the series")
        }
    };
    let origin = if downloaded.is_empty() {
        format!(
            "Debian {release} (--l1 {}, {how}) from the cache {} (no download)",
            known.name.as_str(),
            cache.root().display()
        )
    } else {
        format!(
            "Debian {release} (--l1 {}, {how}; downloaded {} into {})",
            known.name.as_str(),
            downloaded.join(", "),
            cache.root().display()
        )
    };
    drop(downloaded);
    Ok(L1 {
        kernel,
        kvm,
        origin,
        build: super::series::facts(&chosen, known),
    })
}
