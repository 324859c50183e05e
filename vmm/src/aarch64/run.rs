//! The arm64 vCPUs' exits. The threads (one per vCPU), the stop protocol
//! and the watchdog are vcpus.rs's; this file serves the exits: the UART on
//! MMIO, stray MMIO (loads read 0, stores are dropped) and PSCI's system
//! events. The secondaries sit in KVM_RUN powered off until the guest's
//! PSCI CPU_ON (answered in the kernel) wakes them.
//!
//! Locking: everything an exit handler changes is behind one mutex, the
//! console (the 16550, the console tap with its host-check answers, the
//! closing counters, the output stream): a request line may be completed by
//! any vCPU's store, and the answer is typed into the one receive FIFO.
//! Guest RAM is shared read-only (its refusal counter is atomic).
//!
//! The end: PSCI SYSTEM_OFF or SYSTEM_RESET from any vCPU (KVM has then put
//! every vCPU to sleep, psci.c `kvm_prepare_system_event`), an exit the VMM
//! cannot serve (a VMM error naming it), or vCPU 0's watchdog, whose report
//! names every vCPU's state, KVM's power state (KVM_GET_MP_STATE: stopped =
//! never started or off) and PC.

use super::super::console::ConsoleTap;
use super::super::facts::Facts;
use super::super::stream::ConsoleStream;
use super::super::uart16550::Uart16550;
use super::super::vcpus::{End, ExitServer, Runner};
use super::memory::GuestRam;
use super::word_console::{self, WordConsole};
use super::{uart, vcpu};
use crate::end::GuestEnd;
use crate::error::VmmError;
use convtest_proto::range::MemRange;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// KVM_SYSTEM_EVENT_* (uapi kvm.h).
const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const SYSTEM_EVENT_RESET: u32 = 2;

/// Counters for the closing facts line.
#[derive(Default)]
struct Stats {
    uart_exits: u64,
    /// MMIO outside any device: loads read 0, stores are dropped.
    stray_mmio: u64,
    first_stray: Option<u64>,
    /// Time spent passing console output on and answering host checks.
    tap: Duration,
    first_output_ms: Option<u128>,
}

/// Behind the one mutex: the console devices, their tap and the stream.
struct Console<'a> {
    uart: Uart16550,
    word: WordConsole,
    tap: &'a mut ConsoleTap,
    out: &'a mut dyn ConsoleStream,
    stats: Stats,
}

/// How an exit ended the boot.
enum Ending {
    /// Power-off or reset, and when its exit came back (a reset's cost is
    /// counted from there).
    Guest(GuestEnd, Instant),
    /// An exit the VMM does not serve; the PC is read once all are stopped.
    Unhandled(String),
    Failed(VmmError),
}

/// One boot's exits.
struct Exits<'a> {
    epoch: Instant,
    console: Mutex<Console<'a>>,
    ram: &'a GuestRam,
    /// The UART's MMIO window in this layout.
    uart_at: MemRange,
}

impl<'a> Exits<'a> {
    fn console(&self) -> std::sync::MutexGuard<'_, Console<'a>> {
        // A panicking vCPU thread ends the run anyway; its data stays usable.
        self.console.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a UART access: new output to the tap (which answers host
    /// checks from guest RAM) and pending acks into the receive FIFO.
    fn pump(&self, c: &mut Console<'_>) {
        let t = Instant::now();
        let Console {
            uart,
            tap,
            out,
            stats,
            ..
        } = c;
        if uart.pump(tap, &mut **out, self.ram) {
            self.printed(stats, t);
        }
    }

    fn printed(&self, stats: &mut Stats, since: Instant) {
        stats
            .first_output_ms
            .get_or_insert_with(|| self.epoch.elapsed().as_millis());
        stats.tap += since.elapsed();
    }

    /// A store to the word console: its output through the same tap.
    fn word_write(&self, addr: u64, data: &[u8]) {
        let t = Instant::now();
        let mut c = self.console();
        let Console {
            word,
            tap,
            out,
            stats,
            ..
        } = &mut *c;
        if word.write(addr, data, tap, &mut **out, self.ram) {
            self.printed(stats, t);
        }
    }

    fn stray(&self, addr: u64) {
        let mut c = self.console();
        c.stats.stray_mmio += 1;
        c.stats.first_stray.get_or_insert(addr);
    }
}

impl ExitServer for Exits<'_> {
    type End = Ending;

    fn serve(
        &self,
        vcpu: usize,
        exit: Result<VcpuExit<'_>, kvm_ioctls::Error>,
        arrived: Instant,
    ) -> Option<Ending> {
        match exit {
            Ok(VcpuExit::MmioWrite(addr, data)) if self.uart_at.contains(addr) => {
                let mut c = self.console();
                c.stats.uart_exits += 1;
                uart::write(&mut c.uart, addr - self.uart_at.start, data);
                self.pump(&mut c);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) if self.uart_at.contains(addr) => {
                let mut c = self.console();
                c.stats.uart_exits += 1;
                uart::read(&mut c.uart, addr - self.uart_at.start, data);
                self.pump(&mut c);
                None
            }
            Ok(VcpuExit::MmioWrite(addr, data)) if word_console::owns(addr) => {
                self.word_write(addr, data);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) if word_console::owns(addr) => {
                self.console().word.read(addr, data);
                None
            }
            Ok(VcpuExit::MmioWrite(addr, _)) => {
                self.stray(addr);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                data.fill(0);
                self.stray(addr);
                None
            }
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_SHUTDOWN, _)) => {
                Some(Ending::Guest(GuestEnd::PowerOff, arrived))
            }
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_RESET, _)) => {
                Some(Ending::Guest(GuestEnd::Reset, arrived))
            }
            Ok(VcpuExit::SystemEvent(t, data)) => Some(Ending::Failed(VmmError::UnhandledExit(
                format!("vCPU {vcpu}: KVM_EXIT_SYSTEM_EVENT type {t} data {data:x?}"),
            ))),
            Ok(other) => Some(Ending::Unhandled(format!("{other:?}"))),
            Err(source) => Some(Ending::Failed(VmmError::Kvm {
                call: "KVM_RUN",
                source,
            })),
        }
    }

    /// PC and KVM's power state (KVM_GET_MP_STATE). A protected vCPU's PC
    /// is what pKVM last copied back to the host, if any.
    fn post_mortem(fd: &VcpuFd) -> String {
        let mp = match fd.get_mp_state().map(|m| m.mp_state) {
            Ok(kvm_bindings::KVM_MP_STATE_RUNNABLE) => "runnable".to_string(),
            Ok(kvm_bindings::KVM_MP_STATE_STOPPED) => "stopped".to_string(),
            Ok(kvm_bindings::KVM_MP_STATE_SUSPENDED) => "suspended".to_string(),
            Ok(other) => format!("mp_state_{other}"),
            Err(e) => format!("mp_state_errno_{}", e.errno()),
        };
        format!("pc:{},mp_state:{mp}", pc(fd))
    }
}

fn pc(fd: &VcpuFd) -> String {
    vcpu::get(fd, vcpu::PC).map_or("?".into(), |p| format!("{p:#x}"))
}

/// Runs one boot on every vCPU to its end; also returns when the exit that
/// ended it came back (a reset's cost is counted from there). `tap` lives
/// across the run's boots: its host-check counts are the run's.
pub fn run_boot(
    runner: &Runner,
    vcpus: &mut [vcpu::Vcpu],
    ram: &GuestRam,
    uart_at: MemRange,
    tap: &mut ConsoleTap,
    word_served: bool,
    out: &mut dyn ConsoleStream,
) -> Result<(GuestEnd, Instant), VmmError> {
    let epoch = Instant::now();
    tap.new_boot();
    let exits = Exits {
        epoch,
        console: Mutex::new(Console {
            uart: Uart16550::default(),
            word: WordConsole::new(word_served),
            tap,
            out,
            stats: Stats::default(),
        }),
        ram,
        uart_at,
    };
    let boot = runner.boot(vcpus.iter_mut().map(|v| &mut v.fd).collect(), &exits)?;
    let c = exits
        .console
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let out = c.out;
    let (end, at) = match boot.end {
        End::Served(Ending::Guest(end, at)) => (end, at),
        End::Served(Ending::Failed(e)) => return Err(e),
        End::Served(Ending::Unhandled(what)) => {
            let pc = vcpus.get(boot.vcpu).map_or("?".into(), |v| pc(&v.fd));
            return Err(VmmError::UnhandledExit(format!(
                "vCPU {}: {what} at pc {pc}",
                boot.vcpu
            )));
        }
        End::Hang(report) => {
            let _ = out.write_all(b"\n");
            report.emit(out);
            (GuestEnd::Hang, Instant::now())
        }
    };
    let exits = boot.exits;
    let total: u64 = exits.iter().sum();
    let run_ms = epoch.elapsed().as_millis();
    let stats = c.stats;
    let mut f = Facts::default();
    f.add("exits", total)
        .add(
            "vcpu_exits",
            exits
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .add("uart_exits", stats.uart_exits)
        .add("stray_mmio", stats.stray_mmio);
    if let Some(a) = stats.first_stray {
        f.add("first_stray_mmio", format!("{a:#x}"));
    }
    c.tap.add_facts(&mut f);
    f.add("word_console", c.word.state())
        .add("word_console_asked", c.word.asked)
        .add("word_console_exits", c.word.exits);
    f.add("forged_lines", out.forged())
        .add("tap_ms", stats.tap.as_millis())
        .add("host_copy_refusals", ram.refusals())
        .add(
            "first_output_ms",
            stats.first_output_ms.map_or("-".into(), |v| v.to_string()),
        )
        .add("run_ms", run_ms)
        .add(
            "us_per_exit",
            (run_ms * 1000).checked_div(u128::from(total)).unwrap_or(0),
        )
        .add("end", format!("{end:?}"))
        .add("end_vcpu", boot.vcpu);
    let _ = out.write_all(b"\n");
    f.emit(out);
    Ok((end, at))
}
