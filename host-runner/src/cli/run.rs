//! `convtest run`'s arguments.

use super::parsers::{keyword, parse_u64};
use super::vmm::VmmFlags;
use crate::backend::kind::BackendKind;
use crate::backend::nested::kernels::L1Name;
use crate::backend::tee::Tee;
use crate::machine::{Boot, Machine};
use clap::{Args, ValueEnum};
use convtest_proto::arch::Arch;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest architecture [default: this machine's].
    #[arg(long, value_parser = keyword::<Arch>())]
    pub arch: Option<Arch>,

    /// Who runs the guest. auto: convtest's own VMM on this host's KVM when
    /// it is hardware KVM; otherwise nested (real KVM/pKVM inside a Debian L1
    /// under QEMU TCG, with the strongest memory mode this machine can
    /// build); qemu when a QEMU-only option (--accel, --machine, --boot
    /// bios|uefi) is given. The choice and the reason are printed.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,

    /// Accelerator. auto = KVM only when /dev/kvm is backed by hardware
    /// virtualization (x86: vmx/svm in /proc/cpuinfo) and the guest arch is
    /// the host's; TCG otherwise. The choice is printed.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,

    /// How the guest is loaded. x86_64: pvh (direct kernel boot), bios or
    /// uefi (bootloader disk image). aarch64: image (arm64 Image).
    /// [default: pvh on x86_64, image on aarch64]
    #[arg(long, value_enum)]
    pub boot: Option<Boot>,

    /// Machine model. [default: microvm for pvh, pc for bios/uefi, virt on
    /// aarch64; virt-el2 = virt with virtualization=on, entered at EL2]
    #[arg(long, value_enum)]
    pub machine: Option<Machine>,

    /// Comma-separated globs over test names (see `convtest list`).
    #[arg(long, value_name = "GLOB,...", default_value = "*")]
    pub tests: String,

    /// Seed for every randomised test (decimal or 0x-hex) [default: the guest's, 0x5eed].
    #[arg(long, value_parser = parse_u64)]
    pub seed: Option<u64>,

    /// Repetitions for stress-style tests [default: the guest's, 1000].
    #[arg(long)]
    pub iters: Option<u32>,

    /// Wall budget per op and size in the bench suite (`--tests 'bench.*'`),
    /// in ms; an op stops earlier once its p50 is stable [default: the
    /// guest's, 100].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..))]
    pub bench_ms: Option<u32>,

    /// Re-run a seeded storm (`stress.storm`) only up to operation I: the
    /// index a failing storm printed, with the same --seed, to replay the
    /// exact operation sequence that led to the failure (the sequence
    /// depends on the seed alone; --iters sets only how long it runs).
    #[arg(long, value_name = "I", value_parser = parse_u64)]
    pub replay: Option<u64>,

    /// Operations of hostile traffic `hostile.vmm` aims at the VMM (with
    /// --tests 'hostile.vmm,conv.*': the attack, then the conversion suite
    /// the VMM must still serve) [default: iters × 10].
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    pub hostile_ops: Option<u64>,

    /// CPUs the guest gets (QEMU `-smp N`); the guest brings up every one and
    /// `smp.online` fails if one does not check in. The own VMMs (--backend
    /// vmm, nested) run one thread per vCPU; nested gives the L1 as many.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub vcpus: u32,

    /// Make the guest crash, hang or print the host side's lines on
    /// purpose, to check the verdict path.
    #[arg(long, value_enum)]
    pub inject: Option<InjectArg>,

    /// Give the guest's own conversion path a deliberate bug (carried in the
    /// plan as gfault=), to see which tests notice; works on every lane.
    #[arg(long, value_enum, value_name = "KIND")]
    pub guest_fault: Option<GuestFaultArg>,

    /// Seconds before a silent or looping guest is killed and the run fails;
    /// with --reboots, per boot (the run may take timeout × (reboots + 1)).
    /// A selected stress.storm adds 1 s per 250 of its operations.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Guest resets to run: N + 1 boots in one run. Each boot but the last
    /// leaves dirty state (seeded shared ranges, canaries in shared and
    /// private pages) and resets without cleaning up; each later boot runs
    /// reset-to-private first and the reset.* tests prove through the
    /// platform that the previous boot's shared memory is private again.
    /// See --reset-policy for what the VMM does at each reset.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub reboots: u32,

    /// Guest RAM in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=65536))]
    pub memory: u32,

    /// Write the JSON report here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write a JUnit XML report here (test names `<suite>.<case>`).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,

    /// Save the guest's KTAP output here: one KTAP document (a reboot
    /// series nests each boot as a subtest `bootN`), as kunit.py reads it.
    #[arg(long, value_name = "PATH")]
    pub ktap: Option<PathBuf>,

    #[command(flatten)]
    pub kcidb: super::kcidb::KcidbFlags,

    /// Use this prebuilt guest instead of building one: the ELF (x86_64:
    /// built with `--features bootloader` for bios/uefi) or, on aarch64, the
    /// ELF or the raw arm64 Image.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// The convtest workspace to build the guest from [default: the one
    /// this runner was built in].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Print only the verdict line (and errors).
    #[arg(long, short)]
    pub quiet: bool,

    /// Boot the guest as an Intel TDX trust domain or an AMD SEV-SNP guest:
    /// QEMU on hardware KVM with the UEFI image and Debian's TDVF /
    /// OVMF-AmdSev (fetched once into the cache). Checks first that the host
    /// has hardware KVM, a KVM offering the TDX / SNP VM type and a QEMU with
    /// the object (TDX: QEMU >= 10.1), and exits 2 naming what is missing.
    /// Never run on TDX or SNP hardware by this project (docs/tee.md).
    #[arg(long, value_enum, value_name = "KIND")]
    pub tee: Option<Tee>,

    /// With --tee: boot this TDVF / OVMF image (loaded with -bios) instead of
    /// Debian's; it must run an unsigned UEFI image.
    #[arg(long, value_name = "PATH", requires = "tee")]
    pub firmware: Option<PathBuf>,

    #[command(flatten)]
    pub vmm: VmmFlags,

    #[command(flatten)]
    pub l1: L1Options,
}

/// `--backend` as typed: a backend, or auto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The strongest backend this host can run (see --backend).
    Auto,
    /// QEMU (system emulation; TCG or KVM). No conversion ABI: conv.* SKIP.
    Qemu,
    /// convtest's own KVM VMM on this host's /dev/kvm.
    Vmm,
    /// QEMU TCG running a Linux L1 with real KVM / pKVM that runs convtest's VMM.
    Nested,
}

impl BackendArg {
    /// The backend named, `None` for auto.
    pub fn kind(self) -> Option<BackendKind> {
        match self {
            BackendArg::Auto => None,
            BackendArg::Qemu => Some(BackendKind::Qemu),
            BackendArg::Vmm => Some(BackendKind::Vmm),
            BackendArg::Nested => Some(BackendKind::Nested),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InjectArg {
    /// Touch an unmapped address mid-run.
    Fault,
    /// Spin forever mid-run.
    Hang,
    /// Print a VMM fact, an L1 run end and a host-check answer as the guest.
    Forge,
}

/// A deliberate firmware bug in the guest (`--guest-fault`, carried in the plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GuestFaultArg {
    /// Share calls report success without being made.
    SkipShare,
    /// Unshare calls report success without being made.
    SkipUnshare,
    /// Reset-to-private records success without converting anything.
    SkipReset,
    /// Conversions are made but the guest's page tracker is not told.
    ForgetTracker,
    /// Host checks are never sent: the guest prints the host's answer
    /// itself (the relay marks the line forged and the run fails naming it).
    ForgeHost,
    /// A share of several granules leaves the first out (tracked as shared).
    PartialShareFirst,
    /// A share of 3+ granules leaves the one at half the length out.
    PartialShareMiddle,
    /// A share of several granules leaves the last out.
    PartialShareLast,
    /// An unshare of several granules leaves the first out (tracked as private).
    PartialUnshareFirst,
    /// An unshare of 3+ granules leaves the one at half the length out.
    PartialUnshareMiddle,
    /// An unshare of several granules leaves the last out.
    PartialUnshareLast,
}

impl GuestFaultArg {
    pub fn fault(self) -> convtest_proto::plan::GuestFault {
        use convtest_proto::plan::{GuestFault, Omitted};
        use convtest_proto::tracker::Target::{Private, Shared};
        match self {
            GuestFaultArg::SkipShare => GuestFault::SkipShare,
            GuestFaultArg::SkipUnshare => GuestFault::SkipUnshare,
            GuestFaultArg::SkipReset => GuestFault::SkipReset,
            GuestFaultArg::ForgetTracker => GuestFault::ForgetTracker,
            GuestFaultArg::ForgeHost => GuestFault::ForgeHost,
            GuestFaultArg::PartialShareFirst => GuestFault::Partial(Shared, Omitted::First),
            GuestFaultArg::PartialShareMiddle => GuestFault::Partial(Shared, Omitted::Middle),
            GuestFaultArg::PartialShareLast => GuestFault::Partial(Shared, Omitted::Last),
            GuestFaultArg::PartialUnshareFirst => GuestFault::Partial(Private, Omitted::First),
            GuestFaultArg::PartialUnshareMiddle => GuestFault::Partial(Private, Omitted::Middle),
            GuestFaultArg::PartialUnshareLast => GuestFault::Partial(Private, Omitted::Last),
        }
    }
}

/// The L1 (nested) host: kernel, modules and KVM flavour.
#[derive(Clone, Debug, Default, Args)]
pub struct L1Options {
    /// Debian kernel the nested L1 boots (x86_64 or aarch64), downloaded
    /// once into the cache: debian-7.3 (default), debian-6.12 or debian-6.1.
    /// Each is pinned to one build; when neither the cache nor Debian's
    /// archive has it any more, the newest build of the same series is
    /// booted instead and the run says so. NAME=ABI boots that build
    /// (e.g. debian-7.3=7.3.4+deb13), never another.
    #[arg(
        long = "l1",
        value_name = "NAME[=ABI]",
        value_parser = parse_l1,
        conflicts_with = "l1_kernel"
    )]
    pub l1_name: Option<L1Pick>,

    /// Your own L1 kernel for --backend nested instead of a Debian one
    /// (x86_64: a bzImage; aarch64: an Image, a gzip'd Image or an EFI zboot
    /// image), checked before anything is built.
    #[arg(long, value_name = "PATH")]
    pub l1_kernel: Option<PathBuf>,

    /// Directory holding kvm modules (*.ko or *.ko.xz) for the L1 kernel
    /// given with --l1-kernel [default: from the same Debian packages].
    #[arg(long, value_name = "DIR", requires = "l1_kernel")]
    pub l1_modules: Option<PathBuf>,

    /// x86_64, --l1 debian-7.3 only: load a kvm.ko rebuilt from Debian's
    /// linux-source-7.3 with KVM_SW_PROTECTED_VM=y (built once, ~5 min on 2
    /// cores, then cached), so the VMM runs the guest in real private memory.
    #[arg(long)]
    pub l1_swprot: bool,
}

impl L1Options {
    /// The Debian kernel asked for, or the default one.
    pub fn debian(&self) -> L1Name {
        self.l1_name.as_ref().map(|p| p.name).unwrap_or_default()
    }

    /// The build `--l1 NAME=ABI` pins, if one.
    pub fn pin(&self) -> Option<&str> {
        self.l1_name.as_ref().and_then(|p| p.abi.as_deref())
    }
}

/// `--l1 NAME[=ABI]`: a kernel of the table, and the build of its series to
/// boot when the user pins one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L1Pick {
    pub name: L1Name,
    pub abi: Option<String>,
}

fn parse_l1(s: &str) -> Result<L1Pick, String> {
    let (name, abi) = match s.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let names: Vec<&str> = L1Name::ALL.iter().map(|n| n.as_str()).collect();
    let name = <L1Name as ValueEnum>::from_str(name, false)
        .map_err(|_| format!("{name:?} is not one of {}", names.join(", ")))?;
    let known = crate::backend::nested::kernels::known(name);
    if let Some(a) = abi
        && known.series.number(a).is_none()
    {
        return Err(format!(
            "{a:?} is not a build of the series {} of {} (e.g. {})",
            known.series.pattern(),
            name.as_str(),
            known.abi
        ));
    }
    Ok(L1Pick {
        name,
        abi: abi.map(str::to_string),
    })
}
