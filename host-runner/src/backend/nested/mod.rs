//! `--backend nested`: QEMU TCG runs a Linux L1 with real KVM (x86: emulated
//! AMD SVM; arm64: pKVM at EL2), whose /init is the static `convtest-l1` (the l1 crate)
//! running its own VMM on the guest, once per inner run.
//!
//! Before QEMU starts (not under `--timeout`): which L1 kernel (l1_choice.rs:
//! one of Debian's of the table in kernels.rs, or `--l1-kernel`, its header
//! checked in kernel_image.rs), which build of it (series.rs: the pin, a
//! `--l1 <name>=<abi>`, or the newest of the series when the pin is gone),
//! its kernel and modules (cached; assets.rs),
//! the swprot kvm.ko if asked (swprot.rs),
//! the L1's /init built static (l1_build.rs), and the initramfs
//! holding all of it plus the guest and the run list (inner_run.rs,
//! initramfs.rs; boot.rs does all of it). `convtest run` is one inner run
//! whose console goes to the caller unchanged and whose exit status is the
//! inner VMM's (watch.rs); `run_many` (batch.rs) gets several runs out of
//! one L1 boot.

pub(in crate::backend) mod apt;
mod assets;
mod batch;
mod boot;
pub(in crate::backend) mod cache;
mod collect;
mod initramfs;
mod inner_run;
mod kernel_image;
pub mod kernels;
mod l1_build;
mod l1_choice;
mod l1_qemu;
mod modules;
mod pvh_kernel;
mod series;
mod split;
pub mod swprot;
mod watch;

pub use batch::{BatchOutput, L1Ended, RunOutput, run_many};
pub use inner_run::{InnerRun, RUN_SLACK, limit_secs, outer_timeout};
pub use split::Part;

/// The Debian kernels `--l1` names, for code that iterates them (a
/// `convtest matrix`): name, arches, `release(arch)` = the L1's `uname -r`.
pub use kernels::{ArchBuild, KNOWN_L1, KnownL1, L1Name, Layout, Suite, known};

/// Checks `--l1`, `--l1-kernel` (its header) and `--l1-swprot` against the
/// arch without fetching or building anything: callers that build the
/// guest first call it before (a nested boot checks again).
pub use l1_choice::check as check_l1_options;

/// The Debian kernel `name` for `arch` as the nested lane keeps it (the
/// cache; downloaded once; the build a nested run would boot, announced if
/// the pinned one left the archive): `convtest lava-job` deploys the same
/// pKVM kernel to a LAVA board.
pub fn debian_kernel(name: L1Name, arch: Arch, quiet: bool) -> Result<std::path::PathBuf, Error> {
    let cache = cache::Cache::locate()?;
    let apt = apt::Apt::new(&cache, quiet);
    let known = known(name);
    let chosen = assets::choose_build(&cache, &apt, known, arch, false, None, true)?;
    assets::debian(&cache, &apt, known, &chosen.abi, arch, quiet).map(|k| k.kernel)
}
/// `<arch>-unknown-linux-musl`: what the L1's /init and a board kit are built for.
pub use l1_build::{musl_target, target_dir as l1_target_dir};
/// Which build of a Debian L1 a run would boot, found before the guest is
/// built (l1_choice.rs).
pub use l1_choice::check_build as check_l1_build;

use crate::backend::interface::{Backend, ConsoleFn};
use crate::backend::kind::BackendKind;
use crate::backend::qemu;
use crate::backend::run_end::RunEnd;
use crate::backend::spec::BootSpec;
use crate::error::Error;
use crate::machine::Boot;
use convtest_proto::arch::Arch;
use convtest_proto::l1;
use std::path::Path;

pub struct Nested;

/// The label of `convtest run`'s one inner run.
pub const SINGLE_RUN_LABEL: &str = "run";

/// Tools the Debian assets need (every Debian host has them).
const APT_TOOLS: [&str; 2] = ["apt-get", "dpkg-deb"];

impl Backend for Nested {
    fn kind(&self) -> BackendKind {
        BackendKind::Nested
    }

    fn preflight(&self, arch: Arch, _boot: Boot) -> Result<(), Error> {
        crate::kit::refuse_build(format!(
            "--backend nested builds the L1's /init for {} with cargo and downloads Debian's L1 kernel",
            l1_build::musl_target(arch)
        ))?;
        let binary = qemu::binary(arch);
        if qemu::find_in_path(binary).is_none() {
            return Err(Error::QemuMissing {
                binary: binary.into(),
            });
        }
        for tool in APT_TOOLS {
            if qemu::find_in_path(tool).is_none() {
                return Err(Error::MissingTool {
                    tool: tool.into(),
                    problem: format!(
                        "--backend nested fetches Debian's L1 kernel with {tool}, which is not on PATH"
                    ),
                    install: "(a Debian host has it; or pass --l1-kernel)".into(),
                });
            }
        }
        // The pinned toolchain is the build workspace's; without the source
        // tree here, the runner build itself will say what is missing.
        let workspace = crate::config::default_workspace();
        if workspace.is_dir() && !l1_build::target_installed(&workspace, arch)? {
            let target = l1_build::musl_target(arch);
            return Err(Error::MissingTool {
                tool: target.into(),
                problem: format!(
                    "--backend nested builds convtest-l1 for {target} as the L1's /init;"
                ),
                install: format!(
                    "add the target with `rustup target add {target}` or run `scripts/install-deps.sh`"
                ),
            });
        }
        Ok(())
    }

    /// One inner run whose limit is the run's timeout, under the same
    /// timeout for the whole L1 (as before inner runs had limits): the outer
    /// timeout strikes first, so `--timeout` ends a run as it always has.
    fn run(&self, spec: &BootSpec<'_>, console: &mut ConsoleFn<'_>) -> Result<RunEnd, Error> {
        let run = InnerRun {
            label: SINGLE_RUN_LABEL.into(),
            vmm_args: crate::backend::vmm::vmm_args(
                spec.arch,
                Path::new(l1::PAYLOAD),
                spec.cmdline,
                spec.memory_mib,
                spec.vcpus,
                spec.vmm,
            ),
            limit: spec.timeout,
        };
        batch::run_one(spec, run, spec.timeout, console)
    }
}
