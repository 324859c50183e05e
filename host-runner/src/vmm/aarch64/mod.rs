//! The aarch64 VMM: an arm64 Image on one vCPU with a generated device tree,
//! a 16550 on MMIO, PSCI power-off/reset, as a pKVM protected VM when the
//! host runs pKVM.
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
pub mod uart;
pub mod vcpu;

use super::console::ConsoleTap;
use super::facts::{self, Facts};
use super::uart16550::Uart16550;
use super::watchdog::Watchdog;
use super::{GuestEnd, VmmError};
use crate::cli::{ContentArg, VmTypeArg, VmmArgs};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use memory::GuestRam;
use std::io::Write;
use std::time::{Duration, Instant};

/// KVM_VM_TYPE_ARM_PROTECTED (uapi kvm.h): a pKVM protected VM.
const VM_TYPE_ARM_PROTECTED: u64 = 1 << 31;
/// KVM_SYSTEM_EVENT_* (uapi kvm.h).
const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const SYSTEM_EVENT_RESET: u32 = 2;

/// Declared in this order so the vCPU and VM fds close before the memory
/// they map is unmapped.
struct Vm {
    vcpu: VcpuFd,
    #[allow(dead_code, reason = "held so the VM fd closes before RAM is unmapped")]
    vm: VmFd,
    ram: GuestRam,
}

/// Creates the VM; true when it is a protected one. `auto` falls back to a
/// normal VM only when the host refuses the type (EINVAL: not in pKVM mode).
fn create_vm(kvm: &Kvm, asked: VmTypeArg) -> Result<(VmFd, bool), VmmError> {
    match asked {
        VmTypeArg::Normal => Ok((
            kvm.create_vm_with_type(0)
                .map_err(VmmError::kvm("KVM_CREATE_VM"))?,
            false,
        )),
        VmTypeArg::Protected => kvm
            .create_vm_with_type(VM_TYPE_ARM_PROTECTED)
            .map(|vm| (vm, true))
            .map_err(|e| {
                VmmError::Config(format!(
                    "--vm-type protected: KVM_CREATE_VM(KVM_VM_TYPE_ARM_PROTECTED) failed: {e}; \
                     protected VMs need a host kernel running pKVM (booted with \
                     kvm-arm.mode=protected)"
                ))
            }),
        VmTypeArg::Auto => match kvm.create_vm_with_type(VM_TYPE_ARM_PROTECTED) {
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
fn choose_content(asked: Option<ContentArg>) -> Result<ContentArg, VmmError> {
    match asked {
        Some(ContentArg::Zero) => Err(VmmError::Config(
            "--content zero: on arm64 the guest's conversions never reach the VMM (pKVM answers \
             MEM_SHARE/MEM_UNSHARE at EL2), so nothing can clear a page; the content is what \
             pKVM leaves (preserve)"
                .into(),
        )),
        _ => Ok(ContentArg::Preserve),
    }
}

pub fn run(args: &VmmArgs) -> Result<GuestEnd, VmmError> {
    let kvm = Kvm::new().map_err(VmmError::kvm("open /dev/kvm"))?;
    let content = choose_content(args.vmm.content)?;
    let image = std::fs::read(&args.kernel).map_err(|source| VmmError::Read {
        path: args.kernel.clone(),
        source,
    })?;
    let t_create = Instant::now();
    let (vm, protected) = create_vm(&kvm, args.vmm.vm_type)?;
    let create_ms = t_create.elapsed().as_millis();

    let size = u64::from(args.memory) << 20;
    let ram = GuestRam::new(&vm, size)?;
    // The DTB in the last 2 MiB of RAM, the Image at the start.
    let dtb_at = ram.range().end - fdt::FDT_MAX;
    let loaded = image::load(&args.kernel, &image, &ram, ram.base, dtb_at)?;
    let bootargs = format!("{} content={}", args.cmdline.trim(), content.as_str());
    let blob = fdt::build(&fdt::Layout {
        ram: ram.range(),
        uart: uart::MMIO,
        bootargs: bootargs.trim_start(),
    })?;
    ram.load(dtb_at, &blob)?;
    let vcpu = vcpu::boot_vcpu(&vm, loaded.entry, dtb_at)?;

    let probed = [
        facts::probe(&kvm, facts::cap::ARM_VM_IPA_SIZE),
        facts::probe(&vm, facts::cap::GUEST_MEMFD),
        facts::probe(&vm, facts::cap::GUEST_MEMFD_FLAGS),
    ];
    let mut out = std::io::stdout().lock();
    let mut f = Facts::default();
    f.add("arch", "aarch64")
        .add("vm_type", if protected { "protected" } else { "normal" })
        .add("vm_type_asked", args.vmm.vm_type.as_str())
        .add("memory", if protected { "pkvm" } else { "plain" })
        .add("backing", "memfd-shared")
        .add("content", content.as_str())
        .add("kernel", facts::kernel_release())
        .add(
            "caps",
            facts::caps(&probed.map(|p| (p.cap.number, p.value))),
        )
        .caps(&probed)
        .add("ram", format!("{:#x}-{:#x}", ram.base, ram.range().end))
        .add("ram_mib", args.memory)
        .add("image", format!("{:#x}-{:#x}", loaded.entry, loaded.end))
        .add("dtb", format!("{dtb_at:#x}+{:#x}", blob.len()))
        .add("uart", format!("ns16550a@{:#x}", uart::MMIO.start))
        .add("gic", "none")
        .add("create_vm_ms", create_ms);
    f.emit(&mut out);

    let mut machine = Vm { vcpu, vm, ram };
    let limit = Duration::from_secs(args.vmm.vcpu_watchdog);
    let end = run_loop(&mut machine, limit, &mut out)?;
    // pKVM tears a VM down page by page at EL2 (seconds in the nested lane):
    // worth its own number.
    let t_drop = Instant::now();
    drop(machine);
    let mut f = Facts::default();
    f.add("teardown_ms", t_drop.elapsed().as_millis());
    f.emit(&mut out);
    Ok(end)
}

/// Counters for the closing facts line.
#[derive(Default)]
struct Stats {
    exits: u64,
    uart_exits: u64,
    /// MMIO outside any device: loads read 0, stores are dropped.
    stray_mmio: u64,
    first_stray: Option<u64>,
    /// Time spent passing console output on and answering host checks.
    tap: Duration,
}

fn run_loop(m: &mut Vm, limit: Duration, out: &mut dyn Write) -> Result<GuestEnd, VmmError> {
    let watchdog = Watchdog::start_reporting(limit)?;
    let mut uart = Uart16550::default();
    let mut tap = ConsoleTap::default();
    let mut stats = Stats::default();
    let mut first_output_ms: Option<u128> = None;
    let started = Instant::now();
    let end = loop {
        if !watchdog.enter() {
            Watchdog::report_hang(out, limit);
            break GuestEnd::Hang;
        }
        let exit = m.vcpu.run();
        watchdog.leave();
        stats.exits += 1;
        let end = match exit {
            Ok(VcpuExit::MmioWrite(addr, data)) if uart::owns(addr) => {
                stats.uart_exits += 1;
                uart::write(&mut uart, addr, data);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) if uart::owns(addr) => {
                stats.uart_exits += 1;
                uart::read(&mut uart, addr, data);
                None
            }
            Ok(VcpuExit::MmioWrite(addr, _)) => {
                stats.stray_mmio += 1;
                stats.first_stray.get_or_insert(addr);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                stats.stray_mmio += 1;
                stats.first_stray.get_or_insert(addr);
                data.fill(0);
                None
            }
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_SHUTDOWN, _)) => Some(GuestEnd::PowerOff),
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_RESET, _)) => Some(GuestEnd::Reset),
            Ok(VcpuExit::SystemEvent(t, data)) => {
                return Err(VmmError::UnhandledExit(format!(
                    "KVM_EXIT_SYSTEM_EVENT type {t} data {data:x?}"
                )));
            }
            Ok(other) => {
                let what = format!("{other:?}");
                let pc = vcpu::get(&m.vcpu, vcpu::PC);
                return Err(VmmError::UnhandledExit(format!(
                    "{what} at pc {}",
                    pc.map_or("?".into(), |p| format!("{p:#x}"))
                )));
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                let fired = watchdog.fired();
                if fired {
                    Watchdog::report_hang(out, limit);
                }
                fired.then_some(GuestEnd::Hang)
            }
            Err(source) => {
                return Err(VmmError::Kvm {
                    call: "KVM_RUN",
                    source,
                });
            }
        };
        let t = Instant::now();
        if uart.pump(&mut tap, out, &m.ram) {
            first_output_ms.get_or_insert_with(|| started.elapsed().as_millis());
            stats.tap += t.elapsed();
        }
        if let Some(e) = end {
            break e;
        }
    };
    let run_ms = started.elapsed().as_millis();
    let mut f = Facts::default();
    f.add("exits", stats.exits)
        .add("uart_exits", stats.uart_exits)
        .add("stray_mmio", stats.stray_mmio);
    if let Some(a) = stats.first_stray {
        f.add("first_stray_mmio", format!("{a:#x}"));
    }
    f.add("host_checks", tap.answered)
        .add("tap_ms", stats.tap.as_millis())
        .add("host_copy_refusals", m.ram.refusals())
        .add(
            "first_output_ms",
            first_output_ms.map_or("-".into(), |v| v.to_string()),
        )
        .add("run_ms", run_ms)
        .add(
            "us_per_exit",
            (run_ms * 1000)
                .checked_div(u128::from(stats.exits))
                .unwrap_or(0),
        )
        .add("end", format!("{end:?}"));
    let _ = out.write_all(b"\n");
    f.emit(out);
    Ok(end)
}
