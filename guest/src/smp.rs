//! Secondary CPUs, platform-neutral half. `bring_up` starts the CPUs the
//! plan names (`cpus=`) once, at boot, each on its own heap stack; the arch
//! layer's start code (`Platform::start_cpu`) sets up the CPU (paging,
//! descriptor tables or vector base) and calls `secondary_main`, which
//! checks in and then runs whatever job CPU 0 posts with `on_each`, until
//! power-off. Between jobs a CPU sleeps in `Platform::idle_wait` when
//! `Platform::idle_init` says it can (CPU 0 wakes it with
//! `Platform::wake_others`), else it spins.

use crate::arch::{Current, Platform, StartError};
use crate::boot::{BootInfo, MAX_CPUS};
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::crumbs::Doing;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// How long CPU 0 waits on a job's end before it wakes the others again.
const WAKE_AGAIN_SPINS: u32 = 1 << 16;

/// Bytes of stack per secondary CPU.
pub const STACK_BYTES: usize = 64 << 10;

/// What `bring_up` did, for the header and `smp.online`.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// CPUs the plan asked for.
    pub wanted: usize,
    /// Hardware ids used, by `cpu` index.
    pub hw_ids: Vec<u64>,
    /// CPUs the platform described (None: the boot path does not say).
    pub described: Option<usize>,
    /// `(cpu, why)` for every CPU that did not come online.
    pub failed: Vec<(usize, StartError)>,
}

impl Report {
    pub fn online(&self) -> usize {
        online_count()
    }
}

/// Bit `cpu` set once that CPU runs `secondary_main` (bit 0: the boot CPU).
static ONLINE: AtomicU64 = AtomicU64::new(1);
/// Incremented by `on_each` for every job.
static JOB_GEN: AtomicU64 = AtomicU64::new(0);
/// The posted job: a pointer to a `&dyn Fn(usize) + Sync` on CPU 0's stack.
static JOB: AtomicPtr<Job<'static>> = AtomicPtr::new(core::ptr::null_mut());
/// Per CPU, the last job generation it finished.
static DONE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// How many CPUs (0 and the contiguous online ones after it) run jobs.
static STARTED: AtomicUsize = AtomicUsize::new(1);

type Job<'a> = &'a (dyn Fn(usize) + Sync);

fn online_count() -> usize {
    ONLINE.load(Ordering::Acquire).count_ones() as usize
}

pub fn is_online(cpu: usize) -> bool {
    cpu < MAX_CPUS && ONLINE.load(Ordering::Acquire) & (1 << cpu) != 0
}

/// How many CPUs run jobs (1 before `bring_up`).
pub fn cpus() -> usize {
    STARTED.load(Ordering::Acquire)
}

/// Starts CPUs 1..wanted. Hardware ids: the platform's list when it
/// describes one, else 0..wanted (x86 APIC IDs as QEMU and KVM number them).
/// A CPU that does not check in within about a second is reported, not
/// waited for forever.
pub fn bring_up(boot: &BootInfo, wanted: usize) -> Report {
    let described = (!boot.cpus.ids().is_empty()).then(|| boot.cpus.described());
    let wanted = wanted.clamp(1, MAX_CPUS);
    let hw_ids: Vec<u64> = if boot.cpus.ids().is_empty() {
        (0..wanted as u64).collect()
    } else {
        boot.cpus.ids().iter().copied().take(wanted).collect()
    };
    let mut failed = Vec::new();
    for cpu in hw_ids.len()..wanted {
        failed.push((
            cpu,
            StartError::Unsupported("the platform describes fewer CPUs than the plan's cpus="),
        ));
    }
    for (cpu, &hw) in hw_ids.iter().enumerate().skip(1) {
        let stack: &'static mut [u8] = alloc::vec![0u8; STACK_BYTES].leak();
        // 16-byte aligned top of the CPU's own stack.
        let top = (stack.as_mut_ptr() as u64 + STACK_BYTES as u64) & !15;
        if let Err(e) = Current::start_cpu(cpu, hw, top, secondary_main) {
            failed.push((cpu, e));
            continue;
        }
        if let Err(e) = wait_online(cpu) {
            failed.push((cpu, e));
        }
    }
    failed.sort_by_key(|(c, _)| *c);
    // Jobs go to the contiguous prefix of online CPUs only.
    let mut n = 1;
    while n < wanted && is_online(n) {
        n += 1;
    }
    STARTED.store(n, Ordering::Release);
    Report {
        wanted,
        hw_ids,
        described,
        failed,
    }
}

fn wait_online(cpu: usize) -> Result<(), StartError> {
    // A second at the counter's rate (or 2^31 cycles when unknown).
    let budget = Current::cycle_freq().unwrap_or(1 << 31);
    let t0 = Current::cycles();
    loop {
        if is_online(cpu) {
            return Ok(());
        }
        let waited = Current::cycles().wrapping_sub(t0);
        if waited > budget {
            return Err(StartError::NoCheckIn {
                waited_cycles: waited,
            });
        }
        core::hint::spin_loop();
    }
}

/// Where a secondary CPU's arch start code lands, on its own stack.
pub fn secondary_main(cpu: usize) -> ! {
    let halts = Current::idle_init();
    ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
    let mut seen = 0;
    loop {
        let gen_now = JOB_GEN.load(Ordering::Acquire);
        if gen_now == seen || cpu >= cpus() {
            if halts {
                Current::idle_wait();
            } else {
                core::hint::spin_loop();
            }
            continue;
        }
        seen = gen_now;
        let job = JOB.load(Ordering::Acquire);
        // SAFETY: `on_each` stored a pointer to a live `Job` before bumping
        // JOB_GEN and keeps it alive until every CPU stored its DONE.
        let job: Job<'_> = unsafe { *job };
        crate::crumbs::doing(cpu, Doing::Job(gen_now));
        job(cpu);
        crate::crumbs::doing(cpu, Doing::Idle(gen_now));
        DONE[cpu].store(gen_now, Ordering::Release);
    }
}

/// Runs `job(cpu)` on every CPU that runs jobs, CPU 0 included, and returns
/// when all are done. Only CPU 0 calls it.
pub fn on_each(job: &(dyn Fn(usize) + Sync)) {
    let n = cpus();
    if n == 1 {
        job(0);
        return;
    }
    let mut slot: Job<'_> = job;
    JOB.store(
        (&mut slot as *mut Job<'_>).cast::<Job<'static>>(),
        Ordering::Release,
    );
    let gen_now = JOB_GEN.fetch_add(1, Ordering::AcqRel) + 1;
    Current::wake_others();
    job(0);
    for done in DONE.iter().take(n).skip(1) {
        let mut spins = 0u32;
        while done.load(Ordering::Acquire) != gen_now {
            // Again now and then: a wake-up that went astray costs a
            // while, not the run.
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(WAKE_AGAIN_SPINS) {
                Current::wake_others();
            }
            core::hint::spin_loop();
        }
    }
    JOB.store(core::ptr::null_mut(), Ordering::Release);
}

/// One line for the diagnostics: what came up.
pub fn describe(r: &Report) -> String {
    let ids: Vec<String> = r.hw_ids.iter().map(|h| alloc::format!("{h:#x}")).collect();
    let mut s = alloc::format!(
        "smp: cpus={} online={} hw_ids={} described={}",
        r.wanted,
        r.online(),
        ids.join(","),
        r.described
            .map_or(String::from("not by this boot path"), |d| alloc::format!(
                "{d}"
            ))
    );
    for (cpu, e) in &r.failed {
        s.push_str(&alloc::format!("; cpu {cpu}: {e}"));
    }
    s
}
