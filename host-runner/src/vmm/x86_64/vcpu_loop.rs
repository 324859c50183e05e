//! The vCPUs' run loops: one thread per vCPU (vCPU 0 on the caller's
//! thread), each one KVM_RUN after another, each exit served by the thread
//! that got it or turned into the run's end. Nothing the guest does ends
//! the run with a VMM error: a request the host cannot carry out is an error
//! answer plus a `serve_error=` fact, an exit the VMM cannot serve is a
//! [`GuestEnd`] named by the closing `end=` fact. Only the setup before the
//! first KVM_RUN (the watchdog, the threads) can fail.
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
//! The first vCPU whose exit ends the run (power-off, debug exit, reset,
//! an exit the VMM cannot serve, or vCPU 0's watchdog) records it
//! ([`Boot::finish`]): every vCPU's `immediate_exit` is set and every
//! thread inside KVM_RUN is signalled ([`Watchdog::stop_all`]). Each thread
//! then enters KVM_RUN once more, which with `immediate_exit` set runs no
//! guest code: KVM completes what the thread's last exit left pending (the
//! port I/O, the hypercall's answer) and returns EINTR; the thread leaves.
//! After the join, the exit code is the recorded vCPU's, and a reset the plan
//! expects starts the next boot with every vCPU in its boot state.

use super::super::console::ConsoleTap;
use super::super::facts::Facts;
use super::super::uart16550::Uart16550;
use super::super::watchdog::{self, VcpuState, Watchdog};
use super::super::{GuestEnd, Unserved, VmmError};
use super::faults::Faults;
use super::memory::GuestRam;
use super::platform::KvmPlatform;
use super::reset::{Next, Resetter};
use super::serve::{Outcome, Served, serve};
use super::timing::{self, ExitTimes, Key};
use super::{Vm, ports, serial};
use kvm_bindings as kb;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
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

/// KVM_EXIT_* and its first detail word, for the `end=` fact and the
/// watchdog's last-exit record.
fn reason(exit: &VcpuExit<'_>) -> (u32, u64) {
    match exit {
        VcpuExit::MmioRead(gpa, _) | VcpuExit::MmioWrite(gpa, _) => (kb::KVM_EXIT_MMIO, *gpa),
        VcpuExit::MemoryFault { gpa, .. } => (kb::KVM_EXIT_MEMORY_FAULT, *gpa),
        VcpuExit::Hlt => (kb::KVM_EXIT_HLT, 0),
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
    }
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
            let (reason, detail) = reason(other);
            Unserved::Exit { reason, detail }
        }
    }
}

/// What KVM_RUN returned, as the watchdog records it.
fn run_result(r: &Result<VcpuExit<'_>, kvm_ioctls::Error>) -> u32 {
    match r {
        Ok(exit) => reason(exit).0,
        Err(e) if e.errno() == libc::EINTR => kb::KVM_EXIT_INTR,
        Err(e) if e.errno() == libc::EAGAIN => watchdog::EXIT_EAGAIN,
        Err(_) => watchdog::EXIT_FAILED,
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
}

/// The exit that ended a boot.
#[derive(Clone, Copy, Debug)]
struct Ending {
    vcpu: usize,
    end: GuestEnd,
    /// When a reset exit arrived (reset_ns starts there).
    reset_at: Option<Instant>,
}

impl Ending {
    fn new(vcpu: usize, end: GuestEnd) -> Ending {
        Ending {
            vcpu,
            end,
            reset_at: None,
        }
    }
}

/// One vCPU's `kvm_run.immediate_exit`, settable from any thread.
struct ImmediateExit(*mut u8);

// SAFETY: the pointer is into the vCPU's kvm_run page, which lives as long
// as its VcpuFd, which outlives every Boot (run_boot borrows the fds for
// the Boot's whole life); the byte is only stored to atomically, and KVM
// only reads it (at KVM_RUN's start).
unsafe impl Send for ImmediateExit {}
// SAFETY: as for Send: every access is an atomic store.
unsafe impl Sync for ImmediateExit {}

impl ImmediateExit {
    /// Clears the vCPU's flag (a new boot) and keeps a pointer to it.
    fn of(vcpu: &mut VcpuFd) -> ImmediateExit {
        vcpu.set_kvm_immediate_exit(0);
        ImmediateExit(&raw mut vcpu.get_kvm_run().immediate_exit)
    }

    fn set(&self) {
        // SAFETY: see the Send impl: a live, aligned (u8) byte of the
        // mmap'd kvm_run, shared with the kernel, accessed only atomically
        // by this process while the Boot lives (kvm-ioctls' run() reads
        // other fields of the page; nothing else writes this one).
        unsafe { AtomicU8::from_ptr(self.0) }.store(1, Ordering::SeqCst);
    }
}

/// What one boot's vCPU threads share.
struct Boot<'a> {
    dev: Mutex<Devices<'a>>,
    ending: Mutex<Option<Ending>>,
    stopping: AtomicBool,
    immediate: Vec<ImmediateExit>,
    watchdog: &'a Watchdog,
}

impl<'a> Boot<'a> {
    /// A poisoned lock (a thread panicked while serving) still hands out
    /// the state: the panic ends the run anyway once the threads are joined.
    fn devices(&self) -> MutexGuard<'_, Devices<'a>> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the boot's end (the first one counts) and stops every vCPU.
    fn finish(&self, e: Ending) {
        {
            let mut ending = self.ending.lock().unwrap_or_else(|e| e.into_inner());
            if ending.is_none() {
                *ending = Some(e);
            }
        }
        self.stop();
    }

    fn stop(&self) {
        for i in &self.immediate {
            i.set();
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.watchdog.stop_all();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Stops the other vCPUs when a vCPU thread unwinds (a VMM bug): the scope
/// would otherwise wait for them forever before passing the panic on.
struct StopOnPanic<'a, 'b>(&'a Boot<'b>);

impl Drop for StopOnPanic<'_, '_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.stop();
        }
    }
}

/// One vCPU's thread: KVM_RUN, serve, again, until the boot is over.
/// Returns how many exits it served.
fn run_vcpu(id: usize, vcpu: &mut VcpuFd, b: &Boot<'_>) -> u64 {
    let watch = b.watchdog.attach(id);
    let _unwind = StopOnPanic(b);
    let mut exits = 0;
    loop {
        // Once the boot is over this KVM_RUN is the last (see the module
        // doc): it completes the last exit and returns at once.
        let last = b.stopping();
        if id == 0 && !last && b.watchdog.fired() {
            b.finish(Ending::new(0, GuestEnd::Hang));
            continue;
        }
        watch.enter();
        let result = vcpu.run();
        watch.leave(run_result(&result));
        if last {
            break;
        }
        exits += 1;
        if let Some(e) = serve_exit(id, result, b) {
            b.finish(e);
        }
    }
    exits
}

/// Serves one exit of vCPU `id` under the devices lock; Some ends the boot.
fn serve_exit(
    id: usize,
    exit: Result<VcpuExit<'_>, kvm_ioctls::Error>,
    b: &Boot<'_>,
) -> Option<Ending> {
    // The exit's arrival, before the lock: time waiting for another
    // vCPU's exit is time this one's guest waits too.
    let arrived = Instant::now();
    let mut d = b.devices();
    let d = &mut *d;
    let mut fact = None;
    let end = match exit {
        Ok(VcpuExit::IoOut(port, data)) if serial::owns(port) => {
            serial::out(&mut d.run.com1, port, data);
            None
        }
        Ok(VcpuExit::IoOut(port, data)) => match ports::out(port, data) {
            Some(ports::PortEnd::DebugExit(code)) => {
                Some(Ending::new(id, GuestEnd::DebugExit(code)))
            }
            Some(ports::PortEnd::Reset) => Some(Ending {
                reset_at: Some(arrived),
                ..Ending::new(id, GuestEnd::Reset)
            }),
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
            let spent = timing::ns_since(arrived);
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
            Some(Ending::new(id, GuestEnd::Unserved(Unserved::Halt)))
        }
        // A triple fault: what a PC turns into a reset.
        Ok(VcpuExit::Shutdown) => Some(Ending {
            reset_at: Some(arrived),
            ..Ending::new(id, GuestEnd::Reset)
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
        Ok(other) => Some(Ending::new(id, GuestEnd::Unserved(unserved(&other)))),
        // A signal (the watchdog's, or the end's while this vCPU was in the
        // guest), or an AP leaving its wait for SIPI (EAGAIN). Only vCPU 0's
        // watchdog ends the run.
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            (id == 0 && b.watchdog.fired()).then(|| Ending::new(0, GuestEnd::Hang))
        }
        Err(e) => Some(Ending::new(
            id,
            GuestEnd::Unserved(Unserved::RunFailed { errno: e.errno() }),
        )),
    };
    // The guest's own output up to this exit first, then the VMM's word.
    d.run.com1.pump(&mut d.run.tap, d.out, &*d.ram);
    if let Some(f) = fact {
        let _ = d.out.write_all(b"\n");
        f.emit(d.out);
    }
    end
}

/// Runs one boot on every vCPU of `m` until a vCPU ends it.
fn run_boot(
    m: &mut Vm,
    watchdog: &Watchdog,
    run: &mut RunState,
    out: &mut (dyn Write + Send),
) -> Result<(Ending, u64), VmmError> {
    let immediate = m.vcpus.iter_mut().map(ImmediateExit::of).collect();
    watchdog.resume();
    let b = Boot {
        dev: Mutex::new(Devices {
            ram: &mut m.ram,
            faults: &m.faults,
            run,
            out,
        }),
        ending: Mutex::new(None),
        stopping: AtomicBool::new(false),
        immediate,
        watchdog,
    };
    let Some((bsp, aps)) = m.vcpus.split_first_mut() else {
        return Err(VmmError::Config("a VM without vCPUs cannot run".into()));
    };
    let exits = thread::scope(|s| {
        let mut threads = Vec::with_capacity(aps.len());
        let mut spawn_error = None;
        for (i, vcpu) in aps.iter_mut().enumerate() {
            let id = i + 1;
            let b = &b;
            match thread::Builder::new()
                .name(format!("vcpu{id}"))
                .spawn_scoped(s, move || run_vcpu(id, vcpu, b))
            {
                Ok(t) => threads.push(t),
                Err(source) => {
                    spawn_error = Some(VmmError::Sys {
                        call: "starting a vCPU thread",
                        source,
                    });
                    break;
                }
            }
        }
        let mut exits = 0;
        if spawn_error.is_none() {
            exits += run_vcpu(0, bsp, &b);
        } else {
            b.stop();
        }
        for t in threads {
            match t.join() {
                Ok(n) => exits += n,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        spawn_error.map_or(Ok(exits), Err)
    })?;
    let ending = b
        .ending
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or_else(|| VmmError::UnhandledExit("the vCPUs stopped without an end".into()))?;
    Ok((ending, exits))
}

/// The watchdog's line for a hang, after the threads are joined: with
/// several vCPUs, every vCPU's state when vCPU 0's watchdog fired, plus
/// where each one is now (RIP, KVM's MP state).
fn report_hang(m: &Vm, watchdog: &Watchdog, limit: Duration, out: &mut dyn Write) {
    let mut line = format!("hang=vcpu_ran_{}s_without_an_exit", limit.as_secs());
    if m.vcpus.len() > 1 {
        let states = watchdog.at_fire().unwrap_or_default();
        for (i, vcpu) in m.vcpus.iter().enumerate() {
            let state = states
                .iter()
                .find(|s| s.vcpu == i)
                .map_or_else(|| "-".to_string(), VcpuState::to_string);
            let rip = vcpu
                .get_regs()
                .map_or_else(|_| "?".to_string(), |r| format!("{:#x}", r.rip));
            let mp = vcpu
                .get_mp_state()
                .map_or_else(|_| "?".to_string(), |s| mp_state_name(s.mp_state));
            line.push_str(&format!(" hang_vcpu{i}={state},rip:{rip},mp_state:{mp}"));
        }
    }
    let _ = writeln!(out, "\n{}{line}", super::super::facts::PREFIX);
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
    let watchdog = Watchdog::start_vcpus(limit, vcpus)?;
    let mut run = RunState::default();
    let started = Instant::now();
    let mut resets = 0u32;
    let ending = loop {
        let (ending, exits) = run_boot(&mut m, &watchdog, &mut run, out)?;
        run.stats.exits += exits;
        if ending.end == GuestEnd::Hang {
            report_hang(&m, &watchdog, limit, out);
        }
        if let Some(at) = ending.reset_at {
            match resetter.reset(m, at)? {
                Next::Boot(next, done, parts) => {
                    m = next;
                    resets += 1;
                    run.com1 = Uart16550::default();
                    let answered = run.tap.answered;
                    run.tap = ConsoleTap::default();
                    run.tap.answered = answered;
                    parts.emit(&done, out);
                    continue;
                }
                Next::End(same) => m = same,
            }
        }
        break ending;
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
        .add("resets", resets)
        .add("run_ms", started.elapsed().as_millis());
    times.add_facts(&mut f);
    f.add("vmm_clock_ns", timing::clock_cost_ns());
    if vcpus > 1 {
        f.add("end_vcpu", ending.vcpu);
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
