//! A hang is a verdict, not a stuck process: every KVM_RUN is timed, and one
//! that outlives the limit gets the vCPU thread signalled out of the kernel
//! (KVM_RUN returns EINTR). A vCPU that does not come back even then (this
//! machine's software KVM spins forever on vmcall) makes the watchdog end the
//! whole process itself, after saying so on the console.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use vmm_sys_util::signal::{SIGRTMIN, register_signal_handler};

/// How often the watchdog looks, and re-signals a vCPU that did not leave.
const TICK: Duration = Duration::from_millis(100);
/// After the first kick, how long a vCPU may take to leave KVM_RUN.
const GRACE: Duration = Duration::from_secs(5);

struct Shared {
    /// ms since `epoch` at which the current KVM_RUN began, 0 when outside.
    entered_ms: AtomicU64,
    fired: AtomicBool,
    epoch: Instant,
}

pub struct Watchdog {
    shared: Arc<Shared>,
}

/// The vCPU thread's handle, movable to the watchdog thread (musl's
/// `pthread_t` is a raw pointer, so not `Send` by itself).
struct VcpuThread(libc::pthread_t);

// SAFETY: the handle is only passed to pthread_kill, which any thread may call.
unsafe impl Send for VcpuThread {}

impl VcpuThread {
    /// A method, not a field access, so the closure captures the whole
    /// `Send` wrapper rather than the bare pointer field.
    fn get(&self) -> libc::pthread_t {
        self.0
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivery alone makes KVM_RUN return EINTR.
}

fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

impl Watchdog {
    /// Starts watching KVM_RUN calls made on the calling thread. `on_stuck`
    /// runs on the watchdog thread just before it exits the process, with the
    /// time the run had lasted.
    pub fn start(
        limit: Duration,
        on_stuck: impl Fn(Duration) + Send + 'static,
    ) -> std::io::Result<Watchdog> {
        register_signal_handler(kick_signal(), on_kick)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
        // SAFETY: pthread_self has no preconditions.
        let vcpu_thread = VcpuThread(unsafe { libc::pthread_self() });
        let shared = Arc::new(Shared {
            entered_ms: AtomicU64::new(0),
            fired: AtomicBool::new(false),
            epoch: Instant::now(),
        });
        let watched = Arc::clone(&shared);
        thread::Builder::new()
            .name("vcpu-watchdog".into())
            .spawn(move || {
                let limit_ms = limit.as_millis() as u64;
                let mut kicked_at: Option<Instant> = None;
                loop {
                    thread::sleep(TICK);
                    let entered = watched.entered_ms.load(Ordering::Acquire);
                    let now = watched.epoch.elapsed().as_millis() as u64;
                    if entered == 0 || now.saturating_sub(entered) < limit_ms {
                        kicked_at = None;
                        continue;
                    }
                    watched.fired.store(true, Ordering::Release);
                    let first = *kicked_at.get_or_insert_with(Instant::now);
                    if first.elapsed() > GRACE {
                        on_stuck(Duration::from_millis(now - entered));
                        std::process::exit(super::EXIT_HANG);
                    }
                    // SAFETY: the vCPU thread lives as long as the process (it is
                    // the VMM's main thread) and the signal has a handler installed
                    // above, so delivery cannot kill the process.
                    unsafe {
                        libc::pthread_kill(vcpu_thread.get(), kick_signal());
                    }
                }
            })?;
        Ok(Watchdog { shared })
    }

    /// [`Watchdog::start`] with the VMM's standard report: a
    /// `# convtest-vmm: hang=…` line on stdout (the console stream).
    pub fn start_reporting(limit: Duration) -> Result<Watchdog, super::VmmError> {
        Watchdog::start(limit, move |lasted| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stdout(),
                "\n# convtest-vmm: hang=vcpu_stuck_in_KVM_RUN_for_{}ms",
                lasted.as_millis()
            );
        })
        .map_err(|source| super::VmmError::Sys {
            call: "starting the vCPU watchdog",
            source,
        })
    }

    /// The line for a vCPU that was kicked out of a KVM_RUN that outlived
    /// `limit` (the run loop prints it, then ends the run as a hang).
    pub fn report_hang(out: &mut dyn std::io::Write, limit: Duration) {
        let _ = writeln!(
            out,
            "\n# convtest-vmm: hang=vcpu_ran_{}s_without_an_exit",
            limit.as_secs()
        );
    }

    /// Call right before KVM_RUN; false means the watchdog already fired.
    pub fn enter(&self) -> bool {
        let now = (self.shared.epoch.elapsed().as_millis() as u64).max(1);
        self.shared.entered_ms.store(now, Ordering::Release);
        !self.fired()
    }

    /// Call when KVM_RUN returned (any result).
    pub fn leave(&self) {
        self.shared.entered_ms.store(0, Ordering::Release);
    }

    pub fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::Acquire)
    }
}
