//! The x86_64 VMM: a PVH guest on one vCPU, COM1, isa-debug-exit, the 0xcf9
//! reset, and KVM_HC_MAP_GPA_RANGE exits served against guest RAM in one of
//! two memory modes (memory.rs), the strongest the host's capabilities
//! allow (caps.rs asks, choose.rs decides). serve.rs answers each exit
//! (with the run's `--vmm-fault`s, faults.rs) over a
//! [`platform::Platform`]: the real VM here, a fake in the property test. vcpu_loop.rs turns every other exit
//! into device I/O or the run's end; hostview.rs answers the host checks.

pub mod caps;
pub mod choose;
pub mod cpuid;
pub mod elf_extent;
#[cfg(test)]
mod fake;
pub mod faults;
pub mod hostview;
pub mod hypercall;
pub mod memory;
pub mod pagemap;
pub mod platform;
pub mod ports;
#[cfg(test)]
mod proptest;
pub mod pvh_boot;
pub mod serial;
pub mod serve;
pub mod timing;
mod vcpu_loop;

use super::facts::{self, Facts};
use super::{GuestEnd, VmmError};
use crate::cli::{ContentArg, VmmArgs};
use caps::{KvmCaps, VmCaps};
use choose::{Memory, VmKind};
use convtest_proto::map_gpa::KVM_HC_MAP_GPA_RANGE;
use faults::Faults;
use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_enable_cap};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use memory::{GuestRam, Mode};
use platform::KvmPlatform;
use std::time::Duration;

/// Where KVM may put its real-mode TSS on Intel without unrestricted guest;
/// QEMU's choice, outside guest RAM (which ends below 3 GiB).
const TSS_ADDR: usize = 0xfffb_d000;

/// Declared in this order so the vCPU fd closes first; the VM fd then
/// closes before the memory it maps is unmapped (see KvmPlatform).
struct Vm {
    vcpu: VcpuFd,
    ram: GuestRam<KvmPlatform>,
    faults: Faults,
}

/// Creates a VM of `kind`, sets it up as every kind needs, and asks it
/// the capabilities KVM answers per VM.
fn create_vm(kvm: &Kvm, kind: VmKind) -> Result<(VmFd, VmCaps), VmmError> {
    let vm = match kind {
        VmKind::SwProtected => kvm.create_vm_with_type(choose::VM_TYPE_SW_PROTECTED),
        VmKind::Default => kvm.create_vm(),
    }
    .map_err(VmmError::kvm("KVM_CREATE_VM"))?;
    vm.set_tss_address(TSS_ADDR)
        .map_err(VmmError::kvm("KVM_SET_TSS_ADDR"))?;
    let caps = VmCaps::probe(&vm);
    Ok((vm, caps))
}

/// Turns MAP_GPA_RANGE exits on when the VM offers them; Err says why the
/// guest will not be offered the call (a refused KVM_ENABLE_CAP included:
/// the guest then skips conv.* instead of the VMM dying).
fn enable_map_gpa_range(vm: &VmFd, caps: &VmCaps) -> Result<(), String> {
    choose::map_gpa_range(caps).map_err(|m| m.to_string())?;
    vm.enable_cap(&kvm_enable_cap {
        cap: caps::EXIT_HYPERCALL.number,
        args: [1 << KVM_HC_MAP_GPA_RANGE, 0, 0, 0],
        ..Default::default()
    })
    .map_err(|e| {
        format!(
            "KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL, bit 12) failed: {} (errno {})",
            std::io::Error::from_raw_os_error(e.errno()),
            e.errno()
        )
    })
}

pub fn run(args: &VmmArgs) -> Result<GuestEnd, VmmError> {
    let faults = Faults::new(&args.vmm.vmm_fault)?;
    let kvm = Kvm::new().map_err(VmmError::kvm("open /dev/kvm"))?;
    let kvm_caps = KvmCaps::probe(&kvm);
    let image = std::fs::read(&args.kernel).map_err(|source| VmmError::Read {
        path: args.kernel.clone(),
        source,
    })?;
    let extent = elf_extent::pvh_extent(&image).map_err(|detail| VmmError::Load {
        path: args.kernel.clone(),
        detail,
    })?;

    let (vm, vm_caps, choice) =
        choose::decide(&kvm_caps, args.vmm.vmm_memory, |kind| create_vm(&kvm, kind))?;
    let content = choose::content(choice.memory, args.vmm.content)?;
    let map_gpa_range = enable_map_gpa_range(&vm, &vm_caps);
    let mode = match choice.memory {
        Memory::SwProtected => Mode::SwProtected {
            boot_end: memory::boot_slot_end(extent.end),
        },
        Memory::GmemMmap => Mode::EmulatedPrivate { gmem_mmap: true },
        Memory::Anonymous => Mode::EmulatedPrivate { gmem_mmap: false },
    };
    let size = u64::from(args.memory) << 20;
    let ram = GuestRam::new(vm, size, mode, content, choice.slots)?;
    let entry = load_pvh(&args.kernel, &image, &ram)?;
    let cmdline = guest_cmdline(&args.cmdline, content);
    let cmdline_bytes = pvh_boot::cmdline(&cmdline).ok_or_else(|| {
        VmmError::Config(format!(
            "the guest command line is {} bytes; PVH gives it {}",
            cmdline.len(),
            pvh_boot::CMDLINE_MAX
        ))
    })?;
    ram.load(pvh_boot::CMDLINE_GPA, &cmdline_bytes)?;
    ram.load(
        pvh_boot::START_INFO_GPA,
        &pvh_boot::start_info(&memory::ram_ranges(size)),
    )?;

    let vcpu = ram
        .platform()
        .vm()
        .create_vcpu(0)
        .map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
    let tsc_khz = vcpu.get_tsc_khz().unwrap_or(0);
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(VmmError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
    let mut entries = cpuid.as_slice().to_vec();
    cpuid::patch(&mut entries, map_gpa_range.is_ok(), tsc_khz);
    cpuid = kvm_bindings::CpuId::from_entries(&entries)
        .map_err(|e| VmmError::Config(format!("CPUID table: {e:?}")))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(VmmError::kvm("KVM_SET_CPUID2"))?;
    let sregs = vcpu.get_sregs().map_err(VmmError::kvm("KVM_GET_SREGS"))?;
    vcpu.set_sregs(&pvh_boot::entry_sregs(sregs))
        .map_err(VmmError::kvm("KVM_SET_SREGS"))?;
    vcpu.set_regs(&pvh_boot::entry_regs(entry))
        .map_err(VmmError::kvm("KVM_SET_REGS"))?;

    let mut out = std::io::stdout().lock();
    let mut f = Facts::default();
    f.add("arch", "x86_64")
        .add("memory", mode.as_str())
        .add("backing", mode.backing())
        .add("memory_why", choice.why.join(";"))
        .add("slots", choice.slots.call())
        .add("content", content.as_str())
        .add(
            "vm_type",
            match choice.kind {
                VmKind::SwProtected => "sw-protected",
                VmKind::Default => "default",
            },
        )
        .add(
            "map_gpa_range",
            if map_gpa_range.is_ok() { "on" } else { "off" },
        )
        .add("map_gpa_range_why", map_gpa_range.err().unwrap_or_default())
        .add("kernel", facts::kernel_release())
        .add("caps", caps::legacy(&kvm_caps, &vm_caps))
        .caps(&caps::all(&kvm_caps, &vm_caps))
        .add("tsc_khz", tsc_khz)
        .add("ram_mib", args.memory)
        .add("faults", faults.describe());
    if let Mode::SwProtected { boot_end } = mode {
        f.add("boot_slot", format!("0x0-{boot_end:#x}"));
    }
    f.emit(&mut out);

    let mut machine = Vm { vcpu, ram, faults };
    let limit = Duration::from_secs(args.vmm.vcpu_watchdog);
    let end = vcpu_loop::run_loop(&mut machine, limit, &mut out)?;
    Ok(end)
}

/// The runner's plan plus what only the VMM knows: the content promise it
/// keeps, and its own name — the guest's expected answers for what the ABI
/// leaves to the VMM (e.g. -22 for a range outside RAM) are keyed on who
/// serves it.
fn guest_cmdline(plan: &str, content: ContentArg) -> String {
    format!("{} content={} vmm=convtest", plan.trim(), content.as_str())
        .trim_start()
        .to_string()
}

/// Loads the ELF with linux-loader and returns its PVH entry point.
fn load_pvh(
    path: &std::path::Path,
    image: &[u8],
    ram: &GuestRam<KvmPlatform>,
) -> Result<u64, VmmError> {
    use linux_loader::loader::{KernelLoader, elf::Elf, elf::PvhBootCapability};
    let load_err = |detail: String| VmmError::Load {
        path: path.to_path_buf(),
        detail,
    };
    let mut reader = std::io::Cursor::new(image);
    let loaded = Elf::load(ram.platform().mem(), None, &mut reader, None)
        .map_err(|e| load_err(e.to_string()))?;
    match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => Ok(addr.0),
        other => Err(load_err(format!(
            "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): {other:?}; build the guest for --boot pvh"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::plan::{Plan, VmmKind};

    #[test]
    fn the_guest_learns_the_content_promise_and_who_serves_it() {
        let line = guest_cmdline(" tests=conv.* host=on ", ContentArg::Zero);
        assert_eq!(line, "tests=conv.* host=on content=zero vmm=convtest");
        assert_eq!(Plan::parse(&line).plan.vmm, Some(VmmKind::Convtest));
        assert_eq!(
            guest_cmdline("", ContentArg::Preserve),
            "content=preserve vmm=convtest"
        );
    }
}
