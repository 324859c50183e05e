//! The command line as users type it. Resolving defaults and rejecting
//! impossible combinations lives in `config.rs`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use convtest_proto::arch::Arch;
use std::path::PathBuf;

mod parsers;
mod vmm;

use parsers::{arch_parser, parse_u64};

pub use vmm::{
    ContentArg, ResetPolicyArg, VmTypeArg, VmmArgs, VmmFault, VmmMemoryArg, VmmOptions,
    check_vmm_faults,
};

const ABOUT: &str = "Boot the convtest guest kernel and judge its memory-conversion tests";

const LONG_ABOUT: &str = "\
convtest builds the no_std convtest guest for x86_64 or aarch64, boots it under a VMM, streams its \
serial console, parses the KTAP the guest prints and turns it into a verdict, a summary table and \
optional JSON / JUnit / KTAP files.

A run passes only when the guest printed its plan-complete marker, no test failed, the counts in \
the marker match the results printed and every selected test was reported exactly once. A crash, \
a hang (see --timeout) or a missing marker is a failure, never a pass; so is a conversion test \
skipped by a guest that found a converter (unless the plan turned its feature off), and a VMM that \
offered conversions to a guest that found none. Every host check names its evidence: enforced by \
the kernel or hypervisor, or VMM bookkeeping only (shown apart, never as a plain PASS).

Exit status: 0 the plan completed and no test failed; 1 a test failed, the guest crashed or hung; \
2 convtest could not run (bad arguments, missing QEMU or OVMF: the message names the install command).";

const EXAMPLES: &str = "\
Examples:
  convtest run                                  the strongest lane this machine has (--backend auto)
  convtest run --backend qemu                   boot-only lane under QEMU (fastest; conv.* SKIP)
  convtest mutants                              break each nested lane on purpose: which tests notice
  convtest matrix                               the default suite on each Debian L1 kernel
  convtest run --tests 'mem.*,boot.ram_map'     only some tests (names: convtest list)
  convtest run --boot uefi --json out.json      x86 UEFI disk image under OVMF, JSON report
  convtest run --arch aarch64 --machine virt-el2 --junit junit.xml
  convtest run --inject hang --timeout 10       prove a hang ends as a failure
  convtest list                                 every test name with what it checks";

const RUN_AFTER: &str = "\
Lanes (what each one proves):
  x86_64 --boot pvh --machine microvm   PVH entry, long mode, COM1, isa-debug-exit (default, fastest)
  x86_64 --boot pvh --machine pc        the same kernel on a full PC chipset
  x86_64 --boot bios                    bootloader_api entry from a BIOS disk image (first build ~2 min)
  x86_64 --boot uefi                    the same from OVMF
  aarch64 --machine virt                arm64 Image at EL1: DTB parsing, PL011, PSCI over hvc
  aarch64 --machine virt-el2            entry at EL2 (virtualization=on), drop to EL1, PSCI over smc
  --backend vmm                         convtest's own KVM VMM on /dev/kvm: real conversions
                                        (x86 MAP_GPA_RANGE, arm64 pKVM protected VM), host checks
  --backend nested                      the same VMM inside a Debian L1 under QEMU TCG with real
                                        KVM (x86) or pKVM (arm64); first run downloads the kernel
  --backend nested --l1-swprot          x86 with KVM_SW_PROTECTED_VM: guest_memfd private memory
  --backend nested --l1 debian-6.1      another Debian kernel as L1 (debian-7.3|debian-6.12|debian-6.1)
  --backend nested --l1 debian-6.12     the same VMM on another Debian kernel (debian-7.3 default,
                                        debian-6.12, debian-6.1): what KVM offers there
  --arch aarch64 --backend nested --vm-type normal   conv.* SKIP with pKVM's answer

Examples:
  convtest run --tests 'heap.*' --seed 42 --iters 200
  convtest run --arch aarch64 --ktap run.ktap      save the raw KTAP for kunit.py or a bug report
  convtest run --kernel target/guest/x86_64-unknown-none/release/convtest-guest   skip the build
  convtest run --inject fault                      a deliberate crash: exit 1, reason = crash line
  convtest run --backend nested --tests 'conv.*' --json r.json   conversions under real KVM, costs in bench[]
  convtest run --backend nested --content zero     the VMM clears converted pages; the guest must see it
  convtest run --backend nested --l1-swprot --vmm-fault leak   a broken VMM: the run fails naming the tests
  convtest run --arch aarch64 --backend nested --guest-fault skip-unshare   buggy firmware on pKVM";

const MUTANTS_AFTER: &str = "\
Lanes:
  nested-x86-swprot   x86, KVM_SW_PROTECTED_VM (guest_memfd + memory attributes): VMM and guest faults
  nested-x86          x86, stock KVM, emulated-private memory (isolation is VMM bookkeeping)
  nested-arm64-pkvm   arm64 pKVM protected VM: guest faults only (pKVM converts at EL2, no VMM exit)

Mutants: vmm:ignore|deny|partial|leak|wrong-content|garbage (see `convtest run --help`,
--vmm-fault) and guest:skip-share|skip-unshare|skip-reset|forget-tracker (--guest-fault).

Exit status: 0 when on every lane the clean run passed, every conv.* test was turned red by at
least one mutant, every mutant was noticed by at least one test, and the kill table equals the
expected one written in the code; 1 otherwise; 2 bad arguments or a missing tool.

Examples:
  convtest mutants                                         all lanes (~2-4 min each on 2 cores)
  convtest mutants --lanes nested-x86-swprot --json m.json";

const BENCH_AFTER: &str = "\
What it answers: is converting a buffer private->shared in place (what a confidential guest's \
driver would do instead of bouncing through swiotlb) faster than copying it through a pre-shared \
buffer? Per lane it runs `convtest run --backend nested --tests 'bench.*,conv.cost'` once and \
reads the guest's bench lines (p50 over an adaptive number of iterations, --bench-ms per op and size):
  share, unshare          raw conversion of 1, 2, 4 ... 512 granules (4 KiB ... 2 MiB)
  round trip with touch   share + the guest's first touch of every page + unshare: the in-place path
  bounce (warm / cold)    memcpy of the same bytes private -> pre-shared and back: the swiotlb path
  null exit               the cheapest round trip to the conversion handler: the floor
  VMM part (x86)          the own VMM's share of serving each exit (vmm_share, vmm_unshare)
Below each table: the break-even (the smallest size from which the round trip beats the bounce at \
every larger size; or 'never up to 2 MiB'), throughput of both paths in GB/s, and the one-page \
share+unshare next to the no-op exit (conv.cost, same harness). The nested lanes run under TCG: \
absolute times are not hardware times, the ratios within a lane are the point.

Lanes:
  nested-x86-swprot   x86, KVM_SW_PROTECTED_VM (guest_memfd + memory attributes); needs the kvm.ko
                      build tools (first run builds it, ~5 min on 2 cores)
  nested-x86          x86, stock KVM, emulated-private memory
  nested-arm64-pkvm   arm64 pKVM protected VM (MEM_SHARE/MEM_UNSHARE at EL2, one call per granule)

Exit status: 0 when every lane ran, its run passed and it has at least 10 sizes with share, \
unshare, io_round_trip, bounce_warm and bounce_cold, and a null exit (and --svg had something to \
draw); 1 otherwise, naming what is missing (a lane that cannot run here says so); 2 bad arguments \
or a file that cannot be read or written.

Examples:
  convtest bench                                            every lane (1-3 min each on 2 cores, warm cache)
  convtest bench --lanes nested-x86 --svg cost.svg --md cost.md --json cost.json
  convtest bench --bench-ms 20                              a quicker, noisier pass
  convtest bench --lanes nested-x86 --memory 2560           the 1 GiB hint too (x86; pKVM has no hints)
  convtest bench --from cost.json --svg cost.svg            draw a saved report again, no boot
  convtest run --backend nested --tests 'bench.*' --json r.json && convtest bench --from r.json";

#[derive(Debug, Parser)]
#[command(name = "convtest", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the guest, boot it, stream its KTAP and judge the run.
    #[command(after_long_help = RUN_AFTER)]
    Run(RunArgs),
    /// Print every test the guest knows with what it checks.
    List,
    /// Break the platform on purpose and show which tests notice: per lane,
    /// one L1 boot runs the clean guest and every applicable VMM and guest
    /// fault, and prints the kill table next to the expected one.
    #[command(after_long_help = MUTANTS_AFTER)]
    Mutants(MutantsArgs),
    /// Measure conversion against bounce buffering on each nested lane:
    /// latency per range size next to memcpy of the same bytes and the null
    /// exit, the break-even size, throughput; tables, SVG plot, Markdown, JSON.
    #[command(after_long_help = BENCH_AFTER)]
    Bench(BenchArgs),
    /// Run the default suite on each L1 kernel of the nested lane and print
    /// one table: kernel × capabilities, memory mode, conv results,
    /// evidence, conversion cost.
    Matrix(MatrixArgs),
    /// Internal: convtest's own KVM VMM, one guest, console on stdout. The
    /// `vmm` and `nested` backends start this; run it by hand to debug a VMM
    /// on a KVM host.
    #[command(hide = true)]
    Vmm(VmmArgs),
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
}

impl GuestFaultArg {
    pub fn fault(self) -> convtest_proto::plan::GuestFault {
        use convtest_proto::plan::GuestFault;
        match self {
            GuestFaultArg::SkipShare => GuestFault::SkipShare,
            GuestFaultArg::SkipUnshare => GuestFault::SkipUnshare,
            GuestFaultArg::SkipReset => GuestFault::SkipReset,
            GuestFaultArg::ForgetTracker => GuestFault::ForgetTracker,
        }
    }
}

#[derive(Debug, Args)]
pub struct MutantsArgs {
    /// Lanes to break (comma-separated) [default: every lane].
    #[arg(long, value_name = "LANE,...", value_delimiter = ',')]
    pub lanes: Vec<String>,

    /// Write the whole kill table (every run, every test) here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Repetitions for conv.flipflop and conv.cost in each run.
    #[arg(long, default_value_t = 100)]
    pub iters: u32,

    /// Operations of stress.storm in each conv run (its checkpoints come
    /// every 1000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub storm_ops: u64,

    /// Seed for every run [default: the guest's, 0x5eed].
    #[arg(long, value_parser = parse_u64)]
    pub seed: Option<u64>,

    /// Seconds one run (one guest inside the L1) may take before the L1's
    /// /init kills it; the lane's whole budget is the L1 boot plus every
    /// run's limit.
    #[arg(long, value_name = "SECS", default_value_t = 240, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// The convtest workspace to build the guest from [default: the one
    /// this runner was built in].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Print only the tables and the verdict line.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// L1 kernels (`--l1` names, comma-separated) [default: every kernel
    /// the nested backend knows for the arch].
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub kernels: Vec<String>,

    /// Guest architecture [default: x86_64].
    #[arg(long, value_parser = arch_parser())]
    pub arch: Option<Arch>,

    /// Write the table (one object per kernel) here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Seconds each kernel's run may take.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Print only the table and the verdict line.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Lanes to measure (comma-separated) [default: every lane:
    /// nested-x86-swprot, nested-x86, nested-arm64-pkvm].
    #[arg(long, value_name = "LANE,...", value_delimiter = ',')]
    pub lanes: Vec<String>,

    /// Write every lane's bench lines, break-even, throughput and verdict here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Draw latency against range size (log-log, every lane and op) here.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,

    /// Write the tables and break-even lines as Markdown here.
    #[arg(long, value_name = "PATH")]
    pub md: Option<PathBuf>,

    /// Wall budget in ms for each op and size (the plan's bench_ms=)
    /// [default: the guest's, 100].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..))]
    pub bench_ms: Option<u32>,

    /// Seconds each lane's run may take.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Guest RAM in MiB for each run. 2560 or more gives x86 a 1 GiB-aligned
    /// free GiB, so the 1 GiB hint (share_1g) is measured too; the L1 grows
    /// to the guest's RAM + 1.5 GiB.
    #[arg(long, value_name = "MiB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=65536))]
    pub memory: u32,

    /// Show a report saved before (this command's --json, or a `convtest
    /// run --json` report) instead of running anything.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,

    /// Print only the tables and the verdict line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The L1 (nested) host: kernel, modules and KVM flavour.
#[derive(Clone, Debug, Default, Args)]
pub struct L1Options {
    /// Debian kernel the nested L1 boots (x86_64 or aarch64), downloaded
    /// once into the cache [default: debian-7.3].
    #[arg(
        long = "l1",
        value_enum,
        value_name = "NAME",
        conflicts_with = "l1_kernel"
    )]
    pub l1_name: Option<L1Name>,

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
        self.l1_name.unwrap_or_default()
    }
}

/// A Debian kernel the nested L1 can boot (`--l1`); what each one is
/// (suite, packages, release) is `backend::nested::KNOWN_L1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ValueEnum)]
pub enum L1Name {
    /// 7.3.4+deb13 (trixie-backports; amd64 ~121 MB): guest_memfd; arm64
    /// protected VMs; the only one with --l1-swprot.
    #[default]
    #[value(name = "debian-7.3")]
    Debian73,
    /// 6.12.117+deb12 (bookworm-security; amd64 ~107 MB): no guest_memfd on a
    /// default VM; arm64 runs pKVM but has no protected VM type.
    #[value(name = "debian-6.12")]
    Debian612,
    /// 6.1.0-57, Debian 12's own (bookworm-security; amd64 ~71 MB): no guest_memfd
    /// and no KVM_SET_USER_MEMORY_REGION2.
    #[value(name = "debian-6.1")]
    Debian61,
}

impl L1Name {
    pub const ALL: [L1Name; 3] = [L1Name::Debian73, L1Name::Debian612, L1Name::Debian61];

    pub fn as_str(self) -> &'static str {
        match self {
            L1Name::Debian73 => "debian-7.3",
            L1Name::Debian612 => "debian-6.12",
            L1Name::Debian61 => "debian-6.1",
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest architecture [default: this machine's].
    #[arg(long, value_parser = arch_parser())]
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

    /// CPUs the guest gets (QEMU `-smp N`); the guest brings up every one and
    /// `smp.online` fails if one does not check in. The own VMMs (--backend
    /// vmm, nested) run one thread per vCPU; nested gives the L1 as many.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub vcpus: u32,

    /// Make the guest crash or hang on purpose, to check the verdict path.
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

    /// Save the guest's KTAP output here.
    #[arg(long, value_name = "PATH")]
    pub ktap: Option<PathBuf>,

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

    #[command(flatten)]
    pub vmm: VmmOptions,

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

/// A backend that runs guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// QEMU (system emulation; TCG or KVM). No conversion ABI: conv.* SKIP.
    Qemu,
    /// convtest's own KVM VMM on this host's /dev/kvm: serves MAP_GPA_RANGE
    /// (x86) or runs a pKVM protected VM (arm64), answers host checks.
    Vmm,
    /// QEMU TCG running a Linux L1 (Debian kernel, real KVM / pKVM) that
    /// runs convtest's VMM: for hosts without usable KVM.
    Nested,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Qemu => "qemu",
            BackendKind::Vmm => "vmm",
            BackendKind::Nested => "nested",
        }
    }

    /// Backends whose VMM is convtest's own, which answers host checks.
    pub fn has_own_vmm(self) -> bool {
        matches!(self, BackendKind::Vmm | BackendKind::Nested)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Boot {
    Pvh,
    Bios,
    Uefi,
    Image,
}

impl Boot {
    pub fn as_str(self) -> &'static str {
        match self {
            Boot::Pvh => "pvh",
            Boot::Bios => "bios",
            Boot::Uefi => "uefi",
            Boot::Image => "image",
        }
    }

    /// Boots that go through a bootloader disk image.
    pub fn is_disk_image(self) -> bool {
        matches!(self, Boot::Bios | Boot::Uefi)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Machine {
    Microvm,
    Pc,
    Virt,
    #[value(name = "virt-el2")]
    VirtEl2,
}

impl Machine {
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Pc => "pc",
            Machine::Virt => "virt",
            Machine::VirtEl2 => "virt-el2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InjectArg {
    Fault,
    Hang,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn vmm_option_defaults_match_clap() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            vmm: VmmOptions,
        }
        let parsed = Wrap::parse_from(["convtest"]).vmm;
        let d = VmmOptions::default();
        assert_eq!(
            (
                parsed.content,
                parsed.vmm_memory,
                parsed.vm_type,
                parsed.vcpu_watchdog,
                parsed.vmm_fault
            ),
            (
                d.content,
                d.vmm_memory,
                d.vm_type,
                d.vcpu_watchdog,
                d.vmm_fault
            )
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_full_run_line() {
        let cli = Cli::try_parse_from([
            "convtest",
            "run",
            "--arch",
            "x86_64",
            "--boot",
            "uefi",
            "--machine",
            "pc",
            "--tests",
            "mem.*,boot.*",
            "--seed",
            "0x2a",
            "--iters",
            "5",
            "--inject",
            "hang",
            "--timeout",
            "15",
            "--accel",
            "tcg",
        ])
        .expect("parses");
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            (r.arch, r.boot, r.machine),
            (Some(Arch::X86_64), Some(Boot::Uefi), Some(Machine::Pc))
        );
        assert_eq!(
            (r.seed, r.iters, r.inject, r.timeout),
            (Some(42), Some(5), Some(InjectArg::Hang), 15)
        );
        assert_eq!(
            (r.accel, r.memory, r.tests.as_str()),
            (AccelArg::Tcg, 256, "mem.*,boot.*")
        );
    }

    #[test]
    fn vmm_faults_parse_as_a_list_and_contradictions_are_refused() {
        let cli = Cli::try_parse_from([
            "convtest",
            "run",
            "--vmm-fault",
            "leak,wrong-content",
            "--guest-fault",
            "skip-reset",
        ])
        .expect("parses");
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(r.vmm.vmm_fault, [VmmFault::Leak, VmmFault::WrongContent]);
        assert_eq!(r.guest_fault, Some(GuestFaultArg::SkipReset));
        assert!(check_vmm_faults(&r.vmm.vmm_fault).is_ok());
        let e = check_vmm_faults(&[VmmFault::Ignore, VmmFault::Deny]).unwrap_err();
        assert!(e.contains("ignore,deny"), "{e}");
        for f in VmmFault::ALL {
            assert_eq!(
                VmmFault::from_str(f.as_str(), false),
                Ok(f),
                "CLI name of {f:?}"
            );
        }
    }

    #[test]
    fn l1_names_parse_and_conflict_with_an_own_kernel() {
        let run = |extra: &[&str]| {
            let mut argv = vec!["convtest", "run", "--backend", "nested"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Run(r) => r.l1,
                _ => panic!("not run"),
            })
        };
        assert_eq!(run(&[]).expect("default").debian(), L1Name::Debian73);
        for name in L1Name::ALL {
            let l1 = run(&["--l1", name.as_str()]).expect("known name");
            assert_eq!((l1.l1_name, l1.debian()), (Some(name), name));
        }
        assert!(run(&["--l1", "debian-5.10"]).is_err());
        let e = run(&["--l1", "debian-6.1", "--l1-kernel", "/boot/vmlinuz"]).expect_err("both");
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        // --l1-swprot with --l1 parses; which kernels have the recipe is
        // the nested backend's usage error.
        assert!(run(&["--l1", "debian-6.12", "--l1-swprot"]).is_ok());
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["convtest", "run", "--arch", "riscv64"][..],
            &["convtest", "run", "--seed", "banana"],
            &["convtest", "run", "--timeout", "0"],
            &["convtest", "run", "--machine", "q35"],
            &["convtest", "frobnicate"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_teaches_lanes_and_exit_codes() {
        let mut cmd = Cli::command();
        let top = cmd.render_long_help().to_string();
        assert!(top.contains("Exit status") && top.contains("convtest list"));
        let run = cmd
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        assert!(run.contains("virt-el2") && run.contains("OVMF") && run.contains("--inject"));
        let bench = cmd
            .find_subcommand_mut("bench")
            .expect("bench")
            .render_long_help()
            .to_string();
        assert!(
            bench.contains("break-even")
                && bench.contains("nested-arm64-pkvm")
                && bench.contains("Exit status")
                && bench.contains("--bench-ms"),
            "{bench}"
        );
    }
}
