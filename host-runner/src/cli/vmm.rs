//! The own VMM's options: `run --backend vmm|nested` and the hidden `vmm`
//! subcommand.

use super::parsers::arch_parser;
use clap::{Args, ValueEnum};
use convtest_proto::arch::Arch;
use std::path::PathBuf;

/// What the own VMM needs, shared by `run --backend vmm|nested` and the
/// hidden `vmm` subcommand.
#[derive(Clone, Debug, Args)]
pub struct VmmOptions {
    /// What a conversion does to the page's bytes where the memory mode lets
    /// the VMM choose: zero (punch the hole / clear) or preserve (keep).
    /// [default: preserve for emulated-private memory, zero for sw-protected,
    /// where private and shared are different pages]
    #[arg(long, value_enum)]
    pub content: Option<ContentArg>,

    /// x86 VMM memory: sw-protected = guest_memfd + KVM_SET_MEMORY_ATTRIBUTES
    /// (needs KVM_X86_SW_PROTECTED_VM), emulated-private = default VM whose
    /// VMM tracks private pages and refuses to touch them. auto takes
    /// sw-protected when the host offers it.
    #[arg(long, value_enum, default_value_t = VmmMemoryArg::Auto)]
    pub vmm_memory: VmmMemoryArg,

    /// arm64 VM type: protected (KVM_VM_TYPE_ARM_PROTECTED, pKVM) or
    /// normal; auto takes protected when the host runs pKVM.
    #[arg(long, value_enum, default_value_t = VmTypeArg::Auto)]
    pub vm_type: VmTypeArg,

    /// A single KVM_RUN lasting this long is a hang: the own VMM kicks the
    /// vCPU out, reports the hang and ends the run as a failure.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub vcpu_watchdog: u64,

    /// Break the own VMM on purpose (x86: it serves MAP_GPA_RANGE), to see
    /// which tests notice. Applies to well-formed conversion requests that
    /// would change a page's state; no-op and malformed requests are still
    /// answered truly. At most one of ignore, deny, partial, leak, garbage;
    /// wrong-content combines with any. arm64: pKVM answers
    /// MEM_SHARE/MEM_UNSHARE at EL2 without the VMM, so none applies there
    /// (use --guest-fault). `convtest mutants` runs them all.
    #[arg(long, value_enum, value_name = "KIND,...", value_delimiter = ',')]
    pub vmm_fault: Vec<VmmFault>,

    /// What the own VMM does to guest memory when the guest resets (a
    /// planned reboot, `--reboots`): keep = memory, attributes and
    /// guest_memfd survive, only the guest's firmware can make memory
    /// private again; private = the VMM sets all memory private (attributes,
    /// punched holes) as the upstream reset proposal does; recreate = a new
    /// VM fd and new guest memory, as QEMU resets a confidential guest.
    /// pKVM gives the host no call to make a protected VM's memory private:
    /// there only keep and recreate exist. The guest learns the policy
    /// (`reset=` in its plan) and checks what survived against it.
    #[arg(long, value_enum, default_value_t = ResetPolicyArg::Keep)]
    pub reset_policy: ResetPolicyArg,
}

/// `--reset-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ResetPolicyArg {
    Keep,
    Private,
    Recreate,
}

impl ResetPolicyArg {
    pub fn policy(self) -> convtest_proto::plan::ResetPolicy {
        use convtest_proto::plan::ResetPolicy;
        match self {
            ResetPolicyArg::Keep => ResetPolicy::Keep,
            ResetPolicyArg::Private => ResetPolicy::Private,
            ResetPolicyArg::Recreate => ResetPolicy::Recreate,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.policy().as_str()
    }
}

/// A deliberate VMM bug (`--vmm-fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum VmmFault {
    /// Answer 0 and change nothing.
    Ignore,
    /// Answer an error (-EPERM) and change nothing.
    Deny,
    /// Convert the first half of the pages that would flip, answer an error (-EAGAIN).
    Partial,
    /// Answer 0 to a to-private request but leave the pages shared (host-visible).
    Leak,
    /// Zero the pages that flip where preserve was promised, keep them where zero was.
    WrongContent,
    /// Answer a value that is no errno (0x1_0000_0000) and change nothing.
    Garbage,
    /// On a guest reset, claim the --reset-policy (the guest is told it) but
    /// do nothing: memory stays as the last boot left it.
    NoReset,
}

impl VmmFault {
    pub const ALL: [VmmFault; 7] = [
        VmmFault::Ignore,
        VmmFault::Deny,
        VmmFault::Partial,
        VmmFault::Leak,
        VmmFault::WrongContent,
        VmmFault::Garbage,
        VmmFault::NoReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VmmFault::Ignore => "ignore",
            VmmFault::Deny => "deny",
            VmmFault::Partial => "partial",
            VmmFault::Leak => "leak",
            VmmFault::WrongContent => "wrong-content",
            VmmFault::Garbage => "garbage",
            VmmFault::NoReset => "no-reset",
        }
    }

    /// Faults that decide the answer to a request (at most one at a time).
    pub fn decides_answer(self) -> bool {
        !matches!(self, VmmFault::WrongContent | VmmFault::NoReset)
    }

    /// Faults that act on conversion requests (the rest act on resets).
    pub fn on_requests(self) -> bool {
        !matches!(self, VmmFault::NoReset)
    }
}

/// Rejects fault sets that contradict themselves (two answers to one request).
pub fn check_vmm_faults(faults: &[VmmFault]) -> Result<(), String> {
    let answers: Vec<&str> = faults
        .iter()
        .filter(|f| f.decides_answer())
        .map(|f| f.as_str())
        .collect();
    if answers.len() > 1 {
        return Err(format!(
            "--vmm-fault {}: each of these decides the answer to a request; give at most one \
             (wrong-content combines with any)",
            answers.join(",")
        ));
    }
    Ok(())
}

/// The same values clap gives when no option is passed (a test pins this).
impl Default for VmmOptions {
    fn default() -> Self {
        VmmOptions {
            content: None,
            vmm_memory: VmmMemoryArg::Auto,
            vm_type: VmTypeArg::Auto,
            vcpu_watchdog: 60,
            vmm_fault: Vec::new(),
            reset_policy: ResetPolicyArg::Keep,
        }
    }
}

#[derive(Debug, Args)]
pub struct VmmArgs {
    /// Guest architecture [default: this machine's].
    #[arg(long, value_parser = arch_parser())]
    pub arch: Option<Arch>,

    /// The guest: x86_64 PVH ELF, or arm64 Image.
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,

    /// The guest's command line (the plan).
    #[arg(long, default_value = "")]
    pub cmdline: String,

    /// Guest RAM in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=3072))]
    pub memory: u32,

    /// vCPUs, one thread each; the guest starts the secondaries itself
    /// (x86 INIT-SIPI-SIPI, arm64 PSCI CPU_ON, both answered by KVM).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub vcpus: u32,

    #[command(flatten)]
    pub vmm: VmmOptions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ContentArg {
    Zero,
    Preserve,
}

impl ContentArg {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentArg::Zero => "zero",
            ContentArg::Preserve => "preserve",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VmmMemoryArg {
    Auto,
    SwProtected,
    EmulatedPrivate,
}

impl VmmMemoryArg {
    pub fn as_str(self) -> &'static str {
        match self {
            VmmMemoryArg::Auto => "auto",
            VmmMemoryArg::SwProtected => "sw-protected",
            VmmMemoryArg::EmulatedPrivate => "emulated-private",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VmTypeArg {
    Auto,
    Protected,
    Normal,
}

impl VmTypeArg {
    pub fn as_str(self) -> &'static str {
        match self {
            VmTypeArg::Auto => "auto",
            VmTypeArg::Protected => "protected",
            VmTypeArg::Normal => "normal",
        }
    }
}
