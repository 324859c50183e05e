//! Turns `convtest run` arguments into one checked run configuration:
//! defaults that depend on other options, combinations that cannot work,
//! and the plan string the guest receives.

use super::auto_backend::choose_backend;
use super::lane::Lane;
use crate::accel::{self, Host};
use crate::backend::kind::BackendKind;
use crate::backend::nested::swprot;
use crate::backend::tee::Tee;
use crate::cli::{InjectArg, L1Options, RunArgs};
use crate::error::Error;
use crate::machine::{Boot, Machine};
use convtest_proto::arch::Arch;
use convtest_proto::catalog;
use convtest_proto::plan::{DEFAULT_ITERS, DEFAULT_SEED, Inject, Plan};
use convtest_vmm::VmmOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub arch: Arch,
    /// `--backend auto` resolved against the host.
    pub backend: BackendKind,
    /// Why this backend (and memory mode), and what would give stronger
    /// evidence; printed before the run.
    pub backend_why: String,
    pub accel: accel::Choice,
    pub boot: Boot,
    pub machine: Machine,
    /// The plan as the guest's command line carries it.
    pub plan: String,
    pub planned_reboots: u32,
    /// CPUs the guest is started with (`--vcpus`).
    pub vcpus: u32,
    pub timeout: Duration,
    pub memory_mib: u32,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub ktap: Option<PathBuf>,
    /// `--kcidb PATH` and its origin.
    pub kcidb: crate::cli::KcidbFlags,
    pub kernel: Option<PathBuf>,
    pub workspace: PathBuf,
    pub quiet: bool,
    pub vmm: VmmOptions,
    pub l1: L1Options,
    /// `--tee`: the guest runs as a TDX or SEV-SNP guest (backend qemu).
    pub tee: Option<Tee>,
    /// `--firmware`: the user's TDVF / OVMF for `--tee`.
    pub tee_firmware: Option<PathBuf>,
}

/// The workspace this runner was built in (the crate's parent directory).
pub fn default_workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

pub fn resolve(args: &RunArgs, host: &Host) -> Result<RunConfig, Error> {
    let lane = match args.tee {
        Some(tee) => {
            let lane = super::tee::lane(args, tee)?;
            check_backend(args, lane.backend, lane.arch, lane.boot)?;
            lane
        }
        None => lane(args, host)?,
    };
    finish(args, lane)
}

fn lane(args: &RunArgs, host: &Host) -> Result<Lane, Error> {
    let arch = match (args.arch, host.arch) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(Error::Usage(format!(
                "no default --arch on a {} host; pass --arch x86_64 or --arch aarch64",
                std::env::consts::ARCH
            )));
        }
    };
    let boot = match (arch, args.boot) {
        (Arch::X86_64, None) => Boot::Pvh,
        (Arch::Aarch64, None) => Boot::Image,
        (Arch::X86_64, Some(b @ (Boot::Pvh | Boot::Bios | Boot::Uefi)))
        | (Arch::Aarch64, Some(b @ Boot::Image)) => b,
        (a, Some(b)) => {
            let valid = if a == Arch::X86_64 {
                "pvh, bios or uefi"
            } else {
                "image"
            };
            return Err(Error::Usage(format!(
                "--boot {} is not an {} boot; use {valid}",
                b.as_str(),
                a.as_str()
            )));
        }
    };
    let machine = match (boot, args.machine) {
        (Boot::Pvh, None) => Machine::Microvm,
        (Boot::Bios | Boot::Uefi, None) => Machine::Pc,
        (Boot::Image, None) => Machine::Virt,
        (Boot::Pvh, Some(m @ (Machine::Microvm | Machine::Pc))) => m,
        (Boot::Bios | Boot::Uefi, Some(m @ (Machine::Pc | Machine::Q35))) => m,
        (Boot::Image, Some(m @ (Machine::Virt | Machine::VirtEl2))) => m,
        (b, Some(m)) => {
            let valid = match b {
                Boot::Pvh => "microvm or pc",
                Boot::Bios | Boot::Uefi => "pc or q35 (microvm has no disk firmware)",
                Boot::Image => "virt or virt-el2",
            };
            return Err(Error::Usage(format!(
                "--machine {} does not fit {} --boot {}; use {valid}",
                m.as_str(),
                arch.as_str(),
                b.as_str()
            )));
        }
    };
    if args.kernel.is_none() {
        crate::kit::refuse_build("building the guest (no --kernel given) needs cargo")?;
    }
    let chosen = choose_backend(args, arch, host, swprot::readiness);
    let backend = chosen.kind;
    check_backend(args, backend, arch, boot)?;
    let accel = match backend {
        BackendKind::Qemu => accel::choose(args.accel, arch, host)?,
        _ if args.accel != crate::cli::AccelArg::Auto => {
            return Err(Error::Usage(format!(
                "--accel picks QEMU's accelerator; --backend {} always uses {}",
                backend.as_str(),
                if backend == BackendKind::Vmm {
                    "/dev/kvm"
                } else {
                    "TCG for L1 and KVM inside it"
                }
            )));
        }
        BackendKind::Vmm => accel::Choice {
            accel: accel::Accel::Kvm,
            why: "convtest's own VMM on /dev/kvm".into(),
        },
        BackendKind::Nested => accel::Choice {
            accel: accel::Accel::Tcg,
            why: "L1 under QEMU TCG, guest under the L1's KVM".into(),
        },
    };
    Ok(Lane {
        arch,
        boot,
        machine,
        backend,
        backend_why: chosen.why,
        swprot: chosen.swprot,
        accel,
    })
}

/// The plan and everything else, for the lane chosen.
fn finish(args: &RunArgs, lane: Lane) -> Result<RunConfig, Error> {
    let Lane {
        arch,
        boot,
        machine,
        backend,
        backend_why,
        swprot,
        accel,
    } = lane;
    let mut tests = test_globs(&args.tests, args.inject.is_some())?;
    // An SMP run always proves its CPUs came up.
    if args.vcpus > 1 && !catalog::selected(&tests, false).any(|t| t.name == "smp.online") {
        tests.push_str(",smp.online");
    }
    let plan = Plan {
        tests: &tests,
        seed: args.seed.unwrap_or(DEFAULT_SEED),
        iters: args.iters.unwrap_or(DEFAULT_ITERS),
        // convtest's own VMM answers host checks; QEMU cannot.
        host: backend.has_own_vmm(),
        inject: args.inject.map(|i| match i {
            InjectArg::Fault => Inject::Fault,
            InjectArg::Hang => Inject::Hang,
            InjectArg::Forge => Inject::Forge,
        }),
        guest_fault: args.guest_fault.map(|g| g.fault()),
        bench_ms: args
            .bench_ms
            .unwrap_or(convtest_proto::plan::DEFAULT_BENCH_MS),
        reboots: args.reboots,
        cpus: args.vcpus,
        replay: args.replay,
        hostile_ops: args.hostile_ops,
        ..Plan::default()
    };
    let mut l1 = args.l1.clone();
    l1.l1_swprot |= swprot;
    Ok(RunConfig {
        arch,
        backend,
        backend_why,
        accel,
        boot,
        machine,
        plan: plan.to_string(),
        planned_reboots: plan.reboots,
        vcpus: args.vcpus,
        // --timeout is per boot, plus what a selected storm needs.
        timeout: Duration::from_secs(
            (args.timeout + storm_allowance(&plan) + hostile_allowance(&plan))
                .saturating_mul(u64::from(args.reboots) + 1),
        ),
        memory_mib: args.memory,
        json: args.json.clone(),
        junit: args.junit.clone(),
        ktap: args.ktap.clone(),
        kcidb: args.kcidb.clone(),
        kernel: args.kernel.clone(),
        workspace: args.workspace.clone().unwrap_or_else(default_workspace),
        quiet: args.quiet,
        vmm: args.vmm.options(),
        l1,
        tee: args.tee,
        tee_firmware: args.firmware.clone(),
    })
}

/// Slowest storm rate seen on a lane (pKVM under TCG, host checks included),
/// in operations per second: a selected storm adds its length at this rate
/// to the timeout, so a long storm is not mistaken for a hung guest.
const STORM_OPS_PER_S_FLOOR: u64 = 250;

fn storm_allowance(plan: &Plan<'_>) -> u64 {
    if !catalog::selected(plan.tests, false).any(|t| t.name == "stress.storm") {
        return 0;
    }
    let ops = plan.storm_len();
    plan.replay.map_or(ops, |r| r.min(ops)) / STORM_OPS_PER_S_FLOOR
}

/// Slowest hostile rate seen (pKVM under TCG: about half the traffic is
/// MMIO exits to the VMM at 1-3 ms each), in operations per second.
const HOSTILE_OPS_PER_S_FLOOR: u64 = 100;

fn hostile_allowance(plan: &Plan<'_>) -> u64 {
    if !catalog::selected(plan.tests, false).any(|t| t.name == "hostile.vmm") {
        return 0;
    }
    plan.hostile_len() / HOSTILE_OPS_PER_S_FLOOR
}

/// Options that only one backend understands are errors elsewhere, so a
/// typo'd lane never silently runs a different one.
fn check_backend(
    args: &RunArgs,
    backend: BackendKind,
    arch: Arch,
    boot: Boot,
) -> Result<(), Error> {
    let own_vmm = backend.has_own_vmm();
    if own_vmm && boot.is_disk_image() {
        return Err(Error::Usage(format!(
            "--backend {} boots the kernel directly; use --boot pvh (x86_64) or image (aarch64), not {}",
            backend.as_str(),
            boot.as_str()
        )));
    }
    if !own_vmm
        && (args.vmm.content.is_some()
            || args.vmm.vmm_memory != convtest_vmm::config::MemoryKind::Auto
            || args.vmm.vm_type != convtest_vmm::config::VmType::Auto
            || !args.vmm.vmm_fault.is_empty()
            || args.vmm.reset_policy != convtest_proto::plan::ResetPolicy::Keep
            || args.vmm.layout != convtest_vmm::config::Layout::Convtest
            || args.vmm.vmm_console != convtest_vmm::config::ConsoleKind::Word)
    {
        return Err(Error::Usage(
            "--content, --vmm-memory, --vm-type, --vmm-fault, --reset-policy, --layout and --vmm-console configure convtest's own VMM: add --backend vmm or --backend nested (QEMU's own system reset keeps RAM, as --reset-policy keep)".into(),
        ));
    }
    if args.replay.is_some()
        && !catalog::selected(&args.tests, false).any(|t| t.name.starts_with("stress.storm"))
    {
        return Err(Error::Usage(format!(
            "--replay replays a seeded storm, but --tests {:?} selects none; add --tests 'stress.storm'",
            args.tests
        )));
    }
    if args.hostile_ops.is_some()
        && !catalog::selected(&args.tests, false).any(|t| t.name == "hostile.vmm")
    {
        return Err(Error::Usage(format!(
            "--hostile-ops sizes the hostile traffic, but --tests {:?} selects none; add --tests 'hostile.vmm,conv.*'",
            args.tests
        )));
    }
    if args.hostile_ops == Some(0) {
        return Err(Error::Usage(
            "--hostile-ops 0: the hostile traffic needs at least one operation".into(),
        ));
    }
    if args.vmm.reset_policy == convtest_proto::plan::ResetPolicy::Private && arch == Arch::Aarch64
    {
        return Err(Error::Usage(
            "--reset-policy private: pKVM gives the host no call to make a protected VM's \
             memory private again (only the guest's MEM_UNSHARE does); use keep (the guest's \
             ledger resets it) or recreate (a new VM: pKVM reclaims and zeroes the old pages)"
                .into(),
        ));
    }
    convtest_vmm::config::check_faults(&args.vmm.vmm_fault)
        .map_err(|e| Error::Usage(e.to_string()))?;
    if args.vmm.vmm_fault.iter().any(|f| f.on_requests()) && arch == Arch::Aarch64 {
        return Err(Error::Usage(
            "--vmm-fault breaks the VMM's conversion service, but on arm64 pKVM answers \
             MEM_SHARE/MEM_UNSHARE at EL2 without a VMM exit: no VMM fault can apply; use \
             --guest-fault to break the guest's side instead"
                .into(),
        ));
    }
    let l1 = &args.l1;
    if backend != BackendKind::Nested
        && (l1.l1_kernel.is_some() || l1.l1_swprot || l1.l1_name.is_some())
    {
        return Err(Error::Usage(
            "--l1, --l1-kernel, --l1-modules and --l1-swprot describe the nested L1: add --backend nested".into(),
        ));
    }
    if l1.l1_swprot && arch != Arch::X86_64 {
        return Err(Error::Usage(
            "--l1-swprot rebuilds x86 kvm.ko with KVM_SW_PROTECTED_VM; arm64 protection comes from pKVM (--vm-type)".into(),
        ));
    }
    if args.vmm.vm_type != convtest_vmm::config::VmType::Auto && arch != Arch::Aarch64 {
        return Err(Error::Usage(
            "--vm-type chooses an arm64 VM type; x86 memory is chosen with --vmm-memory".into(),
        ));
    }
    if args.vmm.layout != convtest_vmm::config::Layout::Convtest && arch != Arch::Aarch64 {
        return Err(Error::Usage(
            "--layout picks the arm64 machine the own VMM builds (crosvm's or its own); x86 has one".into(),
        ));
    }
    if args.vmm.vmm_console != convtest_vmm::config::ConsoleKind::Word && arch != Arch::Aarch64 {
        return Err(Error::Usage(
            "--vmm-console chooses the arm64 VMM's console; the x86 VMM has only COM1".into(),
        ));
    }
    if args.vmm.vmm_memory != convtest_vmm::config::MemoryKind::Auto && arch != Arch::X86_64 {
        return Err(Error::Usage(
            "--vmm-memory chooses the x86 VMM memory; arm64 uses --vm-type".into(),
        ));
    }
    Ok(())
}

/// The `tests=` value: must select something (a typo would otherwise pass
/// with zero tests), and `--inject` always brings its test along.
fn test_globs(globs: &str, inject: bool) -> Result<String, Error> {
    if globs.is_empty() || globs.chars().any(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "--tests {globs:?}: give comma-separated globs without spaces"
        )));
    }
    if catalog::selected(globs, inject).next().is_none() {
        return Err(Error::Usage(format!(
            "--tests {globs:?} selects no test; `convtest list` shows the names"
        )));
    }
    let mut globs = globs.to_string();
    if inject && !catalog::selected(&globs, true).any(|t| t.on_request) {
        globs.push_str(",inject.*");
    }
    Ok(globs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::Accel;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn host() -> Host {
        Host {
            arch: Some(Arch::X86_64),
            kvm_device: true,
            cpuinfo: "flags : fpu hypervisor\n".into(),
        }
    }

    fn resolve_line(line: &str) -> Result<RunConfig, Error> {
        let cli = Cli::try_parse_from(line.split(' ')).expect("clap accepts it");
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        resolve(&args, &host())
    }

    #[test]
    fn defaults_follow_arch_and_boot() {
        let c = resolve_line("convtest run --backend qemu").expect("ok");
        assert_eq!(
            (c.arch, c.boot, c.machine, c.accel.accel),
            (Arch::X86_64, Boot::Pvh, Machine::Microvm, Accel::Tcg)
        );
        assert_eq!(
            c.plan,
            "tests=* seed=0x5eed iters=1000 mem=16777216 boot=0 reboots=0 host=off bench=on"
        );
        let c =
            resolve_line("convtest run --backend qemu --tests bench.* --bench-ms 250").expect("ok");
        assert!(
            c.plan.starts_with("tests=bench.* ") && c.plan.ends_with(" bench_ms=250"),
            "{}",
            c.plan
        );
        let c = resolve_line("convtest run --boot uefi").expect("ok");
        assert_eq!(c.machine, Machine::Pc);
        let c = resolve_line("convtest run --backend qemu --arch aarch64").expect("ok");
        assert_eq!((c.boot, c.machine), (Boot::Image, Machine::Virt));
    }

    #[test]
    fn impossible_combinations_are_usage_errors() {
        for line in [
            "convtest run --arch aarch64 --boot pvh",
            "convtest run --boot image",
            "convtest run --boot bios --machine microvm",
            "convtest run --machine virt",
            "convtest run --arch aarch64 --machine pc",
            "convtest run --tests nosuch.*",
            "convtest run --backend qemu --vmm-fault ignore",
            "convtest run --backend qemu --l1 debian-6.1",
            "convtest run --backend nested --vmm-fault ignore,deny",
            "convtest run --backend nested --arch aarch64 --vmm-fault leak",
            "convtest run --backend nested --layout crosvm",
            "convtest run --backend qemu --arch aarch64 --layout crosvm",
        ] {
            assert!(matches!(resolve_line(line), Err(Error::Usage(_))), "{line}");
        }
        // Not a combination that is wrong anywhere: this host cannot run it.
        assert!(matches!(
            resolve_line("convtest run --arch aarch64 --accel kvm"),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn vcpus_and_replay() {
        let c = resolve_line("convtest run --backend qemu --vcpus 4 --tests boot.*").expect("ok");
        let p = Plan::parse(&c.plan).plan;
        assert_eq!((p.cpus, p.tests, c.vcpus), (4, "boot.*,smp.online", 4));
        let c =
            resolve_line("convtest run --backend qemu --tests smp.*,boot.* --vcpus 2").expect("ok");
        assert_eq!(
            Plan::parse(&c.plan).plan.tests,
            "smp.*,boot.*",
            "already selected"
        );
        let e = resolve_line("convtest run --backend qemu --replay 5").expect_err("no storm");
        assert!(e.to_string().contains("stress.storm"), "{e}");
        let c =
            resolve_line("convtest run --backend nested --tests stress.storm --seed 9 --replay 5")
                .expect("ok");
        let p = Plan::parse(&c.plan).plan;
        assert_eq!((p.seed, p.replay), (9, Some(5)));
    }

    #[test]
    fn plan_carries_the_options() {
        let c = resolve_line(
            "convtest run --backend qemu --tests boot.* --seed 7 --iters 3 --inject hang",
        )
        .expect("ok");
        let parsed = Plan::parse(&c.plan);
        assert_eq!(parsed.error, None);
        let p = parsed.plan;
        assert_eq!(
            (p.tests, p.seed, p.iters, p.inject),
            ("boot.*,inject.*", 7, 3, Some(Inject::Hang))
        );
        let c =
            resolve_line("convtest run --backend nested --guest-fault skip-reset --vmm-fault leak")
                .expect("ok");
        assert_eq!(
            Plan::parse(&c.plan).plan.guest_fault,
            Some(convtest_proto::plan::GuestFault::SkipReset)
        );
        let c = resolve_line("convtest run --backend qemu --inject fault").expect("ok");
        assert_eq!(
            Plan::parse(&c.plan).plan.tests,
            "*",
            "`*` already selects the injected test"
        );
    }
}
