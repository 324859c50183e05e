//! The vCPU's run loop: one KVM_RUN after another, each exit served or
//! turned into the run's end. Nothing the guest does ends it with a VMM
//! error: a request the host cannot carry out is an error answer plus a
//! `serve_error=` fact, an exit the VMM cannot serve is a [`GuestEnd`]
//! named by the closing `end=` fact. Only the setup before the first
//! KVM_RUN (the watchdog) can fail.

use super::super::console::ConsoleTap;
use super::super::facts::Facts;
use super::super::uart16550::Uart16550;
use super::super::watchdog::Watchdog;
use super::super::{GuestEnd, Unserved, VmmError};
use super::reset::{Next, Resetter};
use super::serve::{Outcome, Served, serve};
use super::timing::{self, ExitTimes, Key};
use super::{Vm, ports, serial};
use kvm_bindings as kb;
use kvm_ioctls::VcpuExit;
use std::io::Write;
use std::time::{Duration, Instant};

/// Counters for the closing facts line.
#[derive(Default)]
struct Stats {
    exits: u64,
    /// Requests that changed at least one page's state.
    conversions: u64,
    /// Requests that changed none: every page already there.
    unchanged: u64,
    rejected: u64,
    faulted: u64,
    serve_errors: u64,
}

impl Stats {
    fn record(&mut self, s: &Served) {
        self.faulted += u64::from(s.faulted);
        match s.outcome {
            Outcome::Rejected(_) => self.rejected += 1,
            Outcome::Unchanged(_) => self.unchanged += 1,
            Outcome::Converted { pages, .. } => self.conversions += u64::from(pages > 0),
            Outcome::Failed { .. } => self.serve_errors += 1,
        }
    }
}

/// The fact line for a request a host operation failed on.
pub fn serve_error_fact(s: &Served) -> Option<Facts> {
    let Outcome::Failed { req, pages, error } = &s.outcome else {
        return None;
    };
    let mut f = Facts::default();
    f.add("serve_error", error.call())
        .add(
            "errno",
            error
                .errno()
                .map_or_else(|| "-".to_string(), |e| e.to_string()),
        )
        .add("request", format!("{}:{}", req.range, req.state.as_str()))
        .add("converted_pages", pages)
        .add("answer", format!("{:#x}", s.ret));
    Some(f)
}

/// What an exit the VMM does not serve is, for the `end=` fact.
fn unserved(exit: &VcpuExit<'_>) -> Unserved {
    let (reason, detail) = match exit {
        VcpuExit::MmioRead(gpa, _) => {
            return Unserved::Mmio {
                gpa: *gpa,
                write: false,
            };
        }
        VcpuExit::MmioWrite(gpa, _) => {
            return Unserved::Mmio {
                gpa: *gpa,
                write: true,
            };
        }
        VcpuExit::MemoryFault { flags, gpa, size } => {
            return Unserved::MemoryFault {
                gpa: *gpa,
                size: *size,
                flags: *flags,
            };
        }
        VcpuExit::Hlt => return Unserved::Halt,
        VcpuExit::FailEntry(why, _cpu) => (kb::KVM_EXIT_FAIL_ENTRY, *why),
        VcpuExit::SystemEvent(kind, _) => (kb::KVM_EXIT_SYSTEM_EVENT, u64::from(*kind)),
        VcpuExit::IoapicEoi(vector) => (kb::KVM_EXIT_IOAPIC_EOI, u64::from(*vector)),
        VcpuExit::Unsupported(r) => (*r, 0),
        VcpuExit::Unknown => (kb::KVM_EXIT_UNKNOWN, 0),
        VcpuExit::Exception => (kb::KVM_EXIT_EXCEPTION, 0),
        VcpuExit::Debug(_) => (kb::KVM_EXIT_DEBUG, 0),
        VcpuExit::IrqWindowOpen => (kb::KVM_EXIT_IRQ_WINDOW_OPEN, 0),
        VcpuExit::Intr => (kb::KVM_EXIT_INTR, 0),
        VcpuExit::Nmi => (kb::KVM_EXIT_NMI, 0),
        VcpuExit::InternalError => (kb::KVM_EXIT_INTERNAL_ERROR, 0),
        VcpuExit::Watchdog => (kb::KVM_EXIT_WATCHDOG, 0),
        VcpuExit::X86Rdmsr(m) => (kb::KVM_EXIT_X86_RDMSR, u64::from(m.index)),
        VcpuExit::X86Wrmsr(m) => (kb::KVM_EXIT_X86_WRMSR, u64::from(m.index)),
        VcpuExit::IoOut(port, _) | VcpuExit::IoIn(port, _) => (kb::KVM_EXIT_IO, u64::from(*port)),
        VcpuExit::Hypercall(h) => (kb::KVM_EXIT_HYPERCALL, h.nr),
        VcpuExit::Shutdown => (kb::KVM_EXIT_SHUTDOWN, 0),
        // The rest cannot happen on x86 (s390, PPC, Hyper-V/Xen exits
        // this VMM never enables); still never a panic.
        _ => (u32::MAX, 0),
    };
    Unserved::Exit { reason, detail }
}

/// Runs the guest until its end. A reset the plan expects (`resetter`)
/// starts the next boot in place: its output so far written, the UART and
/// the console tap's partial line fresh (a real reset resets the UART; the
/// next boot's first line starts clean), the fact line, and KVM_RUN again
/// under the same watchdog. Counters and exit times cover every boot.
pub(super) fn run_loop(
    mut m: Vm,
    limit: Duration,
    out: &mut dyn Write,
    resetter: &mut Resetter<'_>,
) -> Result<GuestEnd, VmmError> {
    let watchdog = Watchdog::start_reporting(limit)?;
    let mut com1 = Uart16550::default();
    let mut tap = ConsoleTap::default();
    let mut stats = Stats::default();
    let mut times = ExitTimes::default();
    let started = Instant::now();
    let mut resets = 0u32;
    let end = loop {
        if !watchdog.enter() {
            Watchdog::report_hang(out, limit);
            break GuestEnd::Hang;
        }
        let exit = m.vcpu.run();
        watchdog.leave();
        stats.exits += 1;
        let mut fact = None;
        // When a reset exit arrived (reset_ns starts there).
        let mut reset_at = None;
        let end = match exit {
            Ok(VcpuExit::IoOut(port, data)) if serial::owns(port) => {
                serial::out(&mut com1, port, data);
                None
            }
            Ok(VcpuExit::IoOut(port, data)) => match ports::out(port, data) {
                Some(ports::PortEnd::DebugExit(code)) => Some(GuestEnd::DebugExit(code)),
                Some(ports::PortEnd::Reset) => {
                    reset_at = Some(Instant::now());
                    Some(GuestEnd::Reset)
                }
                None => None,
            },
            Ok(VcpuExit::IoIn(port, data)) if serial::owns(port) => {
                serial::input(&mut com1, port, data);
                None
            }
            Ok(VcpuExit::IoIn(_, data)) => {
                // Nothing else is there: a floating bus reads all ones.
                data.fill(0xff);
                None
            }
            Ok(VcpuExit::Hypercall(hc)) => {
                // The exit's arrival: only the watchdog's atomic store and
                // the match on the exit came since KVM_RUN returned.
                let arrived = Instant::now();
                let args = [hc.args[0], hc.args[1], hc.args[2]];
                let served = serve(&mut m.ram, &m.faults, hc.nr, args);
                *hc.ret = served.ret;
                let spent = timing::ns_since(arrived);
                if let Some(key) = Key::of(&served, args[2]) {
                    times.record(key, spent, served.host);
                }
                stats.record(&served);
                fact = serve_error_fact(&served);
                None
            }
            Ok(VcpuExit::Hlt) => {
                // No interrupt controller: nothing can wake a halted vCPU.
                let _ = writeln!(
                    out,
                    "\n# convtest-vmm: hang=guest_halted_without_interrupts"
                );
                Some(GuestEnd::Unserved(Unserved::Halt))
            }
            // A triple fault: what a PC turns into a reset.
            Ok(VcpuExit::Shutdown) => {
                reset_at = Some(Instant::now());
                Some(GuestEnd::Reset)
            }
            Ok(other) => Some(GuestEnd::Unserved(unserved(&other))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                let fired = watchdog.fired();
                if fired {
                    Watchdog::report_hang(out, limit);
                }
                fired.then_some(GuestEnd::Hang)
            }
            Err(e) => Some(GuestEnd::Unserved(Unserved::RunFailed { errno: e.errno() })),
        };
        // The guest's own output up to this exit first, then the VMM's word.
        com1.pump(&mut tap, out, &m.ram);
        if let Some(f) = fact {
            let _ = out.write_all(b"\n");
            f.emit(out);
        }
        if let Some(at) = reset_at {
            match resetter.reset(m, at)? {
                Next::Boot(next, done, parts) => {
                    m = next;
                    resets += 1;
                    com1 = Uart16550::default();
                    let answered = tap.answered;
                    tap = ConsoleTap::default();
                    tap.answered = answered;
                    parts.emit(&done, out);
                    continue;
                }
                Next::End(same) => m = same,
            }
        }
        if let Some(e) = end {
            break e;
        }
    };
    // Before the closing facts, which stay the run's last line.
    times.write_bench(out, end);
    let mut f = Facts::default();
    f.add("exits", stats.exits)
        .add("conversions", stats.conversions)
        .add("unchanged", stats.unchanged)
        .add("rejected", stats.rejected)
        .add("faulted", stats.faulted)
        .add("serve_errors", stats.serve_errors)
        .add("host_checks", tap.answered)
        .add("resets", resets)
        .add("run_ms", started.elapsed().as_millis());
    times.add_facts(&mut f);
    f.add("vmm_clock_ns", timing::clock_cost_ns())
        .add("end", end);
    let _ = out.write_all(b"\n");
    f.emit(out);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::super::hypercall::{RET_EIO, Request};
    use super::super::platform::PlatformError;
    use super::*;
    use convtest_proto::range::MemRange;
    use convtest_proto::tracker::Target;

    #[test]
    fn a_failed_request_is_one_fact_line_naming_the_call_and_errno() {
        let s = Served {
            ret: RET_EIO,
            outcome: Outcome::Failed {
                req: Request {
                    range: MemRange::new(0x200000, 0x202000),
                    state: Target::Shared,
                },
                pages: 1,
                error: PlatformError::Os {
                    call: "madvise(MADV_DONTNEED)",
                    errno: libc::ENOMEM,
                },
            },
            faulted: false,
            host: Default::default(),
        };
        assert_eq!(
            serve_error_fact(&s).unwrap().line(),
            "# convtest-vmm: serve_error=madvise(MADV_DONTNEED) errno=12 \
             request=[0x200000-0x202000):shared converted_pages=1 answer=0xfffffffffffffffb\n"
        );
    }

    #[test]
    fn unserved_exits_name_themselves_in_one_word() {
        let e = GuestEnd::Unserved(unserved(&VcpuExit::MemoryFault {
            flags: 8,
            gpa: 0x1ff000,
            size: 0x1000,
        }));
        assert_eq!(
            e.to_string(),
            "memory_fault(gpa:0x1ff000,size:0x1000,flags:0x8,access:private)"
        );
        assert_eq!(e.exit_code(), 0x7f);
        let e = GuestEnd::Unserved(unserved(&VcpuExit::FailEntry(0x80000021, 0)));
        assert_eq!(e.to_string(), "exit(reason:9,detail:0x80000021)");
        assert_eq!(GuestEnd::Unserved(Unserved::Halt).exit_code(), 3);
        assert_eq!(
            GuestEnd::Unserved(Unserved::RunFailed { errno: 14 }).to_string(),
            "kvm_run_failed(errno:14)"
        );
        assert_eq!(
            GuestEnd::Unserved(unserved(&VcpuExit::MmioWrite(0xfee0_0000, &[0; 4]))).to_string(),
            "mmio_write(gpa:0xfee00000)"
        );
    }
}
