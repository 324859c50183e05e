//! A hang is a verdict, not a stuck process: every KVM_RUN is timed, and one
//! that outlives the limit gets the vCPU thread signalled out of the kernel
//! (KVM_RUN returns EINTR). A vCPU that does not come back even then (this
//! machine's software KVM spins forever on vmcall) makes the watchdog end the
//! whole process itself, after saying so on the console.
//!
//! ## Several vCPUs
//!
//! [`Watchdog::start`] keeps one slot per vCPU (each vCPU thread
//! [`attach`](Watchdog::attach)es to its own), but only vCPU 0's KVM_RUN is
//! timed against the limit. The secondaries legitimately stay in KVM_RUN for
//! the whole run: an AP waits there for its start (x86: KVM blocks it in
//! KVM_MP_STATE_UNINITIALIZED until SIPI; arm64: powered off until PSCI
//! CPU_ON) and, once started, spins in the guest for
//! jobs without a single exit, so "one KVM_RUN longer than the limit" would
//! call every healthy AP hung. A hung AP does not go unnoticed: CPU 0 waits
//! for its AP jobs in a spin loop, exit-free too, so CPU 0's watchdog fires.
//! What the other slots give is the report: when vCPU 0's watchdog fires it
//! snapshots every vCPU ([`Watchdog::at_fire`]: in KVM_RUN or not and for
//! how long, how many exits, the last one), so a hang says where it is.
//!
//! The slots also serve a boot's end (vcpus.rs): [`Watchdog::stop_all`] signals every
//! vCPU thread that is inside KVM_RUN (the caller has set each vCPU's
//! `immediate_exit` first, so one about to enter leaves at once), and the
//! watchdog thread signals again every tick until each has left; a vCPU
//! still inside [`GRACE`] after the stop ends the process as above.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::{SIGRTMIN, register_signal_handler};

/// How often the watchdog looks, and re-signals a vCPU that did not leave.
const TICK: Duration = Duration::from_millis(100);
/// After the first kick, how long a vCPU may take to leave KVM_RUN.
const GRACE: Duration = Duration::from_secs(5);

/// `last_exit` of a vCPU that has not left KVM_RUN yet.
pub const NO_EXIT: u32 = u32::MAX;
/// `last_exit` for KVM_RUN returning EAGAIN (x86: an AP that left the
/// wait for SIPI).
pub const EXIT_EAGAIN: u32 = u32::MAX - 1;
/// `last_exit` for KVM_RUN failing with an errno other than EINTR/EAGAIN.
pub const EXIT_FAILED: u32 = u32::MAX - 2;

/// One vCPU's KVM_RUN record.
struct Slot {
    /// ms since `epoch` at which the current KVM_RUN began, 0 when outside.
    entered_ms: AtomicU64,
    /// ms since `epoch` at which the last KVM_RUN returned, 0 before.
    left_ms: AtomicU64,
    exits: AtomicU64,
    /// KVM_EXIT_* of the last return (or one of the pseudo values above).
    last_exit: AtomicU32,
    /// The thread running this vCPU, while it runs it.
    thread: Mutex<Option<VcpuThread>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            entered_ms: AtomicU64::new(0),
            left_ms: AtomicU64::new(0),
            exits: AtomicU64::new(0),
            last_exit: AtomicU32::new(NO_EXIT),
            thread: Mutex::new(None),
        }
    }

    fn thread(&self) -> MutexGuard<'_, Option<VcpuThread>> {
        self.thread.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signals the vCPU's thread if it is inside KVM_RUN. The fence pairs
    /// with the one in `enter`: either this sees the vCPU entered (and
    /// signals it), or the vCPU's KVM_RUN sees what the caller stored before
    /// (its `immediate_exit`).
    fn kick_if_running(&self) {
        fence(Ordering::SeqCst);
        if self.entered_ms.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(t) = self.thread().as_ref() {
            t.kick();
        }
    }

    fn enter(&self, now_ms: u64) {
        self.entered_ms.store(now_ms.max(1), Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    fn leave(&self, now_ms: u64, reason: u32) {
        self.entered_ms.store(0, Ordering::SeqCst);
        self.left_ms.store(now_ms.max(1), Ordering::Release);
        self.exits.fetch_add(1, Ordering::Relaxed);
        self.last_exit.store(reason, Ordering::Relaxed);
    }

    fn state(&self, vcpu: usize, now_ms: u64) -> VcpuState {
        let entered = self.entered_ms.load(Ordering::Acquire);
        let left = self.left_ms.load(Ordering::Acquire);
        VcpuState {
            vcpu,
            in_run_ms: (entered != 0).then(|| now_ms.saturating_sub(entered)),
            out_ms: (entered == 0 && left != 0).then(|| now_ms.saturating_sub(left)),
            exits: self.exits.load(Ordering::Relaxed),
            last_exit: self.last_exit.load(Ordering::Relaxed),
        }
    }
}

/// One vCPU as the watchdog saw it, for the hang report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuState {
    pub vcpu: usize,
    /// How long the KVM_RUN it was in had lasted; None: not in KVM_RUN.
    pub in_run_ms: Option<u64>,
    /// Outside KVM_RUN: since when its last KVM_RUN returned.
    pub out_ms: Option<u64>,
    pub exits: u64,
    /// KVM_EXIT_* of its last exit ([`exit_name`]).
    pub last_exit: u32,
}

impl std::fmt::Display for VcpuState {
    /// One fact value (no spaces): `in_KVM_RUN_300004ms,exits:41,last_exit:io`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.in_run_ms, self.out_ms) {
            (Some(ms), _) => write!(f, "in_KVM_RUN_{ms}ms")?,
            (None, Some(ms)) => write!(f, "in_VMM_{ms}ms_since_its_last_exit")?,
            (None, None) => f.write_str("never_entered_KVM_RUN")?,
        }
        write!(
            f,
            ",exits:{},last_exit:{}",
            self.exits,
            exit_name(self.last_exit)
        )
    }
}

/// A KVM_EXIT_* number (or a pseudo value of this module) as a word.
pub fn exit_name(reason: u32) -> String {
    let name = match reason {
        NO_EXIT => "none",
        EXIT_EAGAIN => "eagain",
        EXIT_FAILED => "kvm_run_failed",
        0 => "unknown",
        1 => "exception",
        2 => "io",
        3 => "hypercall",
        4 => "debug",
        5 => "hlt",
        6 => "mmio",
        8 => "shutdown",
        9 => "fail_entry",
        10 => "intr",
        17 => "internal_error",
        24 => "system_event",
        29 => "x86_rdmsr",
        30 => "x86_wrmsr",
        39 => "memory_fault",
        n => return format!("exit_{n}"),
    };
    name.to_string()
}

/// Why the watchdog ends the process.
enum Stuck {
    /// vCPU 0 did not leave a KVM_RUN that outlived the limit, kicked for
    /// GRACE: how long that KVM_RUN had lasted, and every vCPU's state.
    Bsp(Duration, Vec<VcpuState>),
    /// The run had ended but these vCPUs stayed in KVM_RUN for GRACE.
    AfterStop(Vec<VcpuState>),
}

struct Shared {
    slots: Box<[Slot]>,
    fired: AtomicBool,
    /// ms since `epoch` at which [`Watchdog::stop_all`] was called, 0 before.
    stop_ms: AtomicU64,
    /// Every vCPU's state at the moment vCPU 0's watchdog fired.
    at_fire: Mutex<Option<Vec<VcpuState>>>,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn states(&self) -> Vec<VcpuState> {
        let now = self.now_ms();
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| s.state(i, now))
            .collect()
    }
}

pub struct Watchdog {
    shared: Arc<Shared>,
}

/// A vCPU thread's handle, movable to the watchdog thread (musl's
/// `pthread_t` is a raw pointer, so not `Send` by itself).
struct VcpuThread(libc::pthread_t);

// SAFETY: the handle is only passed to pthread_kill, which any thread may call.
unsafe impl Send for VcpuThread {}

impl VcpuThread {
    fn current() -> VcpuThread {
        // SAFETY: pthread_self has no preconditions.
        VcpuThread(unsafe { libc::pthread_self() })
    }

    /// Sends the kick signal.
    fn kick(&self) {
        // SAFETY: a handle is only reachable while its thread is alive: an
        // attached vCPU thread clears its slot (under the lock the caller
        // holds) before it ends. The signal has a handler
        // (installed by `spawn`), so delivery cannot kill the process.
        unsafe {
            libc::pthread_kill(self.0, kick_signal());
        }
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivery alone makes KVM_RUN return EINTR.
}

fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

/// A vCPU thread's link to its slot; dropping it (when the thread is done
/// with the vCPU) makes the watchdog forget the thread.
pub struct VcpuWatch<'a> {
    shared: &'a Shared,
    slot: &'a Slot,
}

impl VcpuWatch<'_> {
    /// Call right before KVM_RUN.
    pub fn enter(&self) {
        self.slot.enter(self.shared.now_ms());
    }

    /// Call when KVM_RUN returned, with the exit's KVM_EXIT_* (or a pseudo
    /// value: [`EXIT_EAGAIN`], [`EXIT_FAILED`]).
    pub fn leave(&self, reason: u32) {
        self.slot.leave(self.shared.now_ms(), reason);
    }
}

impl Drop for VcpuWatch<'_> {
    fn drop(&mut self) {
        self.slot.entered_ms.store(0, Ordering::SeqCst);
        *self.slot.thread() = None;
    }
}

impl Watchdog {
    /// A watchdog over `vcpus` vCPUs whose threads [`attach`](Self::attach)
    /// themselves; vCPU 0's KVM_RUN is the one timed (see the module doc).
    /// If it has to end the process, it says so first on stdout (the console
    /// stream): a `hang=` fact naming every vCPU's state.
    pub fn start(limit: Duration, vcpus: usize) -> Result<Watchdog, crate::error::VmmError> {
        Watchdog::spawn(limit, vcpus.max(1), move |stuck| {
            let mut out = std::io::stdout();
            let (line, states) = match stuck {
                Stuck::Bsp(lasted, states) => (
                    format!("hang=vcpu_stuck_in_KVM_RUN_for_{}ms", lasted.as_millis()),
                    states,
                ),
                Stuck::AfterStop(states) => {
                    let left: Vec<String> = states
                        .iter()
                        .filter(|s| s.in_run_ms.is_some())
                        .map(|s| s.vcpu.to_string())
                        .collect();
                    (
                        format!(
                            "hang=vcpus_{}_stayed_in_KVM_RUN_after_the_run_ended",
                            left.join("_")
                        ),
                        states,
                    )
                }
            };
            let _ = writeln!(
                out,
                "\n{}{line}{}",
                super::facts::PREFIX,
                state_facts(&states)
            )
            .and_then(|()| out.flush());
        })
        .map_err(|source| crate::error::VmmError::Sys {
            call: "starting the vCPU watchdog",
            source,
        })
    }

    fn spawn(
        limit: Duration,
        vcpus: usize,
        on_stuck: impl Fn(Stuck) + Send + 'static,
    ) -> std::io::Result<Watchdog> {
        register_signal_handler(kick_signal(), on_kick)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
        let shared = Arc::new(Shared {
            slots: (0..vcpus).map(|_| Slot::new()).collect(),
            fired: AtomicBool::new(false),
            stop_ms: AtomicU64::new(0),
            at_fire: Mutex::new(None),
            epoch: Instant::now(),
        });
        let watched = Arc::clone(&shared);
        thread::Builder::new()
            .name("vcpu-watchdog".into())
            .spawn(move || watch(&watched, limit, on_stuck))?;
        Ok(Watchdog { shared })
    }

    /// Links the calling thread to vCPU `vcpu`'s slot (< the count given to
    /// [`Watchdog::start`]) for as long as the handle lives.
    pub fn attach(&self, vcpu: usize) -> VcpuWatch<'_> {
        let slot = &self.shared.slots[vcpu];
        *slot.thread() = Some(VcpuThread::current());
        VcpuWatch {
            shared: &self.shared,
            slot,
        }
    }

    /// The run is over: signals every vCPU thread inside KVM_RUN now, and
    /// the watchdog thread does again every tick until all have left. Set
    /// each vCPU's `immediate_exit` before calling, so that a thread about
    /// to enter KVM_RUN leaves at once. Call [`Watchdog::resume`] before the
    /// next boot's threads run.
    pub fn stop_all(&self) {
        let now = self.shared.now_ms().max(1);
        let _ = self
            .shared
            .stop_ms
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        for s in self.shared.slots.iter() {
            s.kick_if_running();
        }
    }

    /// Every vCPU has left: the next boot runs (after a reset).
    pub fn resume(&self) {
        self.shared.stop_ms.store(0, Ordering::Release);
    }

    /// Every vCPU's state when vCPU 0's watchdog fired (None: it has not).
    pub fn at_fire(&self) -> Option<Vec<VcpuState>> {
        self.shared
            .at_fire
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::Acquire)
    }
}

/// ` hang_vcpu0=… hang_vcpu1=…`: every vCPU's state as facts.
fn state_facts(states: &[VcpuState]) -> String {
    states
        .iter()
        .map(|s| format!(" hang_vcpu{}={s}", s.vcpu))
        .collect()
}

/// The watchdog thread.
fn watch(w: &Shared, limit: Duration, on_stuck: impl Fn(Stuck)) {
    let limit_ms = limit.as_millis() as u64;
    let grace_ms = GRACE.as_millis() as u64;
    let mut kicked_at: Option<Instant> = None;
    loop {
        thread::sleep(TICK);
        let now = w.now_ms();
        let stop = w.stop_ms.load(Ordering::Acquire);
        if stop != 0 {
            // The run ended: whoever is still in KVM_RUN gets signalled
            // again (a kick may have landed just before KVM_RUN).
            for s in w.slots.iter() {
                s.kick_if_running();
            }
            let states = w.states();
            if now.saturating_sub(stop) > grace_ms && states.iter().any(|s| s.in_run_ms.is_some()) {
                on_stuck(Stuck::AfterStop(states));
                std::process::exit(crate::end::EXIT_HANG);
            }
            continue;
        }
        let bsp = &w.slots[0];
        let entered = bsp.entered_ms.load(Ordering::Acquire);
        if entered == 0 || now.saturating_sub(entered) < limit_ms {
            kicked_at = None;
            continue;
        }
        {
            let mut at_fire = w.at_fire.lock().unwrap_or_else(|e| e.into_inner());
            if at_fire.is_none() {
                *at_fire = Some(w.states());
            }
        }
        w.fired.store(true, Ordering::Release);
        let first = *kicked_at.get_or_insert_with(Instant::now);
        if first.elapsed() > GRACE {
            let states = w.at_fire.lock().unwrap_or_else(|e| e.into_inner()).clone();
            on_stuck(Stuck::Bsp(
                Duration::from_millis(now - entered),
                states.unwrap_or_default(),
            ));
            std::process::exit(crate::end::EXIT_HANG);
        }
        bsp.kick_if_running();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_states_read_as_one_fact_value_each() {
        let s = [
            VcpuState {
                vcpu: 0,
                in_run_ms: Some(300_004),
                out_ms: None,
                exits: 41,
                last_exit: 3,
            },
            VcpuState {
                vcpu: 1,
                in_run_ms: None,
                out_ms: Some(7),
                exits: 2,
                last_exit: EXIT_EAGAIN,
            },
            VcpuState {
                vcpu: 2,
                in_run_ms: None,
                out_ms: None,
                exits: 0,
                last_exit: NO_EXIT,
            },
        ];
        assert_eq!(
            state_facts(&s),
            " hang_vcpu0=in_KVM_RUN_300004ms,exits:41,last_exit:hypercall \
             hang_vcpu1=in_VMM_7ms_since_its_last_exit,exits:2,last_exit:eagain \
             hang_vcpu2=never_entered_KVM_RUN,exits:0,last_exit:none"
        );
        assert_eq!(exit_name(77), "exit_77");
    }

    #[test]
    fn a_slot_records_its_runs_and_forgets_its_thread() {
        let w = Watchdog::start(Duration::from_secs(3600), 2).unwrap();
        {
            let v = w.attach(1);
            v.enter();
            let st = w.shared.states();
            assert!(st[1].in_run_ms.is_some() && st[0].in_run_ms.is_none());
            v.leave(2);
            let st = w.shared.states();
            assert_eq!((st[1].exits, st[1].last_exit), (1, 2));
            assert!(st[1].out_ms.is_some());
            // Not in KVM_RUN: a stop signals nobody.
            w.stop_all();
            w.resume();
        }
        assert!(w.shared.slots[1].thread().is_none());
        assert!(w.at_fire().is_none() && !w.fired());
    }
}
