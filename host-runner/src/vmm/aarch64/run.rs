//! One boot of the machine: a thread per vCPU, each in its own KVM_RUN loop
//! serving its own exits. vCPU 0 (the boot CPU) runs on the calling thread
//! (the VMM's main thread: the watchdog's kick target must outlive it),
//! vCPUs 1.. on scoped threads; the secondaries sit in KVM_RUN powered off
//! until the guest's PSCI CPU_ON (answered in the kernel) wakes them.
//!
//! Locking: everything an exit handler changes that is not the vCPU's own is
//! behind one mutex, the console (the 16550, the console tap with its
//! host-check answers, the closing counters, the output stream): a request
//! line may be completed by any vCPU's store, and the answer is typed into
//! the one receive FIFO. Guest RAM is shared read-only (its refusal counter
//! is atomic). Per-vCPU progress (in KVM_RUN since when, exits, last exit)
//! is in atomics, so the hang report can read it without stopping anybody.
//!
//! The end: PSCI SYSTEM_OFF or SYSTEM_RESET from any vCPU (KVM has then put
//! every vCPU to sleep, psci.c `kvm_prepare_system_event`), an error, or
//! the watchdog. The vCPU that ends the run records how, sets `stop`, and
//! kicks every other vCPU thread out of KVM_RUN with the watchdog's kind of
//! kick (a real-time signal with a no-op handler: delivery alone makes
//! KVM_RUN return EINTR), again every few ms until each has left (a kick
//! that lands just before a thread enters KVM_RUN is lost, the next one is
//! not), then the threads are joined.
//!
//! The watchdog watches vCPU 0 only. Secondaries legitimately stay in
//! KVM_RUN for the whole run (off until CPU_ON, then spinning in the guest
//! for jobs without exits), so their time in KVM_RUN says nothing; a hung
//! secondary shows as the boot CPU waiting for it without exits, which the
//! boot CPU's watchdog catches. The hang report then names every vCPU's
//! state: where its thread was (in KVM_RUN for how long, or in the VMM),
//! its exits and its last exit, and once all are stopped KVM's power state
//! (KVM_GET_MP_STATE: stopped = never started or off) and PC of each.

use super::super::console::ConsoleTap;
use super::super::facts::Facts;
use super::super::uart16550::Uart16550;
use super::super::watchdog::Watchdog;
use super::super::{EXIT_HANG, GuestEnd, VmmError};
use super::memory::GuestRam;
use super::{uart, vcpu};
use kvm_ioctls::VcpuExit;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::{SIGRTMIN, register_signal_handler};

/// KVM_SYSTEM_EVENT_* (uapi kvm.h).
const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const SYSTEM_EVENT_RESET: u32 = 2;

/// How often a stopping vCPU re-kicks the ones still in KVM_RUN.
const KICK_EVERY: Duration = Duration::from_millis(2);
/// How long the others may take to leave KVM_RUN once stopped; past it the
/// VMM says so and exits as a hang (like the watchdog's grace).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The last exit a vCPU had, for the hang report (0: none yet).
#[derive(Clone, Copy)]
#[repr(u8)]
enum Last {
    Uart = 1,
    Mmio,
    SystemEvent,
    Intr,
}

impl Last {
    const NAMES: [&'static str; 5] = ["none", "uart", "stray_mmio", "system_event", "eintr"];

    fn name(v: u8) -> &'static str {
        Self::NAMES.get(usize::from(v)).copied().unwrap_or("?")
    }
}

/// A vCPU thread's handle, for the kicks (musl's `pthread_t` is a raw
/// pointer, so not `Send` by itself).
struct Kick(libc::pthread_t);

// SAFETY: the handle is only passed to pthread_kill, which any thread may
// call; it is only used while the thread is joinable (inside the scope that
// joins it, or the main thread).
unsafe impl Send for Kick {}

/// What a vCPU's thread is doing, readable by any thread.
#[derive(Default)]
struct VcpuState {
    /// ms since the boot's epoch at which the current KVM_RUN began (at
    /// least 1), 0 when outside KVM_RUN.
    in_run_since: AtomicU64,
    /// How long the last finished KVM_RUN lasted, ms.
    last_run_ms: AtomicU64,
    exits: AtomicU64,
    last: AtomicU8,
    /// A thread serves this vCPU (set before it starts, cleared as it ends).
    live: AtomicBool,
    thread: Mutex<Option<Kick>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking vCPU thread ends the run anyway; its data stays usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ms_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// `0:in_vmm_after_run_30012ms/exits_812/last_uart,1:kvm_run_31000ms/exits_0/last_none`:
/// each vCPU's thread (in KVM_RUN for how long so far; in the VMM, after a
/// KVM_RUN that lasted how long; or gone), its exits and the last exit it
/// served (a kick that ended the run is counted, not named).
fn describe(states: &[VcpuState], epoch: Instant) -> String {
    let now = ms_since(epoch);
    states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let since = s.in_run_since.load(Ordering::Acquire);
            let at = if since != 0 {
                format!("kvm_run_{}ms", now.saturating_sub(since))
            } else if s.live.load(Ordering::Acquire) {
                format!(
                    "in_vmm_after_run_{}ms",
                    s.last_run_ms.load(Ordering::Relaxed)
                )
            } else {
                "stopped".into()
            };
            format!(
                "{i}:{at}/exits_{}/last_{}",
                s.exits.load(Ordering::Relaxed),
                Last::name(s.last.load(Ordering::Relaxed))
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

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

/// Behind the one mutex: the console device, its tap and the stream.
struct Console<'a> {
    uart: Uart16550,
    tap: ConsoleTap,
    out: &'a mut (dyn Write + Send),
    stats: Stats,
}

/// How the boot ended, first come first served.
struct Ended {
    end: GuestEnd,
    at: Instant,
    vcpu: u64,
}

struct Shared<'a> {
    epoch: Instant,
    limit: Duration,
    states: Arc<[VcpuState]>,
    stop: AtomicBool,
    ended: Mutex<Option<Ended>>,
    console: Mutex<Console<'a>>,
    ram: &'a GuestRam,
}

impl Shared<'_> {
    fn end(&self, end: GuestEnd, at: Instant, vcpu: u64) {
        lock(&self.ended).get_or_insert(Ended { end, at, vcpu });
    }

    /// The watchdog caught vCPU 0 in a KVM_RUN that outlived the limit.
    fn hang(&self) {
        let states = describe(&self.states, self.epoch);
        let mut c = lock(&self.console);
        Watchdog::report_hang(&mut *c.out, self.limit);
        let mut f = Facts::default();
        f.add("hang_vcpus", states);
        f.emit(&mut *c.out);
        drop(c);
        self.end(GuestEnd::Hang, Instant::now(), 0);
    }

    /// Sets `stop` and kicks every other live vCPU thread until none is
    /// left in KVM_RUN.
    fn stop_others(&self, me: usize) {
        self.stop.store(true, Ordering::SeqCst);
        let t0 = Instant::now();
        loop {
            let mut left = None;
            for (i, st) in self.states.iter().enumerate() {
                if i == me || !st.live.load(Ordering::SeqCst) {
                    continue;
                }
                left = Some(i);
                if let Some(k) = lock(&st.thread).as_ref() {
                    // SAFETY: the thread is live, so joinable and not yet
                    // joined, and the signal has a handler (`run_boot`
                    // installs it), so delivery cannot kill the process.
                    unsafe {
                        libc::pthread_kill(k.0, SIGRTMIN());
                    }
                }
            }
            let Some(stuck) = left else {
                return;
            };
            if t0.elapsed() > STOP_GRACE {
                let _ = writeln!(
                    std::io::stdout(),
                    "\n# convtest-vmm: hang=vcpu{stuck}_did_not_leave_KVM_RUN_when_stopped \
                     hang_vcpus={}",
                    describe(&self.states, self.epoch)
                );
                std::process::exit(EXIT_HANG);
            }
            thread::sleep(KICK_EVERY);
        }
    }
}

/// Marks its vCPU's thread gone and stops the others, however the thread
/// leaves (a panic included).
struct Leaving<'s, 'a>(&'s Shared<'a>, usize);

impl Drop for Leaving<'_, '_> {
    fn drop(&mut self) {
        self.0.states[self.1].live.store(false, Ordering::SeqCst);
        self.0.stop_others(self.1);
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivery alone makes KVM_RUN return EINTR.
}

/// One vCPU's thread: KVM_RUN and its exits until the boot ends.
fn serve(sh: &Shared<'_>, v: &mut vcpu::Vcpu, wd: Option<&Watchdog>) -> Result<(), VmmError> {
    let me = v.id as usize;
    // SAFETY: pthread_self has no preconditions.
    *lock(&sh.states[me].thread) = Some(Kick(unsafe { libc::pthread_self() }));
    let _leaving = Leaving(sh, me);
    serve_exits(sh, v, wd)
}

fn serve_exits(sh: &Shared<'_>, v: &mut vcpu::Vcpu, wd: Option<&Watchdog>) -> Result<(), VmmError> {
    let st = &sh.states[v.id as usize];
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if wd.is_some_and(|w| !w.enter()) {
            sh.hang();
            return Ok(());
        }
        let entered = ms_since(sh.epoch).max(1);
        st.in_run_since.store(entered, Ordering::Release);
        let exit = v.fd.run();
        let exit_at = Instant::now();
        st.last_run_ms.store(
            ms_since(sh.epoch).saturating_sub(entered),
            Ordering::Relaxed,
        );
        st.in_run_since.store(0, Ordering::Release);
        if let Some(w) = wd {
            w.leave();
        }
        st.exits.fetch_add(1, Ordering::Relaxed);
        let last = match exit {
            Ok(VcpuExit::MmioWrite(addr, data)) if uart::owns(addr) => {
                let mut c = lock(&sh.console);
                c.stats.uart_exits += 1;
                uart::write(&mut c.uart, addr, data);
                pump(&mut c, sh);
                Last::Uart
            }
            Ok(VcpuExit::MmioRead(addr, data)) if uart::owns(addr) => {
                let mut c = lock(&sh.console);
                c.stats.uart_exits += 1;
                uart::read(&mut c.uart, addr, data);
                pump(&mut c, sh);
                Last::Uart
            }
            Ok(VcpuExit::MmioWrite(addr, _)) => {
                let mut c = lock(&sh.console);
                c.stats.stray_mmio += 1;
                c.stats.first_stray.get_or_insert(addr);
                Last::Mmio
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                data.fill(0);
                let mut c = lock(&sh.console);
                c.stats.stray_mmio += 1;
                c.stats.first_stray.get_or_insert(addr);
                Last::Mmio
            }
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_SHUTDOWN, _)) => {
                st.last.store(Last::SystemEvent as u8, Ordering::Relaxed);
                sh.end(GuestEnd::PowerOff, exit_at, v.id);
                return Ok(());
            }
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_RESET, _)) => {
                st.last.store(Last::SystemEvent as u8, Ordering::Relaxed);
                sh.end(GuestEnd::Reset, exit_at, v.id);
                return Ok(());
            }
            Ok(VcpuExit::SystemEvent(t, data)) => {
                return Err(VmmError::UnhandledExit(format!(
                    "vCPU {}: KVM_EXIT_SYSTEM_EVENT type {t} data {data:x?}",
                    v.id
                )));
            }
            Ok(other) => {
                let what = format!("{other:?}");
                let pc = vcpu::get(&v.fd, vcpu::PC);
                return Err(VmmError::UnhandledExit(format!(
                    "vCPU {}: {what} at pc {}",
                    v.id,
                    pc.map_or("?".into(), |p| format!("{p:#x}"))
                )));
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                // A kick: the watchdog's (vCPU 0 only) or a stopping vCPU's,
                // which the loop's first check sees.
                if wd.is_some_and(Watchdog::fired) {
                    sh.hang();
                    return Ok(());
                }
                Last::Intr
            }
            Err(source) => {
                return Err(VmmError::Kvm {
                    call: "KVM_RUN",
                    source,
                });
            }
        };
        st.last.store(last as u8, Ordering::Relaxed);
    }
}

/// After a UART access: new output to the tap (which answers host checks
/// from guest RAM) and pending acks into the receive FIFO.
fn pump(c: &mut Console<'_>, sh: &Shared<'_>) {
    let t = Instant::now();
    let Console {
        uart,
        tap,
        out,
        stats,
    } = c;
    if uart.pump(tap, &mut **out, sh.ram) {
        stats
            .first_output_ms
            .get_or_insert_with(|| sh.epoch.elapsed().as_millis());
        stats.tap += t.elapsed();
    }
}

/// Runs one boot on every vCPU to its end; also returns when the exit that
/// ended it came back (a reset's cost is counted from there).
pub fn run_boot(
    vcpus: &mut [vcpu::Vcpu],
    ram: &GuestRam,
    limit: Duration,
    out: &mut (dyn Write + Send),
) -> Result<(GuestEnd, Instant), VmmError> {
    // Before the watchdog, which installs its own (equally empty) handler
    // for its kicks: whichever is in place, a kick only interrupts.
    register_signal_handler(SIGRTMIN(), on_kick).map_err(|e| VmmError::Sys {
        call: "installing the vCPU kick handler",
        source: std::io::Error::from_raw_os_error(e.errno()),
    })?;
    let states: Arc<[VcpuState]> = vcpus.iter().map(|_| VcpuState::default()).collect();
    let epoch = Instant::now();
    let watched = Arc::clone(&states);
    // vCPU 0 stuck even after the kicks: the process ends from the
    // watchdog thread, so the report is all this boot says.
    let watchdog = Watchdog::start(limit, move |lasted| {
        let _ = writeln!(
            std::io::stdout(),
            "\n# convtest-vmm: hang=vcpu_stuck_in_KVM_RUN_for_{}ms hang_vcpus={}",
            lasted.as_millis(),
            describe(&watched, epoch)
        );
    })
    .map_err(|source| VmmError::Sys {
        call: "starting the vCPU watchdog",
        source,
    })?;
    let sh = Shared {
        epoch,
        limit,
        states,
        stop: AtomicBool::new(false),
        ended: Mutex::new(None),
        console: Mutex::new(Console {
            uart: Uart16550::default(),
            tap: ConsoleTap::default(),
            out,
            stats: Stats::default(),
        }),
        ram,
    };
    let (bsp, aps) = vcpus
        .split_first_mut()
        .ok_or_else(|| VmmError::Config("no vCPU".into()))?;
    let results: Vec<Result<(), VmmError>> = thread::scope(|s| {
        let mut results = Vec::new();
        let mut handles = Vec::new();
        for v in aps.iter_mut() {
            let st = &sh.states[v.id as usize];
            st.live.store(true, Ordering::SeqCst);
            let shared = &sh;
            let spawned = thread::Builder::new()
                .name(format!("vcpu{}", v.id))
                .spawn_scoped(s, move || serve(shared, v, None));
            match spawned {
                Ok(h) => handles.push(h),
                Err(source) => {
                    st.live.store(false, Ordering::SeqCst);
                    results.push(Err(VmmError::Sys {
                        call: "starting a vCPU thread",
                        source,
                    }));
                    break;
                }
            }
        }
        if results.is_empty() {
            sh.states[0].live.store(true, Ordering::SeqCst);
            results.push(serve(&sh, bsp, Some(&watchdog)));
        } else {
            sh.stop_others(0);
        }
        for h in handles {
            results.push(
                h.join()
                    .unwrap_or_else(|_| Err(VmmError::Config("a vCPU thread panicked".into()))),
            );
        }
        results
    });
    let Shared {
        states,
        ended,
        console,
        ..
    } = sh;
    let c = console.into_inner().unwrap_or_else(|e| e.into_inner());
    let ended = ended.into_inner().unwrap_or_else(|e| e.into_inner());
    // An error anywhere is the run's result (the others were only stopped).
    for r in results {
        r?;
    }
    let Some(Ended { end, at, vcpu: by }) = ended else {
        return Err(VmmError::Config(
            "every vCPU thread stopped without an end (power-off, reset or hang)".into(),
        ));
    };
    let out = c.out;
    if end == GuestEnd::Hang {
        // Every thread is out of KVM_RUN now, so the vCPU ioctls answer.
        let mut f = Facts::default();
        f.add("hang_vcpu_regs", post_mortem(vcpus));
        f.emit(out);
    }
    let exits: Vec<u64> = states
        .iter()
        .map(|s| s.exits.load(Ordering::Relaxed))
        .collect();
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
    f.add("host_checks", c.tap.answered)
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
        .add("end_vcpu", by);
    let _ = out.write_all(b"\n");
    f.emit(out);
    Ok((end, at))
}

/// `0:runnable/pc_0x80001234,1:stopped/pc_0x0`: KVM's power state
/// (KVM_GET_MP_STATE) and PC of every vCPU, read once all are stopped. A
/// protected vCPU's PC is what pKVM last copied back to the host, if any.
fn post_mortem(vcpus: &[vcpu::Vcpu]) -> String {
    vcpus
        .iter()
        .map(|v| {
            let mp = match v.fd.get_mp_state().map(|m| m.mp_state) {
                Ok(kvm_bindings::KVM_MP_STATE_RUNNABLE) => "runnable".to_string(),
                Ok(kvm_bindings::KVM_MP_STATE_STOPPED) => "stopped".to_string(),
                Ok(kvm_bindings::KVM_MP_STATE_SUSPENDED) => "suspended".to_string(),
                Ok(other) => format!("mp_state_{other}"),
                Err(e) => format!("mp_state_errno_{}", e.errno()),
            };
            let pc = vcpu::get(&v.fd, vcpu::PC).map_or("?".into(), |p| format!("{p:#x}"));
            format!("{}:{mp}/pc_{pc}", v.id)
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hang_report_names_every_vcpus_state() {
        let states: Vec<VcpuState> = (0..3).map(|_| VcpuState::default()).collect();
        let epoch = Instant::now() - Duration::from_secs(40);
        states[0].live.store(true, Ordering::Relaxed);
        states[0].in_run_since.store(10_000, Ordering::Relaxed);
        states[0].exits.store(812, Ordering::Relaxed);
        states[0].last.store(Last::Uart as u8, Ordering::Relaxed);
        states[1].live.store(true, Ordering::Relaxed);
        states[1].exits.store(2, Ordering::Relaxed);
        states[1].last_run_ms.store(7, Ordering::Relaxed);
        states[1].last.store(Last::Intr as u8, Ordering::Relaxed);
        let d = describe(&states, epoch);
        let parts: Vec<&str> = d.split(',').collect();
        assert_eq!(parts.len(), 3, "{d}");
        assert!(parts[0].starts_with("0:kvm_run_30"), "{d}");
        assert!(parts[0].ends_with("ms/exits_812/last_uart"), "{d}");
        assert_eq!(parts[1], "1:in_vmm_after_run_7ms/exits_2/last_eintr");
        assert_eq!(parts[2], "2:stopped/exits_0/last_none");
        assert!(!d.contains(char::is_whitespace), "one facts value");
    }
}
