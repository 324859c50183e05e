//! The aarch64 VMM: an arm64 Image on `--vcpus N` vCPUs (one thread each,
//! vcpus.rs; their exits in run.rs; the guest starts vCPUs 1.. with PSCI
//! CPU_ON, which KVM answers) with a generated device tree, a 16550 on MMIO, PSCI power-off/reset, as a
//! pKVM protected VM when the host runs pKVM.
//!
//! A protected VM shares and unshares memory with hypercalls pKVM answers at
//! EL2 without a VMM exit (and pKVM refuses the SMCCC forwarding filter for
//! protected VMs), so this VMM sees no conversions at all: it only boots the
//! guest, carries its console, and answers host checks by trying to read
//! (memory.rs) — the refusals come from pKVM, not from VMM bookkeeping.

pub mod fdt;
pub mod image;
pub mod memory;
pub mod probe;
pub mod run;
pub mod uart;
pub mod vcpu;
pub mod word_console;

use super::facts::{self, Facts};
use super::reboot::{self, Reboots, ResetDone};
use super::vcpus::Runner;
use crate::config::{ConsoleKind, Layout, VmType, VmmConfig, VmmFault};
use crate::crosvm_layout;
use crate::end::GuestEnd;
use crate::error::VmmError;
use convtest_proto::keyword::Keyword;
use convtest_proto::plan::Content;
use convtest_proto::plan::ResetPolicy;
use convtest_proto::range::MemRange;
use kvm_ioctls::{Kvm, VmFd};
use memory::GuestRam;
use std::io::Write;
use std::time::{Duration, Instant};

/// KVM_VM_TYPE_ARM_PROTECTED (uapi kvm.h): a pKVM protected VM.
const VM_TYPE_ARM_PROTECTED: u64 = 1 << 31;
/// The IPA size of a VM type without KVM_VM_TYPE_ARM_IPA_SIZE bits.
const DEFAULT_IPA_BITS: u32 = 40;

/// The UART's MMIO window in `layout`.
fn uart_at(layout: Layout) -> MemRange {
    match layout {
        Layout::Convtest => uart::MMIO,
        Layout::Crosvm => crosvm_layout::SERIAL,
    }
}

/// Declared in this order so the vCPU and VM fds close before the memory
/// they map is unmapped.
struct Vm {
    /// vCPU 0 (the boot CPU) first.
    vcpus: Vec<vcpu::Vcpu>,
    /// Asked for its capabilities; held so it closes before RAM is unmapped.
    vm: VmFd,
    ram: GuestRam,
    protected: bool,
    regs: vcpu::BootRegs,
    loaded: image::Loaded,
    dtb_len: usize,
    create_ms: u128,
}

impl Vm {
    fn mpidrs(&self) -> Vec<u64> {
        self.vcpus.iter().map(|v| v.mpidr).collect()
    }
}

/// What every boot of one run is made from.
struct Guest<'a> {
    kvm: &'a Kvm,
    args: &'a VmmConfig,
    image: Vec<u8>,
    content: Content,
    policy: ResetPolicy,
}

impl Guest<'_> {
    /// The plan boot `boot` reads from /chosen/bootargs.
    fn plan(&self, boot: u32) -> String {
        boot_plan(&self.args.cmdline, self.content, self.policy, boot)
    }

    /// Writes the Image and a DTB carrying boot `boot`'s plan and a cpu node
    /// per MPIDR into RAM the host still owns (a new VM, or a normal VM after
    /// a reset).
    fn load(
        &self,
        ram: &GuestRam,
        boot: u32,
        mpidrs: &[u64],
        protected: bool,
    ) -> Result<(image::Loaded, u64, usize), VmmError> {
        // The DTB in the last 2 MiB of RAM, the Image at the start (both
        // layouts; crosvm rounds the DTB's place down to 2 MiB, which RAM
        // in whole 2 MiB makes the same).
        let dtb_at = match self.args.options.layout {
            Layout::Convtest => ram.range().end - fdt::FDT_MAX,
            Layout::Crosvm => crosvm_layout::fdt_address(ram.range()),
        };
        let loaded = image::load(&self.args.kernel, &self.image, ram, ram.base, dtb_at)?;
        let bootargs = self.plan(boot);
        let blob = match self.args.options.layout {
            Layout::Convtest => fdt::build(&fdt::Layout {
                ram: ram.range(),
                uart: uart::MMIO,
                word_console: Some(word_console::MMIO),
                bootargs: &bootargs,
                mpidrs,
            })?,
            Layout::Crosvm => crosvm_layout::fdt(&crosvm_layout::Machine {
                ram: ram.range(),
                kernel: MemRange::new(loaded.entry, loaded.end),
                plan: &bootargs,
                mpidrs,
                protected,
                seed: u64::from(std::process::id()) ^ dtb_at,
                ipa_bits: DEFAULT_IPA_BITS,
            })
            .map_err(VmmError::Config)?,
        };
        ram.load(dtb_at, &blob)?;
        Ok((loaded, dtb_at, blob.len()))
    }

    /// A new VM exactly as the first boot had it, ready to run boot `boot`.
    fn setup(&self, boot: u32) -> Result<Vm, VmmError> {
        let t_create = Instant::now();
        let (vm, protected) = create_vm(self.kvm, self.args.options.vm_type)?;
        let create_ms = t_create.elapsed().as_millis();
        let size = u64::from(self.args.memory_mib) << 20;
        let ram = GuestRam::new(&vm, size)?;
        // Every vCPU before the DTB (which names their MPIDRs as KVM gave
        // them) and before any KVM_RUN (pKVM sizes the VM at the first one:
        // vcpu.rs).
        let vcpus = vcpu::create_all(&vm, self.args.vcpus)?;
        let mpidrs: Vec<u64> = vcpus.iter().map(|v| v.mpidr).collect();
        let (loaded, dtb_at, dtb_len) = self.load(&ram, boot, &mpidrs, protected)?;
        let regs = vcpu::BootRegs {
            entry: loaded.entry,
            dtb: dtb_at,
        };
        vcpus[0].set_boot(regs)?;
        Ok(Vm {
            vcpus,
            vm,
            ram,
            protected,
            regs,
            loaded,
            dtb_len,
            create_ms,
        })
    }

    /// Starts boot `boot` after the guest's reset request (`exit_at`): the
    /// policy applied to `m` (or, under `--vmm-fault no-reset`, only the
    /// vCPU reset). Returns the machine to run and the reset's fact line.
    fn reset(
        &self,
        m: Vm,
        boot: u32,
        applies: bool,
        exit_at: Instant,
    ) -> Result<(Vm, Facts), VmmError> {
        let mut done = ResetDone {
            boot,
            policy: Some(self.policy),
            applied: applies,
            ..ResetDone::default()
        };
        let mut reload = "none";
        let m = match self.policy {
            ResetPolicy::Recreate if applies => {
                // pKVM reclaims (and zeroes) every page the guest owned when
                // the VM goes: the cost of a confidential reset.
                let t = Instant::now();
                drop(m);
                done.teardown_ns = Some(t.elapsed().as_nanos());
                let new = self.setup(boot)?;
                // reset_pages: all of the new VM's RAM (for a protected VM
                // all of it is the guest's, private, until it shares some).
                done.pages = new.ram.size / memory::PAGE;
                reload = "new_vm";
                new
            }
            ResetPolicy::Keep | ResetPolicy::Recreate => {
                if m.protected {
                    // The Image and DTB pages belong to the protected guest
                    // since its first run: the host cannot write them, so
                    // the next boot re-enters the Image it left, with the
                    // first boot's DTB (its plan has no boot=N).
                    if applies {
                        done.why = Some(
                            "pkvm_guest_owns_image_and_dtb:not_reloaded:guest_reads_boot_0_dtb"
                                .into(),
                        );
                    }
                } else if applies {
                    // Same Image, same RAM, same vCPUs: the same places
                    // as at boot 0.
                    self.load(&m.ram, boot, &m.mpidrs(), m.protected)?;
                    reload = "image,dtb";
                }
                // KVM left every vCPU stopped at the reset (psci.c
                // kvm_prepare_system_event): all are initialised again,
                // the secondaries off until the next boot's CPU_ON.
                vcpu::reset_all(&m.vcpus, m.regs)?;
                m
            }
            ResetPolicy::Private => return Err(private_refused()),
        };
        done.ns = exit_at.elapsed().as_nanos();
        let mut f = done.facts();
        f.add("reset_reload", reload);
        if reload == "new_vm" {
            f.add("create_vm_ms", m.create_ms);
        }
        Ok((m, f))
    }
}

/// The runner's plan plus what this VMM adds: the content it keeps, the
/// reset policy and (after a reset) the boot index.
fn boot_plan(cmdline: &str, content: Content, policy: ResetPolicy, boot: u32) -> String {
    reboot::guest_plan(
        cmdline,
        &format!("content={} vmm=convtest", content.as_str()),
        policy,
        boot,
    )
}

/// After a boot ended with `end`: the index of the boot to start, or `None`
/// when the run ends (power-off, a hang, or a reset the plan has no boot for).
fn next_boot(end: GuestEnd, reboots: &mut Reboots) -> Option<u32> {
    if end == GuestEnd::Reset {
        reboots.next_boot()
    } else {
        None
    }
}

fn private_refused() -> VmmError {
    VmmError::Config(
        "--reset-policy private: pKVM gives the host no call to make a protected VM's memory \
         private again (only the guest's MEM_UNSHARE does), and a normal VM has no private \
         memory; use keep or recreate"
            .into(),
    )
}

/// Creates the VM; true when it is a protected one. `auto` falls back to a
/// normal VM only when the host refuses the type (EINVAL: not in pKVM mode).
fn create_vm(kvm: &Kvm, asked: VmType) -> Result<(VmFd, bool), VmmError> {
    match asked {
        VmType::Normal => Ok((
            kvm.create_vm_with_type(0)
                .map_err(VmmError::kvm("KVM_CREATE_VM"))?,
            false,
        )),
        VmType::Protected => kvm
            .create_vm_with_type(VM_TYPE_ARM_PROTECTED)
            .map(|vm| (vm, true))
            .map_err(|e| {
                VmmError::Config(format!(
                    "--vm-type protected: KVM_CREATE_VM(KVM_VM_TYPE_ARM_PROTECTED) failed: {e}; \
                     protected VMs need a host kernel running pKVM (booted with \
                     kvm-arm.mode=protected)"
                ))
            }),
        VmType::Auto => match kvm.create_vm_with_type(VM_TYPE_ARM_PROTECTED) {
            Ok(vm) => Ok((vm, true)),
            Err(e) if e.errno() == libc::EINVAL => Ok((
                kvm.create_vm_with_type(0)
                    .map_err(VmmError::kvm("KVM_CREATE_VM"))?,
                false,
            )),
            Err(source) => Err(VmmError::Kvm {
                call: "KVM_CREATE_VM(KVM_VM_TYPE_ARM_PROTECTED)",
                source,
            }),
        },
    }
}

/// pKVM's MEM_SHARE/UNSHARE hand the same page back and forth, and the VMM
/// sees neither, so it cannot clear anything: content is always preserved.
fn choose_content(asked: Option<Content>) -> Result<Content, VmmError> {
    match asked {
        Some(Content::Zero) => Err(VmmError::Config(
            "--content zero: on arm64 the guest's conversions never reach the VMM (pKVM answers \
             MEM_SHARE/MEM_UNSHARE at EL2), so nothing can clear a page; the content is what \
             pKVM leaves (preserve)"
                .into(),
        )),
        _ => Ok(Content::Preserve),
    }
}

pub fn run(args: &VmmConfig) -> Result<(GuestEnd, Teardown), VmmError> {
    let policy = args.options.reset_policy;
    if policy == ResetPolicy::Private {
        return Err(private_refused());
    }
    let kvm = Kvm::new().map_err(VmmError::kvm("open /dev/kvm"))?;
    let content = choose_content(args.options.content)?;
    let image = std::fs::read(&args.kernel).map_err(|source| VmmError::Read {
        path: args.kernel.clone(),
        source,
    })?;
    let no_reset = args.options.faults.contains(&VmmFault::NoReset);
    let mut reboots = Reboots::new(&args.cmdline, policy, no_reset);
    let guest = Guest {
        kvm: &kvm,
        args,
        image,
        content,
        policy,
    };
    let mut machine = guest.setup(0)?;

    let probed = [
        facts::probe(&kvm, facts::cap::ARM_VM_IPA_SIZE),
        facts::probe(&machine.vm, facts::cap::GUEST_MEMFD),
        facts::probe(&machine.vm, facts::cap::GUEST_MEMFD_FLAGS),
    ];
    // Not locked for the run: every vCPU thread writes the console (under
    // run.rs's console mutex); a held StdoutLock would block them.
    let mut out = crate::stream::Relayed::new(std::io::stdout());
    let mut tap = crate::console::ConsoleTap::default();
    let mut f = Facts::default();
    let m = &machine;
    f.add("arch", "aarch64")
        .add("vcpus", m.vcpus.len())
        .add(
            "mpidr",
            m.mpidrs()
                .iter()
                .map(|r| format!("{r:#x}"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .add("vm_type", if m.protected { "protected" } else { "normal" })
        .add("vm_type_asked", args.options.vm_type.as_str())
        .add("memory", if m.protected { "pkvm" } else { "plain" })
        .add("backing", "memfd-shared")
        .add("content", content.as_str())
        .add("kernel", facts::kernel_release())
        .caps(&probed)
        .add("ram", format!("{:#x}-{:#x}", m.ram.base, m.ram.range().end))
        .add("ram_mib", args.memory_mib)
        .add(
            "image",
            format!("{:#x}-{:#x}", m.loaded.entry, m.loaded.end),
        )
        .add("dtb", format!("{:#x}+{:#x}", m.regs.dtb, m.dtb_len))
        .add("layout", args.options.layout.as_str())
        .add(
            "uart",
            format!("ns16550a@{:#x}", uart_at(args.options.layout).start),
        )
        .add(
            "gic",
            match args.options.layout {
                Layout::Convtest => "none",
                // crosvm's tree names a GICv3 the guest never uses.
                Layout::Crosvm => "described-not-created",
            },
        )
        .add("create_vm_ms", m.create_ms);
    f.emit(&mut out);

    // One watchdog for every boot: a recreated VM has as many vCPUs.
    let runner = Runner::new(
        Duration::from_secs(args.options.vcpu_watchdog_s),
        machine.vcpus.len(),
    )?;
    // crosvm's machine has no word console in its device tree.
    let word_served =
        args.options.console == ConsoleKind::Word && args.options.layout == Layout::Convtest;
    let end = loop {
        let (end, exit_at) = run::run_boot(
            &runner,
            &mut machine.vcpus,
            &machine.ram,
            uart_at(args.options.layout),
            &mut tap,
            word_served,
            &mut out,
        )?;
        // A reset the plan does not expect ends the run, as before.
        let Some(boot) = next_boot(end, &mut reboots) else {
            break end;
        };
        let (next, facts) = guest.reset(machine, boot, reboots.applies(), exit_at)?;
        machine = next;
        let _ = out.write_all(b"\n");
        facts.emit(&mut out);
    };
    // pKVM tears a VM down page by page at EL2 (seconds in the nested
    // lane): the caller does it once the run's end is told (lib.rs).
    Ok((end, Teardown(machine)))
}

/// A finished run's VM, for the caller to drop (and time) once it has told
/// the run's end.
pub struct Teardown(#[expect(dead_code, reason = "held only to be dropped")] Vm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_boots_find_their_index_and_the_policy_in_the_dtb() {
        let plan = boot_plan("tests=conv.*", Content::Preserve, ResetPolicy::Recreate, 2);
        assert_eq!(
            plan,
            "tests=conv.* content=preserve vmm=convtest reset=recreate boot=2"
        );
        let blob = fdt::build(&fdt::Layout {
            ram: convtest_proto::range::MemRange::new(0x8000_0000, 0x9000_0000),
            uart: uart::MMIO,
            word_console: Some(word_console::MMIO),
            bootargs: &plan,
            mpidrs: &[vcpu::kvm_mpidr(0)],
        })
        .unwrap();
        assert!(String::from_utf8_lossy(&blob).contains("reset=recreate boot=2"));
        let first = boot_plan("", Content::Preserve, ResetPolicy::Keep, 0);
        assert_eq!(first, "content=preserve vmm=convtest reset=keep");
    }

    #[test]
    fn only_planned_resets_start_another_boot() {
        let mut r = Reboots::new("reboots=1", ResetPolicy::Keep, false);
        assert_eq!(next_boot(GuestEnd::PowerOff, &mut r), None);
        assert_eq!(next_boot(GuestEnd::Hang, &mut r), None);
        assert_eq!(next_boot(GuestEnd::Reset, &mut r), Some(1));
        assert_eq!(next_boot(GuestEnd::Reset, &mut r), None, "unplanned");
    }

    #[test]
    fn private_is_refused_before_any_vm_exists() {
        let config =
            VmmConfig::from_argv(&["--kernel", "/nonexistent", "--reset-policy", "private"])
                .expect("a VMM argv");
        match run(&config) {
            Err(VmmError::Config(m)) => assert!(m.contains("pKVM gives the host no call"), "{m}"),
            other => panic!("{:?}", other.map(|(end, _)| end)),
        }
    }
}
