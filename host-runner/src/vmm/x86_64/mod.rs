//! The x86_64 VMM: a PVH guest on one vCPU, COM1, isa-debug-exit, the 0xcf9
//! reset, and KVM_HC_MAP_GPA_RANGE exits served against guest RAM in one of
//! two memory modes (memory.rs). serve.rs answers each exit (with the run's
//! `--vmm-fault`s, faults.rs) over a [`platform::Platform`]: the real VM
//! here, a fake in the property test. vcpu_loop.rs turns every other exit
//! into device I/O or the run's end; hostview.rs answers the host checks.

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
mod vcpu_loop;

use super::facts::{self, Facts};
use super::{GuestEnd, VmmError};
use crate::cli::{ContentArg, VmmArgs, VmmMemoryArg};
use convtest_proto::map_gpa::KVM_HC_MAP_GPA_RANGE;
use faults::Faults;
use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_enable_cap};
use kvm_ioctls::{Kvm, VcpuFd};
use memory::{GuestRam, Mode};
use platform::KvmPlatform;
use std::time::Duration;

const CAP_EXIT_HYPERCALL: u32 = 201;
const CAP_MEMORY_ATTRIBUTES: u32 = 233;
const CAP_GUEST_MEMFD: u32 = 234;
const CAP_VM_TYPES: u32 = 235;
const CAP_GUEST_MEMFD_FLAGS: u32 = 244;
const VM_TYPE_SW_PROTECTED: u64 = kvm_bindings::KVM_X86_SW_PROTECTED_VM as u64;
/// Where KVM may put its real-mode TSS on Intel without unrestricted guest;
/// QEMU's choice, outside guest RAM (which ends below 3 GiB).
const TSS_ADDR: usize = 0xfffb_d000;

fn cap(kvm: &Kvm, c: u32) -> i32 {
    kvm.check_extension_raw(c.into())
}

/// The memory mode the host allows for what the user asked.
fn choose_mode(kvm: &Kvm, asked: VmmMemoryArg) -> Result<bool, VmmError> {
    let types = cap(kvm, CAP_VM_TYPES);
    let sw = types > 0 && types & (1 << VM_TYPE_SW_PROTECTED) != 0;
    match asked {
        VmmMemoryArg::Auto => Ok(sw),
        VmmMemoryArg::EmulatedPrivate => Ok(false),
        VmmMemoryArg::SwProtected if sw => Ok(true),
        VmmMemoryArg::SwProtected => Err(VmmError::Config(format!(
            "--vmm-memory sw-protected: this kernel's KVM_CAP_VM_TYPES is {types:#x}, without \
             KVM_X86_SW_PROTECTED_VM (bit 1): it needs kvm.ko built with CONFIG_KVM_SW_PROTECTED_VM \
             (convtest run --backend nested --l1-swprot does that)"
        ))),
    }
}

fn choose_content(sw: bool, asked: Option<ContentArg>) -> Result<ContentArg, VmmError> {
    match (sw, asked) {
        (true, Some(ContentArg::Preserve)) => Err(VmmError::Config(
            "--content preserve: in sw-protected memory private and shared are different pages \
             and private ones have no host mapping, so the VMM cannot carry bytes across a \
             conversion; use --content zero or --vmm-memory emulated-private"
                .into(),
        )),
        (true, _) => Ok(ContentArg::Zero),
        (false, c) => Ok(c.unwrap_or(ContentArg::Preserve)),
    }
}

/// Declared in this order so the vCPU fd closes first; the VM fd then
/// closes before the memory it maps is unmapped (see KvmPlatform).
struct Vm {
    vcpu: VcpuFd,
    ram: GuestRam<KvmPlatform>,
    faults: Faults,
}

pub fn run(args: &VmmArgs) -> Result<GuestEnd, VmmError> {
    let faults = Faults::new(&args.vmm.vmm_fault)?;
    let kvm = Kvm::new().map_err(VmmError::kvm("open /dev/kvm"))?;
    let sw = choose_mode(&kvm, args.vmm.vmm_memory)?;
    let content = choose_content(sw, args.vmm.content)?;
    let image = std::fs::read(&args.kernel).map_err(|source| VmmError::Read {
        path: args.kernel.clone(),
        source,
    })?;
    let extent = elf_extent::pvh_extent(&image).map_err(|detail| VmmError::Load {
        path: args.kernel.clone(),
        detail,
    })?;

    let vm = if sw {
        kvm.create_vm_with_type(VM_TYPE_SW_PROTECTED)
    } else {
        kvm.create_vm()
    }
    .map_err(VmmError::kvm("KVM_CREATE_VM"))?;
    vm.set_tss_address(TSS_ADDR)
        .map_err(VmmError::kvm("KVM_SET_TSS_ADDR"))?;
    let exit_hc = cap(&kvm, CAP_EXIT_HYPERCALL);
    let map_gpa_range = exit_hc > 0 && exit_hc & (1 << KVM_HC_MAP_GPA_RANGE) != 0;
    if map_gpa_range {
        vm.enable_cap(&kvm_enable_cap {
            cap: CAP_EXIT_HYPERCALL,
            args: [1 << KVM_HC_MAP_GPA_RANGE, 0, 0, 0],
            ..Default::default()
        })
        .map_err(VmmError::kvm("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL)"))?;
    }
    let gmem_flags = vm.check_extension_raw(CAP_GUEST_MEMFD_FLAGS.into());
    let flags_wanted = (memory::GMEM_FLAG_MMAP | memory::GMEM_FLAG_INIT_SHARED) as i32;
    let mode = if sw {
        Mode::SwProtected {
            boot_end: memory::boot_slot_end(extent.end),
        }
    } else {
        Mode::EmulatedPrivate {
            gmem_mmap: gmem_flags > 0 && gmem_flags & flags_wanted == flags_wanted,
        }
    };
    let size = u64::from(args.memory) << 20;
    let mem_attrs = vm.check_extension_raw(CAP_MEMORY_ATTRIBUTES.into());
    let gmem_cap = vm.check_extension_raw(CAP_GUEST_MEMFD.into());
    let ram = GuestRam::new(vm, size, mode, content)?;
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
    cpuid::patch(&mut entries, map_gpa_range, tsc_khz);
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
        .add("content", content.as_str())
        .add("vm_type", if sw { "sw-protected" } else { "default" })
        .add("map_gpa_range", if map_gpa_range { "on" } else { "off" })
        .add("kernel", facts::kernel_release())
        .add(
            "caps",
            facts::caps(&[
                (CAP_EXIT_HYPERCALL, exit_hc),
                (CAP_MEMORY_ATTRIBUTES, mem_attrs),
                (CAP_GUEST_MEMFD, gmem_cap),
                (CAP_VM_TYPES, cap(&kvm, CAP_VM_TYPES)),
                (CAP_GUEST_MEMFD_FLAGS, gmem_flags),
            ]),
        )
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
