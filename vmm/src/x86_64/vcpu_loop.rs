//! The x86 vCPUs' exits. The threads, the stop protocol and the watchdog
//! are vcpus.rs's; this file serves each exit on the thread that got it or
//! turns it into the boot's end. Nothing the guest does ends the run with a
//! VMM error: a request the host cannot carry out is an error answer plus a
//! `serve_error=` fact, an exit the VMM cannot serve is a [`GuestEnd`]
//! named by the closing `end=` fact. Only the setup before the first
//! KVM_RUN (the watchdog, the threads) can fail.
//!
//! ## What the threads share
//!
//! Everything an exit touches lives in one [`Devices`] behind one mutex:
//! guest RAM with its page record, the memory attributes and guest_memfd
//! behind it (a MAP_GPA_RANGE exit from any vCPU converts through
//! `serve`, which flips the record and the host state together), COM1
//! (any vCPU may write THR or read RBR: acks for the host checks queue in
//! the one UART, whichever vCPU reads them), the console tap, the counters
//! and stdout. A thread takes the lock only to serve an exit, never across
//! KVM_RUN, so a vCPU in the guest holds nothing and an exit-free AP costs
//! the others nothing. One lock, not one per part: a conversion and a host
//! check both read the page record, and the console output of an exit must
//! come out in the order of the exits.
//!
//! ## How a boot ends
//!
//! The first exit that ends the boot (power-off, debug exit, reset, an
//! exit the VMM cannot serve, or vCPU 0's watchdog) stops every vCPU
//! (vcpus.rs); each thread's last KVM_RUN completes what its last exit
//! left pending (the port I/O, the hypercall's answer). After the join, the
//! exit code is the ending vCPU's, and a reset the plan expects starts the
//! next boot with every vCPU in its boot state (reset.rs).

use super::super::console::ConsoleTap;
use super::super::facts::Facts;
use super::super::uart16550::Uart16550;
use super::super::vcpus::{self, End, ExitServer, Runner};
use super::super::watchdog;
use super::faults::Faults;
use super::memory::GuestRam;
use super::platform::KvmPlatform;
use super::reset::{Next, Resetter};
use super::serve::{Effect, Served, serve};
use super::timing::{self, ExitTimes, Key};
use super::vm::Vm;
use super::{ports, serial};
use crate::end::{GuestEnd, Unserved};
use crate::error::VmmError;
use kvm_bindings as kb;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::io::Write;
use std::sync::{Mutex, PoisonError};
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
    /// Memory-fault exits that raced a conversion and were re-entered.
    fault_retries: u64,
}

impl Stats {
    fn record(&mut self, s: &Served) {
        self.faulted += u64::from(s.faulted);
        match s.outcome {
            Effect::Rejected(_) => self.rejected += 1,
            Effect::Unchanged(_) => self.unchanged += 1,
            Effect::Converted { pages, .. } => self.conversions += u64::from(pages > 0),
            Effect::Failed { .. } => self.serve_errors += 1,
        }
    }
}

/// The fact line for a request a host operation failed on.
pub fn serve_error_fact(s: &Served) -> Option<Facts> {
    let Effect::Failed { req, pages, error } = &s.outcome else {
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
    match exit {
        VcpuExit::MmioRead(gpa, _) => Unserved::Mmio {
            gpa: *gpa,
            write: false,
        },
        VcpuExit::MmioWrite(gpa, _) => Unserved::Mmio {
            gpa: *gpa,
            write: true,
        },
        VcpuExit::MemoryFault { flags, gpa, size } => Unserved::MemoryFault {
            gpa: *gpa,
            size: *size,
            flags: *flags,
        },
        VcpuExit::Hlt => Unserved::Halt,
        other => {
            let (reason, detail) = vcpus::kvm_exit(other);
            Unserved::Exit { reason, detail }
        }
    }
}

/// What lives across the boots of one run.
#[derive(Default)]
struct RunState {
    com1: Uart16550,
    tap: ConsoleTap,
    stats: Stats,
    times: ExitTimes,
}

/// What an exit may touch: one boot's shared state (see the module doc).
struct Devices<'a> {
    ram: &'a mut GuestRam<KvmPlatform>,
    faults: &'a Faults,
    run: &'a mut RunState,
    out: &'a mut (dyn Write + Send),
    /// Per vCPU, the KVM_EXIT_* and detail word of the exit it had last:
    /// what a triple fault's report names as the vCPU's last exit before
    /// it (SVM loses the registers, see `triple_fault_facts`).
    last: Vec<(u32, u64)>,
}

/// How an exit ended a boot.
#[derive(Clone, Copy, Debug)]
struct Ending {
    end: GuestEnd,
    /// When a reset exit arrived (reset_ns starts there).
    reset_at: Option<Instant>,
    /// The reset was a triple fault (KVM_EXIT_SHUTDOWN), not the guest's
    /// reset port: a crash the guest could not report. With it, the
    /// vCPU's exit before the shutdown (None: it had none this boot).
    triple_fault: Option<Option<(u32, u64)>>,
}

impl Ending {
    fn new(end: GuestEnd) -> Ending {
        Ending {
            end,
            reset_at: None,
            triple_fault: None,
        }
    }

    fn reset(arrived: Instant) -> Ending {
        Ending {
            end: GuestEnd::Reset,
            reset_at: Some(arrived),
            triple_fault: None,
        }
    }
}

/// `triple_fault_vcpu=N exit_before=io:0x3f8 rip=… rsp=… cr2=… cr3=…`:
/// the vCPU that shut down, the exit it had before, and its registers read
/// after the join. Under VMX KVM leaves them at the fault; under SVM they
/// are the reset vector's (svm.c `shutdown_interception` re-INITs the
/// vCPU), which is why the exit before is named too.
fn triple_fault_facts(vcpu: usize, before: Option<(u32, u64)>, fd: &VcpuFd) -> Facts {
    let mut f = Facts::default();
    f.add("triple_fault_vcpu", vcpu).add(
        "exit_before",
        before.map_or_else(
            || "none".to_string(),
            |(r, d)| format!("{}:{d:#x}", watchdog::exit_name(r)),
        ),
    );
    match (fd.get_regs(), fd.get_sregs()) {
        (Ok(r), Ok(sr)) => {
            f.add("rip", format!("{:#x}", r.rip))
                .add("rsp", format!("{:#x}", r.rsp))
                .add("cr2", format!("{:#x}", sr.cr2))
                .add("cr3", format!("{:#x}", sr.cr3));
        }
        _ => {
            f.add("regs", "unreadable");
        }
    }
    f
}

/// One boot's exits, served under the one lock.
struct Exits<'a>(Mutex<Devices<'a>>);

impl ExitServer for Exits<'_> {
    type End = Ending;

    fn serve(
        &self,
        vcpu: usize,
        exit: Result<VcpuExit<'_>, kvm_ioctls::Error>,
        arrived: Instant,
    ) -> Option<Ending> {
        // A poisoned lock (a thread panicked while serving) still hands out
        // the state: the panic ends the run anyway once the threads are
        // joined. Waiting here counts: `arrived` was before the lock, and
        // time waiting for another vCPU's exit is time this one's guest
        // waits too.
        let mut d = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let d = &mut *d;
        let this = exit.as_ref().map_or((u32::MAX, 0), vcpus::kvm_exit);
        let before = d
            .last
            .get_mut(vcpu)
            .map(|l| std::mem::replace(l, this))
            .filter(|&(r, _)| r != u32::MAX);
        let mut fact = None;
        let end = match exit {
            Ok(VcpuExit::IoOut(port, data)) if serial::owns(port) => {
                serial::out(&mut d.run.com1, port, data);
                None
            }
            Ok(VcpuExit::IoOut(port, data)) => match ports::out(port, data) {
                Some(ports::PortEnd::DebugExit(code)) => {
                    Some(Ending::new(GuestEnd::DebugExit(code)))
                }
                Some(ports::PortEnd::Reset) => Some(Ending::reset(arrived)),
                None => None,
            },
            Ok(VcpuExit::IoIn(port, data)) if serial::owns(port) => {
                serial::input(&mut d.run.com1, port, data);
                None
            }
            Ok(VcpuExit::IoIn(_, data)) => {
                // Nothing else is there: a floating bus reads all ones.
                data.fill(0xff);
                None
            }
            Ok(VcpuExit::Hypercall(hc)) => {
                let args = [hc.args[0], hc.args[1], hc.args[2]];
                let served = serve(d.ram, d.faults, hc.nr, args);
                *hc.ret = served.ret;
                let spent = super::host_time::ns_since(arrived);
                if let Some(key) = Key::of(&served, args[2]) {
                    d.run.times.record(key, spent, served.host);
                }
                d.run.stats.record(&served);
                fact = serve_error_fact(&served);
                None
            }
            Ok(VcpuExit::Hlt) => {
                // One vCPU, no interrupt controller: nothing can wake a halted
                // vCPU. (With the in-kernel irqchip KVM keeps HLT to itself.)
                let _ = writeln!(
                    d.out,
                    "\n# convtest-vmm: hang=guest_halted_without_interrupts"
                );
                Some(Ending::new(GuestEnd::Unserved(Unserved::Halt)))
            }
            // A triple fault: what a PC turns into a reset.
            Ok(VcpuExit::Shutdown) => Some(Ending {
                triple_fault: Some(before),
                ..Ending::reset(arrived)
            }),
            // With several vCPUs a vCPU's fault can race another vCPU's
            // conversion. On a KVM_X86_SW_PROTECTED_VM the fault's "private"
            // is not the guest's choice: KVM sets it from the gfn's attributes
            // when the fault begins ("the source of truth for such VMs",
            // arch/x86/kvm/mmu/mmu.c, kvm_mmu_page_fault), then exits if they
            // differ by the time it would map the page (kvm_mmu_faultin_pfn)
            // — only a conversion in between makes them differ. Re-entering
            // takes the attributes afresh. Elsewhere a fault exit is the
            // guest's and ends the run.
            Ok(VcpuExit::MemoryFault { gpa, .. })
                if matches!(d.ram.mode, super::memory::Mode::SwProtected { .. })
                    && d.ram.pages.state(gpa).is_some() =>
            {
                d.run.stats.fault_retries += 1;
                None
            }
            Ok(other) => Some(Ending::new(GuestEnd::Unserved(unserved(&other)))),
            Err(e) => Some(Ending::new(GuestEnd::Unserved(Unserved::RunFailed {
                errno: e.errno(),
            }))),
        };
        // The guest's own output up to this exit first, then the VMM's word.
        d.run.com1.pump(&mut d.run.tap, d.out, &*d.ram);
        if let Some(f) = fact {
            let _ = d.out.write_all(b"\n");
            f.emit(d.out);
        }
        end
    }

    /// RIP and KVM's MP state.
    fn post_mortem(fd: &VcpuFd) -> String {
        let rip = fd
            .get_regs()
            .map_or_else(|_| "?".to_string(), |r| format!("{:#x}", r.rip));
        let mp = fd
            .get_mp_state()
            .map_or_else(|_| "?".to_string(), |s| mp_state_name(s.mp_state));
        format!("rip:{rip},mp_state:{mp}")
    }
}

/// Runs one boot on every vCPU of `m` until a vCPU ends it.
fn run_boot(
    m: &mut Vm,
    runner: &Runner,
    run: &mut RunState,
    out: &mut (dyn Write + Send),
) -> Result<vcpus::Boot<Ending>, VmmError> {
    let exits = Exits(Mutex::new(Devices {
        ram: &mut m.ram,
        faults: &m.faults,
        run,
        out,
        last: vec![(u32::MAX, 0); m.vcpus.len()],
    }));
    runner.boot(m.vcpus.iter_mut().collect(), &exits)
}

fn mp_state_name(s: u32) -> String {
    match s {
        kb::KVM_MP_STATE_RUNNABLE => "runnable".into(),
        kb::KVM_MP_STATE_UNINITIALIZED => "uninitialized".into(),
        kb::KVM_MP_STATE_INIT_RECEIVED => "init_received".into(),
        kb::KVM_MP_STATE_HALTED => "halted".into(),
        kb::KVM_MP_STATE_SIPI_RECEIVED => "sipi_received".into(),
        n => format!("mp_state_{n}"),
    }
}

/// Runs the guest until its end. A reset the plan expects (`resetter`)
/// starts the next boot in place: its output so far written, the UART and
/// the console tap's partial line fresh (a real reset resets the UART; the
/// next boot's first line starts clean), the fact line, and KVM_RUN again
/// on every vCPU under the same watchdog. Counters and exit times cover
/// every boot.
pub(super) fn run_loop(
    mut m: Vm,
    limit: Duration,
    out: &mut (dyn Write + Send),
    resetter: &mut Resetter<'_>,
) -> Result<GuestEnd, VmmError> {
    let vcpus = m.vcpus.len();
    let runner = Runner::new(limit, vcpus)?;
    let mut run = RunState::default();
    let started = Instant::now();
    let mut resets = 0u32;
    let (ending, end_vcpu) = loop {
        let boot = run_boot(&mut m, &runner, &mut run, out)?;
        run.stats.exits += boot.exits.iter().sum::<u64>();
        let ending = match boot.end {
            End::Served(e) => e,
            End::Hang(report) => {
                let _ = out.write_all(b"\n");
                report.emit(out);
                // Where each CPU was, in the guest's own words.
                m.crumb_facts().emit(out);
                Ending::new(GuestEnd::Hang)
            }
        };
        if let Some(before) = ending.triple_fault
            && let Some(fd) = m.vcpus.get(boot.vcpu)
        {
            let _ = out.write_all(b"\n");
            triple_fault_facts(boot.vcpu, before, fd).emit(out);
            // The registers are gone under SVM; the guest's record of
            // where each CPU was is not.
            m.crumb_facts().emit(out);
        }
        if let Some(at) = ending.reset_at {
            match resetter.reset(m, at)? {
                Next::Boot(next, done, parts) => {
                    m = next;
                    resets += 1;
                    run.com1 = Uart16550::default();
                    let (answered, answering) = (run.tap.answered, run.tap.answering);
                    run.tap = ConsoleTap::default();
                    (run.tap.answered, run.tap.answering) = (answered, answering);
                    parts.emit(&done, out);
                    continue;
                }
                Next::End(same) => m = same,
            }
        }
        break (ending, boot.vcpu);
    };
    let end = ending.end;
    let (stats, times, tap) = (&run.stats, &run.times, &run.tap);
    // Before the closing facts, which stay the run's last line.
    times.write_bench(out, end);
    let mut f = Facts::default();
    f.add("exits", stats.exits)
        .add("conversions", stats.conversions)
        .add("unchanged", stats.unchanged)
        .add("rejected", stats.rejected)
        .add("faulted", stats.faulted)
        .add("serve_errors", stats.serve_errors)
        .add("fault_retries", stats.fault_retries)
        .add("host_checks", tap.answered)
        .add("host_check_ms", tap.answering.as_millis())
        .add("resets", resets)
        .add("run_ms", started.elapsed().as_millis());
    times.add_facts(&mut f);
    f.add("vmm_clock_ns", timing::clock_cost_ns());
    if vcpus > 1 {
        f.add("end_vcpu", end_vcpu);
    }
    f.add("end", end);
    let _ = out.write_all(b"\n");
    f.emit(out);
    // The VM (the old one, when an unplanned reset came back) goes last.
    drop(m);
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
            outcome: Effect::Failed {
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
