//! One VM as a boot needs it, built from what the run read and probed
//! once ([`Setup`]): the memory mode chosen (choose.rs), guest RAM, the
//! irqchip, the vCPUs with their CPUID, the kernel and its PVH boot data
//! loaded, and the facts line describing it.

use super::boot_cpu::BootCpu;
use super::caps::{self, KvmCaps, VmCaps};
use super::choose::{self, Memory, VmKind};
use super::faults::Faults;
use super::memory::{self, GuestRam, Mode};
use super::platform::KvmPlatform;
use super::{cpuid, elf_extent, pvh_boot};
use crate::config::VmmConfig;
use crate::error::VmmError;
use crate::facts::{self, Facts};
use crate::reboot;
use convtest_proto::map_gpa::KVM_HC_MAP_GPA_RANGE;
use convtest_proto::plan::{Content, ResetPolicy};
use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, kvm_enable_cap};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

/// Where KVM may put its real-mode TSS on Intel without unrestricted guest;
/// QEMU's choice, outside guest RAM (which ends below 3 GiB).
const TSS_ADDR: usize = 0xfffb_d000;

/// Who emulates the local APICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irqchip {
    /// One vCPU: no interrupt controller at all (as before SMP: a HLT exits
    /// to the VMM, which ends the run at once as a halt without interrupts).
    None,
    /// KVM_CREATE_IRQCHIP: PIC, IOAPIC and a local APIC per vCPU in the
    /// kernel. Not KVM_CAP_SPLIT_IRQCHIP: the guest needs nothing from an
    /// IOAPIC or PIC in userspace (no device interrupts at all), and the
    /// full in-kernel chip is what every KVM since 2.6 has, for both VM
    /// types this VMM makes; the local APIC, the part that matters, is in
    /// the kernel either way, which handles INIT/SIPI (the wait-for-SIPI
    /// state, the real-mode start at the vector) without a VMM exit.
    Kernel,
}

impl Irqchip {
    /// For `--vcpus n`.
    pub fn for_vcpus(n: u32) -> Irqchip {
        if n > 1 {
            Irqchip::Kernel
        } else {
            Irqchip::None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Irqchip::None => "none",
            Irqchip::Kernel => "kernel",
        }
    }
}

/// Declared in this order so the vCPU fds close first; the VM fd then
/// closes before the memory it maps is unmapped (see KvmPlatform).
pub struct Vm {
    /// vCPU `i` (its APIC ID too) at index `i`; at least one.
    pub(super) vcpus: Vec<VcpuFd>,
    pub(super) ram: GuestRam<KvmPlatform>,
    pub(super) faults: Faults,
    /// The state every boot's vCPU starts in.
    pub(super) cpu: BootCpu,
    /// Guest-physical address of the guest's breadcrumb table (None: the
    /// image has none), read when a vCPU triple-faults or hangs.
    pub(super) crumbs: Option<u64>,
}

impl Vm {
    /// The guest's breadcrumbs as facts (crate::crumbs).
    pub(super) fn crumb_facts(&self) -> Facts {
        crate::crumbs::facts(self.crumbs, |gpa, buf| self.ram.read_host(gpa, buf))
    }
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

/// What every boot of the run is built from, read and probed once.
pub struct Setup<'a> {
    pub(super) args: &'a VmmConfig,
    pub(super) kvm: Kvm,
    pub(super) kvm_caps: KvmCaps,
    pub(super) image: Vec<u8>,
    pub(super) extent: elf_extent::Extent,
    /// The kernel's .bss, zeroed at every reload (see elf_extent::bss).
    pub(super) bss: Vec<(u64, u64)>,
    /// Where the guest keeps its breadcrumbs (convtest_proto::crumbs).
    pub(super) crumbs: Option<u64>,
    pub(super) faults: Faults,
    pub(super) policy: ResetPolicy,
}

impl<'a> Setup<'a> {
    pub(super) fn new(args: &'a VmmConfig) -> Result<Self, VmmError> {
        let faults = Faults::new(&args.options.faults)?;
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
        let bss = elf_extent::bss(&image);
        let crumbs = convtest_proto::crumbs::find(&image)
            .and_then(|off| elf_extent::paddr_of(&image, off as u64));
        Ok(Setup {
            args,
            kvm,
            kvm_caps,
            image,
            extent,
            bss,
            crumbs,
            faults,
            policy: args.options.reset_policy,
        })
    }

    /// A VM as at the first boot: memory mode chosen, RAM registered (all
    /// private), the irqchip and the vCPUs made, the kernel and boot data of
    /// boot `boot` loaded and vCPU 0 at the PVH entry (the others waiting
    /// for SIPI); plus the facts line describing it (the caller prints it
    /// once).
    pub(super) fn build(&self, boot: u32) -> Result<(Vm, Facts), VmmError> {
        let args = self.args;
        let (vm, vm_caps, choice) = choose::decide(&self.kvm_caps, args.options.memory, |kind| {
            create_vm(&self.kvm, kind)
        })?;
        let content = choose::content(choice.memory, args.options.content)?;
        let map_gpa_range = enable_map_gpa_range(&vm, &vm_caps);
        let mode = match choice.memory {
            Memory::SwProtected => Mode::SwProtected {
                boot_end: memory::boot_slot_end(self.extent.end),
            },
            Memory::GmemMmap => Mode::EmulatedPrivate { gmem_mmap: true },
            Memory::Anonymous => Mode::EmulatedPrivate { gmem_mmap: false },
        };
        let size = u64::from(args.memory_mib) << 20;
        let ram = GuestRam::new(vm, size, mode, content, choice.slots)?;
        let entry = self.load(&ram, boot, false)?;

        let irqchip = Irqchip::for_vcpus(args.vcpus);
        if irqchip == Irqchip::Kernel {
            // Before any vCPU exists: KVM gives each vCPU created after it
            // an in-kernel local APIC.
            ram.platform()
                .vm()
                .create_irq_chip()
                .map_err(VmmError::kvm("KVM_CREATE_IRQCHIP"))?;
        }
        let vcpus = (0..args.vcpus)
            .map(|id| ram.platform().vm().create_vcpu(u64::from(id)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
        let bsp = vcpus
            .first()
            .ok_or_else(|| VmmError::Config("--vcpus 0: the guest needs a vCPU".into()))?;
        let tsc_khz = bsp.get_tsc_khz().unwrap_or(0);
        let supported = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(VmmError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        let mut entries = supported.as_slice().to_vec();
        cpuid::patch(&mut entries, map_gpa_range.is_ok(), tsc_khz);
        for (id, vcpu) in vcpus.iter().enumerate() {
            let mut own = entries.clone();
            // --vcpus is at most 64: every id fits leaf 1's 8 bits.
            let apic_id = u8::try_from(id)
                .map_err(|_| VmmError::Config(format!("vCPU {id}: APIC IDs stop at 255")))?;
            cpuid::patch_vcpu(&mut own, apic_id, irqchip == Irqchip::Kernel);
            let cpuid = kvm_bindings::CpuId::from_entries(&own)
                .map_err(|e| VmmError::Config(format!("CPUID table: {e:?}")))?;
            vcpu.set_cpuid2(&cpuid)
                .map_err(VmmError::kvm("KVM_SET_CPUID2"))?;
        }
        let cpu = BootCpu::capture(bsp, entry)?;
        cpu.apply(bsp)?;

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
            .caps(&caps::all(&self.kvm_caps, &vm_caps))
            .add("tsc_khz", tsc_khz)
            .add("ram_mib", args.memory_mib)
            .add("vcpus", args.vcpus)
            .add("irqchip", irqchip.as_str())
            .add("faults", self.faults.describe());
        if let Mode::SwProtected { boot_end } = mode {
            f.add("boot_slot", format!("0x0-{boot_end:#x}"));
        }
        let machine = Vm {
            vcpus,
            ram,
            faults: self.faults.clone(),
            cpu,
            crumbs: self.crumbs,
        };
        Ok((machine, f))
    }

    /// Writes the kernel (its .bss zeroed when `reload`: memory a boot
    /// used) and the boot data of boot `boot` into `ram`; returns the
    /// entry point. The kernel lies in ordinary memory (sw-protected's
    /// boot slot), so this works whatever the reset did to the rest.
    pub(super) fn load(
        &self,
        ram: &GuestRam<KvmPlatform>,
        boot: u32,
        reload: bool,
    ) -> Result<u64, VmmError> {
        let entry = load_pvh(&self.args.kernel, &self.image, ram)?;
        if reload {
            for &(gpa, len) in &self.bss {
                ram.load(gpa, &vec![0; len as usize])?;
            }
        }
        let cmdline = guest_cmdline(&self.args.cmdline, ram.content, self.policy, boot);
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
            &pvh_boot::start_info(&memory::ram_ranges(ram.size)),
        )?;
        Ok(entry)
    }
}

/// The runner's plan plus what only the VMM knows: the content promise it
/// keeps, and its own name — the guest's expected answers for what the ABI
/// leaves to the VMM (e.g. -22 for a range outside RAM) are keyed on who
/// serves it — and the reset policy, with the boot's index after a reset
/// (reboot::guest_plan).
fn guest_cmdline(plan: &str, content: Content, policy: ResetPolicy, boot: u32) -> String {
    reboot::guest_plan(
        plan,
        &format!("content={} vmm=convtest", content.as_str()),
        policy,
        boot,
    )
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
        let line = guest_cmdline(
            " tests=conv.* host=on ",
            Content::Zero,
            ResetPolicy::Keep,
            0,
        );
        assert_eq!(
            line,
            "tests=conv.* host=on content=zero vmm=convtest reset=keep"
        );
        assert_eq!(Plan::parse(&line).plan.vmm, Some(VmmKind::Convtest));
        assert_eq!(
            guest_cmdline("", Content::Preserve, ResetPolicy::Keep, 0),
            "content=preserve vmm=convtest reset=keep"
        );
    }

    #[test]
    fn boot_n_is_told_its_index_and_the_policy() {
        for policy in ResetPolicy::ALL {
            for boot in 1..4 {
                let line = guest_cmdline("tests=* reboots=3", Content::Zero, policy, boot);
                let plan = Plan::parse(&line).plan;
                assert_eq!(plan.boot, boot, "{line}");
                assert_eq!(plan.reset, Some(policy), "{line}");
                assert_eq!(plan.reboots, 3, "{line}");
                assert_eq!(plan.vmm, Some(VmmKind::Convtest), "{line}");
                assert!(line.ends_with(&format!(" reset={} boot={boot}", policy.as_str())));
            }
        }
    }
}
