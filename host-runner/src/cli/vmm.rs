//! The own VMM's options: `run --backend vmm|nested` and the hidden `vmm`
//! subcommand. The values are the VMM crate's own configuration types; these
//! structs only add the flags.

use super::parsers::keyword;
use clap::Args;
use convtest_proto::arch::Arch;
use convtest_proto::plan::{Content, ResetPolicy};
use convtest_vmm::config::{
    ConsoleKind, Layout, MEMORY_MIB, MemoryKind, VCPUS, VmType, VmmConfig, VmmFault, VmmOptions,
};
use std::path::PathBuf;

/// What the own VMM needs, shared by `run --backend vmm|nested` and the
/// hidden `vmm` subcommand.
#[derive(Clone, Debug, Args)]
pub struct VmmFlags {
    /// What a conversion does to the page's bytes where the memory mode lets
    /// the VMM choose: zero (punch the hole / clear) or preserve (keep).
    /// [default: preserve for emulated-private memory, zero for sw-protected,
    /// where private and shared are different pages]
    #[arg(long, value_parser = keyword::<Content>())]
    pub content: Option<Content>,

    /// x86 VMM memory: sw-protected = guest_memfd + KVM_SET_MEMORY_ATTRIBUTES
    /// (needs KVM_X86_SW_PROTECTED_VM), emulated-private = default VM whose
    /// VMM tracks private pages and refuses to touch them. auto takes
    /// sw-protected when the host offers it.
    #[arg(long, value_parser = keyword::<MemoryKind>(), default_value = "auto")]
    pub vmm_memory: MemoryKind,

    /// arm64 VM type: protected (KVM_VM_TYPE_ARM_PROTECTED, pKVM) or
    /// normal; auto takes protected when the host runs pKVM.
    #[arg(long, value_parser = keyword::<VmType>(), default_value = "auto")]
    pub vm_type: VmType,

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
    #[arg(long, value_parser = keyword::<VmmFault>(), value_name = "KIND,...", value_delimiter = ',')]
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
    #[arg(long, value_parser = keyword::<ResetPolicy>(), default_value = "keep")]
    pub reset_policy: ResetPolicy,

    /// arm64: whose machine the guest sees. convtest = the own VMM's (a
    /// 16550 at 0x0900_0000, only the nodes it backs); crosvm = crosvm's
    /// memory map and device tree as on an Android board (RAM at
    /// 0x8000_0000, FDT at the end of RAM, a 16550 at 0x3f8 without
    /// reg-shift, PSCI over hvc, GICv3, PCI, RTC and swiotlb nodes).
    #[arg(long, value_parser = keyword::<Layout>(), default_value = "convtest")]
    pub layout: Layout,
    /// arm64: the console the own VMM serves. word = the word console (up to
    /// eight bytes per MMIO exit instead of the 16550's one; the guest takes
    /// it when the VMM answers its ID); uart = the word console refuses, so
    /// the guest falls back to its 16550 (the fallback path, and what a VMM
    /// without the word console looks like). Both are in the device tree.
    #[arg(long, value_parser = keyword::<ConsoleKind>(), default_value = "word")]
    pub vmm_console: ConsoleKind,
}

impl VmmFlags {
    /// The VMM's own configuration from the flags as typed.
    pub fn options(&self) -> VmmOptions {
        VmmOptions {
            content: self.content,
            memory: self.vmm_memory,
            vm_type: self.vm_type,
            vcpu_watchdog_s: self.vcpu_watchdog,
            faults: self.vmm_fault.clone(),
            reset_policy: self.reset_policy,
            layout: self.layout,
            console: self.vmm_console,
        }
    }
}

/// The hidden subcommand that runs the own VMM (the vmm backend starts it).
pub const VMM_COMMAND: &str = "vmm";

#[derive(Debug, Args)]
pub struct VmmArgs {
    /// Guest architecture [default: this machine's].
    #[arg(long, value_parser = keyword::<Arch>())]
    pub arch: Option<Arch>,

    /// The guest: x86_64 PVH ELF, or arm64 Image.
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,

    /// The guest's command line (the plan).
    #[arg(long, default_value = "")]
    pub cmdline: String,

    /// Guest RAM in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(i64::from(*MEMORY_MIB.start())..=i64::from(*MEMORY_MIB.end())))]
    pub memory: u32,

    /// vCPUs, one thread each; the guest starts the secondaries itself
    /// (x86 INIT-SIPI-SIPI, arm64 PSCI CPU_ON, both answered by KVM).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(i64::from(*VCPUS.start())..=i64::from(*VCPUS.end())))]
    pub vcpus: u32,

    #[command(flatten)]
    pub vmm: VmmFlags,
}

impl VmmArgs {
    pub fn config(&self) -> VmmConfig {
        VmmConfig {
            arch: self.arch,
            kernel: self.kernel.clone(),
            cmdline: self.cmdline.clone(),
            memory_mib: self.memory,
            vcpus: self.vcpus,
            options: self.vmm.options(),
        }
    }
}
