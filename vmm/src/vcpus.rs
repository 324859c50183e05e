//! The vCPU threads of one boot, for both arches: one thread per vCPU
//! (vCPU 0 on the caller's thread, the others on scoped threads), each one
//! KVM_RUN after another, each exit handed on the thread that got it to the
//! arch's [`ExitServer`]. The arch keeps only what is its own: its exits,
//! the device state they share (behind its own lock), its closing facts and
//! where a hung vCPU is ([`ExitServer::post_mortem`]).
//!
//! ## How a boot ends
//!
//! The first vCPU whose exit ends the boot (the server says so, or vCPU 0's
//! watchdog fired) records it — the first one counts — and stops every
//! vCPU: each vCPU's `kvm_run.immediate_exit` is set, then every thread
//! inside KVM_RUN is signalled ([`Watchdog::stop_all`]). Each thread then
//! enters KVM_RUN once more, which runs no guest code: KVM completes what
//! the thread's last exit left pending (x86 port input and the hypercall's
//! answer, arm64 an MMIO load) and returns EINTR, because
//! virt/kvm/kvm_main.c sets `wants_to_run = !immediate_exit` and both
//! kvm_arch_vcpu_ioctl_run (x86.c, arm64 arm.c) return -EINTR before
//! entering the guest when it is false. The thread leaves; a reset after the
//! join finds no completion still pending. A signal that lands just before
//! a thread's KVM_RUN is lost, but that KVM_RUN sees `immediate_exit`
//! (watchdog.rs's fences order the two).
//!
//! ## The watchdog
//!
//! Only vCPU 0's KVM_RUN is timed (watchdog.rs says why). When it fires the
//! boot ends as a hang, and once every thread is out of KVM_RUN (so the
//! vCPU ioctls answer) [`End::Hang`] carries the report: every vCPU's state
//! when it fired plus the arch's post-mortem of each.

use super::facts::Facts;
use super::watchdog::{self, VcpuState, Watchdog};
use crate::error::VmmError;
use kvm_bindings as kb;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// An arch's side of the run loop: what one exit means.
pub trait ExitServer: Sync {
    /// How an exit ends the boot (a hang is the runner's own [`End::Hang`]).
    type End: Send;

    /// Serves vCPU `vcpu`'s KVM_RUN result, which came back at `arrived`;
    /// Some ends the boot. Runs on the vCPU's thread, concurrently with the
    /// others. Kicks (EINTR, EAGAIN) never get here.
    fn serve(
        &self,
        vcpu: usize,
        exit: Result<VcpuExit<'_>, kvm_ioctls::Error>,
        arrived: Instant,
    ) -> Option<Self::End>;

    /// Where a stopped vCPU is, for the hang report: one facts value
    /// without spaces (x86 `rip:…,mp_state:…`).
    fn post_mortem(fd: &VcpuFd) -> String;
}

/// How a boot ended.
pub enum End<E> {
    /// The server's word on the exit that ended it.
    Served(E),
    /// vCPU 0's watchdog fired: the report (`hang=` and one `hang_vcpuN=`
    /// per vCPU), to be written before the closing facts.
    Hang(Facts),
}

/// One boot, over.
pub struct Boot<E> {
    pub end: End<E>,
    /// The vCPU whose exit ended it (0 for a hang).
    pub vcpu: usize,
    /// Exits per vCPU (every KVM_RUN return but each thread's last).
    pub exits: Vec<u64>,
}

/// Runs a VM's vCPUs boot after boot under one watchdog.
pub struct Runner {
    watchdog: Watchdog,
    limit: Duration,
    /// The watchdog's slots: every boot runs exactly this many vCPUs.
    vcpus: usize,
}

impl Runner {
    /// Starts the watchdog for `vcpus` vCPUs and a KVM_RUN limit.
    pub fn new(limit: Duration, vcpus: usize) -> Result<Runner, VmmError> {
        Ok(Runner {
            watchdog: Watchdog::start(limit, vcpus)?,
            limit,
            vcpus,
        })
    }

    /// Runs one boot on every vCPU (`fds`, vCPU 0 first, as many as
    /// [`Runner::new`] was given) until one ends it. Only starting the
    /// threads can fail.
    pub fn boot<S: ExitServer>(
        &self,
        mut fds: Vec<&mut VcpuFd>,
        server: &S,
    ) -> Result<Boot<S::End>, VmmError> {
        if fds.len() != self.vcpus {
            return Err(VmmError::Config(format!(
                "a boot of {} vCPUs under a watchdog for {}",
                fds.len(),
                self.vcpus
            )));
        }
        let immediate = fds.iter_mut().map(|fd| ImmediateExit::of(fd)).collect();
        self.watchdog.resume();
        let threads = Threads {
            server,
            watchdog: &self.watchdog,
            ending: Mutex::new(None),
            stopping: AtomicBool::new(false),
            immediate,
        };
        let exits = threads.run(&mut fds)?;
        let (vcpu, end) = threads
            .ending
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .ok_or_else(|| VmmError::UnhandledExit("the vCPUs stopped without an end".into()))?;
        let end = match end {
            Some(e) => End::Served(e),
            None => End::Hang(self.hang_report::<S>(&fds)),
        };
        Ok(Boot { end, vcpu, exits })
    }

    fn hang_report<S: ExitServer>(&self, fds: &[&mut VcpuFd]) -> Facts {
        hang_facts(
            self.limit,
            &self.watchdog.at_fire().unwrap_or_default(),
            fds.iter().map(|fd| S::post_mortem(fd)),
        )
    }
}

/// `hang=…` and, per vCPU, its state when vCPU 0's watchdog fired and
/// where it is now (`post_mortem`, in vCPU order).
fn hang_facts(
    limit: Duration,
    at_fire: &[VcpuState],
    post_mortem: impl Iterator<Item = String>,
) -> Facts {
    let mut f = Facts::default();
    f.add(
        "hang",
        format!("vcpu_ran_{}s_without_an_exit", limit.as_secs()),
    );
    for (i, now) in post_mortem.enumerate() {
        let state = at_fire
            .iter()
            .find(|s| s.vcpu == i)
            .map_or_else(|| "-".into(), ToString::to_string);
        f.add(format!("hang_vcpu{i}"), format!("{state},{now}"));
    }
    f
}

/// What one boot's vCPU threads share.
struct Threads<'a, S: ExitServer> {
    server: &'a S,
    watchdog: &'a Watchdog,
    /// The vCPU that ended the boot and how (None: vCPU 0's watchdog).
    ending: Mutex<Option<(usize, Option<S::End>)>>,
    stopping: AtomicBool,
    immediate: Vec<ImmediateExit>,
}

impl<S: ExitServer> Threads<'_, S> {
    /// vCPUs 1.. on their own threads, vCPU 0 on this one, then the joins.
    /// A vCPU thread's panic (a VMM bug) goes on once all are joined.
    fn run(&self, fds: &mut [&mut VcpuFd]) -> Result<Vec<u64>, VmmError> {
        let Some((bsp, aps)) = fds.split_first_mut() else {
            return Err(VmmError::Config("a VM without vCPUs cannot run".into()));
        };
        let mut exits = vec![0; aps.len() + 1];
        thread::scope(|s| {
            let mut threads = Vec::with_capacity(aps.len());
            let mut spawn_error = None;
            for (i, fd) in aps.iter_mut().enumerate() {
                let id = i + 1;
                match thread::Builder::new()
                    .name(format!("vcpu{id}"))
                    .spawn_scoped(s, move || self.vcpu(id, fd))
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
            if spawn_error.is_none() {
                exits[0] = self.vcpu(0, bsp);
            } else {
                self.stop();
            }
            for (t, n) in threads.into_iter().zip(&mut exits[1..]) {
                match t.join() {
                    Ok(e) => *n = e,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            spawn_error.map_or(Ok(()), Err)
        })?;
        Ok(exits)
    }

    /// One vCPU's thread: KVM_RUN, serve, again, until the boot is over.
    /// Returns how many exits it had.
    fn vcpu(&self, id: usize, fd: &mut VcpuFd) -> u64 {
        let watch = self.watchdog.attach(id);
        let _unwind = StopOnPanic(self);
        let mut exits = 0;
        loop {
            // Once the boot is over this KVM_RUN is the last (module doc).
            let last = self.stopping.load(Ordering::SeqCst);
            if id == 0 && !last && self.watchdog.fired() {
                self.finish(0, None);
                continue;
            }
            watch.enter();
            let result = fd.run();
            let arrived = Instant::now();
            watch.leave(watch_reason(&result));
            if last {
                break;
            }
            exits += 1;
            let end = match result {
                // A signal (the watchdog's, or a stop while this vCPU was
                // in the guest), or an x86 AP leaving its wait for SIPI
                // (EAGAIN). Only vCPU 0's watchdog ends the boot.
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    (id == 0 && self.watchdog.fired()).then_some(None)
                }
                exit => self.server.serve(id, exit, arrived).map(Some),
            };
            if let Some(end) = end {
                self.finish(id, end);
            }
        }
        exits
    }

    /// Records the boot's end (the first one counts) and stops every vCPU.
    fn finish(&self, vcpu: usize, end: Option<S::End>) {
        self.ending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert((vcpu, end));
        self.stop();
    }

    /// `immediate_exit` first, then the signals (module doc).
    fn stop(&self) {
        for i in &self.immediate {
            i.set();
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.watchdog.stop_all();
    }
}

/// Stops the other vCPUs when a vCPU thread unwinds (a VMM bug): the scope
/// would otherwise wait for them forever before passing the panic on.
struct StopOnPanic<'a, 'b, S: ExitServer>(&'a Threads<'b, S>);

impl<S: ExitServer> Drop for StopOnPanic<'_, '_, S> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.stop();
        }
    }
}

/// One vCPU's `kvm_run.immediate_exit`, settable from any thread.
struct ImmediateExit(*mut u8);

// SAFETY: the pointer is into the vCPU's kvm_run page, which lives as long
// as its VcpuFd, which outlives every Threads (Runner::boot borrows the fds
// for the Threads' whole life); the byte is only stored to atomically, and
// KVM only reads it (at KVM_RUN's start).
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
        // by this process while the Threads live (kvm-ioctls' run() reads
        // other fields of the page; nothing else writes this one).
        unsafe { AtomicU8::from_ptr(self.0) }.store(1, Ordering::SeqCst);
    }
}

/// What KVM_RUN returned, as the watchdog records it.
fn watch_reason(r: &Result<VcpuExit<'_>, kvm_ioctls::Error>) -> u32 {
    match r {
        Ok(exit) => kvm_exit(exit).0,
        Err(e) if e.errno() == libc::EINTR => kb::KVM_EXIT_INTR,
        Err(e) if e.errno() == libc::EAGAIN => watchdog::EXIT_EAGAIN,
        Err(_) => watchdog::EXIT_FAILED,
    }
}

/// KVM_EXIT_* and its first detail word, for `end=` facts and the
/// watchdog's last-exit record.
pub fn kvm_exit(exit: &VcpuExit<'_>) -> (u32, u64) {
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
        // The rest cannot happen here (s390, PPC, Hyper-V/Xen exits this
        // VMM never enables); still never a panic.
        _ => (u32::MAX, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hang_report_names_every_vcpu_then_and_now() {
        let at_fire = [
            VcpuState {
                vcpu: 0,
                in_run_ms: Some(60_004),
                out_ms: None,
                exits: 812,
                last_exit: kb::KVM_EXIT_MMIO,
            },
            VcpuState {
                vcpu: 1,
                in_run_ms: Some(59_000),
                out_ms: None,
                exits: 0,
                last_exit: watchdog::NO_EXIT,
            },
        ];
        let now = [
            "pc:0x80001234,mp_state:runnable",
            "pc:0x0,mp_state:stopped",
            "?",
        ];
        let f = hang_facts(
            Duration::from_secs(60),
            &at_fire,
            now.iter().map(|s| s.to_string()),
        );
        assert_eq!(
            f.line(),
            "# convtest-vmm: hang=vcpu_ran_60s_without_an_exit \
             hang_vcpu0=in_KVM_RUN_60004ms,exits:812,last_exit:mmio,pc:0x80001234,mp_state:runnable \
             hang_vcpu1=in_KVM_RUN_59000ms,exits:0,last_exit:none,pc:0x0,mp_state:stopped \
             hang_vcpu2=-,?\n"
        );
    }

    #[test]
    fn exits_name_their_kvm_exit_and_detail() {
        assert_eq!(
            kvm_exit(&VcpuExit::MmioWrite(0x900_0000, &[0])),
            (kb::KVM_EXIT_MMIO, 0x900_0000)
        );
        assert_eq!(
            kvm_exit(&VcpuExit::SystemEvent(2, &[])),
            (kb::KVM_EXIT_SYSTEM_EVENT, 2)
        );
        assert_eq!(watchdog::exit_name(kvm_exit(&VcpuExit::Hlt).0), "hlt");
    }
}
