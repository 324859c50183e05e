//! Secondary CPUs: what `crate::smp::bring_up` started, checked.

use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use crate::report::tdiag;

/// Every CPU the plan names came up, on its own stack, and runs jobs from
/// CPU 0 concurrently: each computes a seeded value CPU 0 checks, and all
/// hammer one shared counter whose total must come out exact.
pub fn online(ctx: &mut Ctx) -> Verdict {
    use convtest_proto::prng::mix;
    use core::sync::atomic::{AtomicU64, Ordering};
    const ADDS: u64 = 10_000;
    let r = &ctx.smp;
    if ctx.plan.cpus <= 1 {
        return Verdict::Skip("cpus=1: the plan names one CPU (--vcpus N starts more)".into());
    }
    tdiag!("{}", crate::smp::describe(r));
    if !r.failed.is_empty() {
        let list: alloc::vec::Vec<_> = r
            .failed
            .iter()
            .map(|(c, e)| alloc::format!("cpu {c}: {e}"))
            .collect();
        return fail!(
            "{} of {} CPUs online: {}",
            crate::smp::cpus(),
            r.wanted,
            list.join("; ")
        );
    }
    let n = crate::smp::cpus();
    if n != r.wanted {
        return fail!("{n} CPUs run jobs, the plan names {}", r.wanted);
    }
    let seed = ctx.plan.seed;
    let work = |cpu: u64| (0..1000).fold(seed ^ cpu, |acc, _| mix(acc));
    let values: alloc::vec::Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let stacks: alloc::vec::Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let counter = AtomicU64::new(0);
    crate::smp::on_each(&|cpu| {
        let local = 0u8;
        stacks[cpu].store(core::ptr::addr_of!(local) as u64, Ordering::Relaxed);
        values[cpu].store(work(cpu as u64), Ordering::Relaxed);
        for _ in 0..ADDS {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    for (cpu, v) in values.iter().enumerate() {
        let got = v.load(Ordering::Relaxed);
        if got != work(cpu as u64) {
            return fail!(
                "cpu {cpu} computed {got:#x}, expected {:#x}",
                work(cpu as u64)
            );
        }
    }
    let mut sps: alloc::vec::Vec<u64> = stacks.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    sps.sort_unstable();
    if let Some(w) = sps.windows(2).find(|w| w[1] - w[0] < 4096) {
        return fail!(
            "two CPUs ran on one stack (stack addresses {:#x} and {:#x})",
            w[0],
            w[1]
        );
    }
    let total = counter.load(Ordering::Relaxed);
    if total != ADDS * n as u64 {
        return fail!(
            "{n} CPUs added {ADDS} each to one atomic counter: total {total}, expected {}",
            ADDS * n as u64
        );
    }
    tdiag!("{n} CPUs online, own stacks, {total} atomic adds exact");
    Verdict::Pass
}
