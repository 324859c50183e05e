//! The lanes `convtest mutants` can break, the sections of each lane's kill
//! table with the tests each one runs, and the mutants: a deliberate VMM
//! fault or a deliberate guest firmware fault, one per run.

use crate::backend::nested::L1Name;
use convtest_proto::arch::Arch;
use convtest_proto::keyword::Keyword;
use convtest_proto::plan::{GuestFault, ResetPolicy};
use convtest_vmm::config::VmmFault;
use std::fmt;

/// What actually enforces private memory on a lane: decides which mutants
/// mean something there and what each must turn red.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// x86, KVM_X86_SW_PROTECTED_VM: guest_memfd + memory attributes.
    X86SwProtected,
    /// x86, default VM: the VMM's own page tracking.
    X86EmulatedPrivate,
    /// arm64 pKVM protected VM: conversions answered at EL2.
    Arm64Pkvm,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::X86SwProtected => "x86 sw-protected (guest_memfd, KVM_SET_MEMORY_ATTRIBUTES)",
            Platform::X86EmulatedPrivate => "x86 emulated-private (VMM bookkeeping)",
            Platform::Arm64Pkvm => "arm64 pKVM protected VM",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane {
    pub name: &'static str,
    pub arch: Arch,
    pub l1_swprot: bool,
    /// Debian's L1 kernel other than the default one.
    pub l1: Option<L1Name>,
    pub platform: Platform,
    /// Run when `--lanes` names none (the 16 KiB lane only when named: its
    /// pKVM teardowns cost ~25 s a run under TCG, docs/known-problems.md).
    pub by_default: bool,
}

pub const LANES: [Lane; 4] = [
    Lane {
        name: "nested-x86-swprot",
        arch: Arch::X86_64,
        l1_swprot: true,
        l1: None,
        platform: Platform::X86SwProtected,
        by_default: true,
    },
    Lane {
        name: "nested-x86",
        arch: Arch::X86_64,
        l1_swprot: false,
        l1: None,
        platform: Platform::X86EmulatedPrivate,
        by_default: true,
    },
    Lane {
        name: "nested-arm64-pkvm",
        arch: Arch::Aarch64,
        l1_swprot: false,
        l1: None,
        platform: Platform::Arm64Pkvm,
        by_default: true,
    },
    // The same pKVM with 16 KiB pages: the same tables, on 16 KiB granules.
    Lane {
        name: "nested-arm64-pkvm-16k",
        arch: Arch::Aarch64,
        l1_swprot: false,
        l1: Some(L1Name::Debian73_16k),
        platform: Platform::Arm64Pkvm,
        by_default: false,
    },
];

/// The conv section's tests: every conv.* and the seeded storm.
pub const CONV_TESTS: &str = "conv.*,stress.storm";
/// The smp section's: the race, the storm and the overlapping conversions on two CPUs.
pub const SMP_TESTS: &str = "stress.race,stress.storm,stress.overlap";

/// A part of a lane's kill table: the conversion tests in single boots, the
/// reboot series' tests in runs of two boots, or the tests that need more
/// than one CPU in runs of two vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Conv,
    Reboot,
    Smp,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Conv, Section::Reboot, Section::Smp];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::Conv => "conv",
            Section::Reboot => "reboot",
            Section::Smp => "smp",
        }
    }

    /// The sections a lane's tables have: all three on every lane. (The
    /// stock x86 lane's smp table was out for two stops: its clean
    /// two-vCPU run once ended in CI in a triple fault the guest never
    /// raised — multi-threaded TCG's emulated SVM, docs/known-problems.md —
    /// which the single-threaded x86 L1 no longer shows.)
    pub fn of(_platform: Platform) -> Vec<Section> {
        Section::ALL.to_vec()
    }

    /// vCPUs of each run of the section.
    pub fn vcpus(self) -> u32 {
        match self {
            Section::Smp => 2,
            Section::Conv | Section::Reboot => 1,
        }
    }

    /// The columns: every test the section's runs must judge.
    pub fn tests(self) -> Vec<&'static str> {
        match self {
            Section::Conv => convtest_proto::catalog::selected(CONV_TESTS, false)
                .map(|t| t.name)
                .collect(),
            // Boot 1 of a two-boot series runs the reset tests, boot 0 leaves the state.
            Section::Reboot => convtest_proto::catalog::selected_in_boot("-", false, 1, 1)
                .chain(convtest_proto::catalog::selected_in_boot("-", false, 0, 1))
                .map(|t| t.name)
                .collect(),
            Section::Smp => convtest_proto::catalog::selected(SMP_TESTS, false)
                .map(|t| t.name)
                .collect(),
        }
    }

    /// The runs: the clean one first.
    pub fn mutants(self, platform: Platform) -> Vec<Mutant> {
        let all = match self {
            Section::Conv => Mutant::all(),
            Section::Reboot => vec![
                Mutant::Clean,
                Mutant::Guest(GuestFault::SkipReset),
                Mutant::Vmm(VmmFault::NoReset),
                Mutant::Guest(GuestFault::SkipShare),
                Mutant::Guest(GuestFault::ForgeHost),
                Mutant::Covered(GuestFault::SkipReset),
            ],
            // The conversion faults and the forged host; the skipped reset
            // is not one here (the storm's and the race's memory is a fresh
            // VM's, private anyway).
            Section::Smp => vec![
                Mutant::Clean,
                Mutant::Vmm(VmmFault::Ignore),
                Mutant::Vmm(VmmFault::Leak),
                Mutant::Guest(GuestFault::SkipShare),
                Mutant::Guest(GuestFault::SkipUnshare),
                Mutant::Guest(GuestFault::ForgetTracker),
                Mutant::Guest(GuestFault::ForgeHost),
            ],
        };
        all.into_iter()
            .filter(|m| m.not_applicable(platform).is_none())
            .collect()
    }

    /// Reboots in each run of the section.
    pub fn reboots(self) -> u32 {
        match self {
            Section::Conv | Section::Smp => 0,
            Section::Reboot => 1,
        }
    }

    /// The reset policy a run claims: `no-reset` must claim one that does
    /// something (keep leaves memory alone by definition); pKVM has no
    /// private policy, so there it claims recreate.
    pub fn policy(self, platform: Platform, mutant: Mutant) -> ResetPolicy {
        match (mutant, platform) {
            (Mutant::Vmm(VmmFault::NoReset) | Mutant::Covered(_), Platform::Arm64Pkvm) => {
                ResetPolicy::Recreate
            }
            (Mutant::Vmm(VmmFault::NoReset) | Mutant::Covered(_), _) => ResetPolicy::Private,
            _ => ResetPolicy::Keep,
        }
    }
}

pub fn lane(name: &str) -> Option<Lane> {
    LANES.iter().copied().find(|l| l.name == name)
}

/// One run of a lane: the clean platform or one deliberate fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutant {
    Clean,
    Vmm(VmmFault),
    Guest(GuestFault),
    /// A control, not a mutant: a guest fault the VMM's reset policy makes
    /// harmless (the firmware skips its reset; a VMM that wipes memory at
    /// reset did the work). Every test must stay green: the tests judge the
    /// platform, not who made the memory private.
    Covered(GuestFault),
}

impl Mutant {
    /// Every mutant, clean first.
    pub fn all() -> Vec<Mutant> {
        let mut v = vec![Mutant::Clean];
        v.extend(
            VmmFault::ALL
                .iter()
                .copied()
                .filter(|f| f.on_requests())
                .map(Mutant::Vmm),
        );
        v.extend(GuestFault::ALL.into_iter().map(Mutant::Guest));
        v
    }

    pub fn kind(self) -> &'static str {
        match self {
            Mutant::Clean => "clean",
            Mutant::Vmm(_) => "vmm",
            Mutant::Guest(_) => "guest",
            Mutant::Covered(_) => "control",
        }
    }

    /// Why this mutant cannot apply on `platform` (`None`: it applies).
    pub fn not_applicable(self, platform: Platform) -> Option<&'static str> {
        match (self, platform) {
            // The reset is the VMM's own on pKVM too.
            (Mutant::Vmm(VmmFault::NoReset), Platform::Arm64Pkvm) => None,
            (Mutant::Vmm(_), Platform::Arm64Pkvm) => Some(
                "pKVM answers MEM_SHARE/MEM_UNSHARE at EL2 without a VMM exit: the VMM takes no part in a conversion it could break",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mutant::Clean => f.write_str("clean"),
            Mutant::Vmm(v) => write!(f, "vmm:{}", v.as_str()),
            Mutant::Guest(g) => write!(f, "guest:{}", g.as_str()),
            Mutant::Covered(g) => write!(f, "covered:{}", g.as_str()),
        }
    }
}
