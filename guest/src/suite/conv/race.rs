//! `stress.race`: CPU 0 converts a set of granules while every other CPU
//! reads and writes them, then, with every CPU quiet, the guest's and the
//! host's views must agree: a granule just made private takes a canary
//! written *by a CPU that was racing on it* (whose translation of the
//! shared page the platform had to invalidate), and the host must find that
//! canary nowhere and be refused the granule; a granule just made shared
//! takes a pattern from that CPU and the host must read exactly it; CPU 0
//! must read what the other CPU wrote. Rounds: iters / 10 (at least 10).

use super::expect;
use super::harness::{T, at_iter};
use super::storm_cpu::SharedConverter;
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::hostcheck::{Request, pattern_word};
use convtest_proto::prng::{SplitMix64, mix};
use convtest_proto::range::MemRange;
use convtest_proto::tracker::{PageState, Target};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Granules CPU 0 converts each round.
const SET: u64 = 16;

impl T<'_> {
    pub(super) fn race(&mut self, area: Result<MemRange, String>) -> Verdict {
        let cpus = crate::smp::cpus();
        if let Some(skip) = self.needs_cpus_and_host("a race") {
            return skip;
        }
        let area = match area {
            Ok(a) => a,
            Err(why) => return fail!("{why}"),
        };
        let g = self.win.granule;
        let set = MemRange::from_len(area.start, SET * g);
        let rounds = (self.plan.iters / 10).max(10);
        let mut racing_ops = 0u64;
        let mut flips = 0u64;
        let verdict = (|| {
            self.resolve(set)?;
            for round in 0..rounds {
                let (ops, n) = self.race_round(set, round)?;
                racing_ops += ops;
                flips += n;
                self.race_settle(set, round)
                    .map_err(|v| at_iter(v, round))?;
            }
            Ok(())
        })();
        let cleanup = self.storm_cleanup(set);
        tdiag!(
            "race: {rounds} rounds over {set} on {cpus} CPUs: {flips} conversions by cpu 0, {racing_ops} racing accesses by the others"
        );
        match (verdict, cleanup) {
            (Err(v), _) => v,
            (Ok(()), Err(e)) => fail!("cleanup: {e}"),
            (Ok(()), Ok(())) => Verdict::Pass,
        }
    }

    /// One racing round: CPU 0 flips the granules a seeded mask names while
    /// the others hammer the whole set. Returns the racing accesses and the
    /// conversions made.
    fn race_round(&mut self, set: MemRange, round: u32) -> Result<(u64, u64), Verdict> {
        let g = self.win.granule;
        let mask = mix(self.plan.seed ^ u64::from(round)) | 1;
        let plan: Vec<(MemRange, Target)> = (0..SET)
            .filter(|k| mask & (1 << k) != 0)
            .map(|k| {
                let r = MemRange::from_len(set.start + k * g, g);
                let to = match self.conv.state(r.start) {
                    Some(PageState::Shared) => Target::Private,
                    _ => Target::Shared,
                };
                (r, to)
            })
            .collect();
        let converting = AtomicBool::new(true);
        let accesses = AtomicU64::new(0);
        let error: spin::Mutex<Option<String>> = spin::Mutex::new(None);
        let seed = self.plan.seed;
        let boot = self.boot;
        let shared = SharedConverter::new(&mut *self.conv);
        crate::smp::on_each(&|cpu| {
            if cpu == 0 {
                for &(r, to) in &plan {
                    let res = shared.with(|c| match to {
                        Target::Shared => c.share(r),
                        Target::Private => c.unshare(r),
                    });
                    if let Err(e) = res {
                        error.lock().get_or_insert(format!("{to:?} {r}: {e}"));
                        break;
                    }
                }
                converting.store(false, Ordering::Release);
                return;
            }
            let mut rng = SplitMix64::new(mix(seed ^ round as u64 ^ ((cpu as u64) << 32)));
            let mut n = 0u64;
            while converting.load(Ordering::Acquire) {
                let pa = set.start + rng.below(set.len() / 8) * 8;
                let v = rng.next_u64();
                let p = boot.phys_to_virt(pa) as *mut u64;
                // SAFETY: `set` is the test's own free RAM, mapped and
                // word-aligned; racing on its content is the point (any
                // value is allowed until the round settles).
                unsafe {
                    p.write_volatile(v);
                    let _ = p.read_volatile();
                }
                n += 1;
            }
            accesses.fetch_add(n, Ordering::Relaxed);
        });
        if let Some(e) = error.lock().take() {
            return Err(fail!(
                "round {}: the hypervisor refused a conversion: {e}",
                round + 1
            ));
        }
        Ok((accesses.load(Ordering::Relaxed), plan.len() as u64))
    }

    /// The quiet point after a round: CPU 1 writes every granule, CPU 0
    /// reads it back and the host must agree with the tracker.
    fn race_settle(&mut self, set: MemRange, round: u32) -> Result<(), Verdict> {
        let g = self.win.granule;
        let canary = self.canary(0x7ace ^ u64::from(round));
        let tag = mix(canary);
        let states: Vec<(u64, PageState)> = (set.start..set.end)
            .step_by(g as usize)
            .map(|a| (a, self.conv.state(a).unwrap_or(PageState::Unknown)))
            .collect();
        if let Some((a, _)) = states.iter().find(|(_, s)| *s == PageState::Unknown) {
            return Err(fail!("{a:#x} is of unknown state after the round"));
        }
        let boot = self.boot;
        crate::smp::on_each(&|cpu| {
            if cpu != 1 {
                return;
            }
            for &(a, s) in &states {
                for pa in (a..a + g).step_by(8) {
                    let v = if s == PageState::Private {
                        canary
                    } else {
                        pattern_word(tag, pa)
                    };
                    // SAFETY: as in the round.
                    unsafe { (boot.phys_to_virt(pa) as *mut u64).write_volatile(v) };
                }
            }
        });
        for &(a, s) in &states {
            let r = MemRange::from_len(a, g);
            let want = |pa| {
                if s == PageState::Private {
                    canary
                } else {
                    pattern_word(tag, pa)
                }
            };
            for pa in (r.start..r.end).step_by(8) {
                let got = self.read(pa);
                if got != want(pa) {
                    return Err(fail!(
                        "cpu 0 reads {got:#x} at {pa:#x} ({s:?}) where cpu 1 just wrote {:#x}",
                        want(pa)
                    ));
                }
            }
        }
        // The host: the canary nowhere, each private granule refused, each
        // shared run exactly cpu 1's pattern.
        self.host(
            Request::Scan { canary },
            "cpu 1's canary in granules just made private",
        )?;
        if let Some(&(a, _)) = states.iter().find(|(_, s)| *s == PageState::Private) {
            self.host(
                Request::NoRead {
                    range: MemRange::from_len(a, g),
                    canary,
                },
                "a granule just made private",
            )?;
        }
        let mut shared_runs: Vec<MemRange> = Vec::new();
        for &(a, s) in &states {
            if s == PageState::Shared {
                match shared_runs.last_mut() {
                    Some(l) if l.end == a => l.end += g,
                    _ => shared_runs.push(MemRange::from_len(a, g)),
                }
            }
        }
        for r in shared_runs {
            self.host(
                Request::Verify {
                    range: r,
                    seed: tag,
                },
                "cpu 1's pattern in granules just made shared",
            )?;
        }
        // And the ABI's own word on one private granule, where it has one.
        if let Some(&(a, _)) = states.iter().find(|(_, s)| *s == PageState::Private)
            && let Some((call, code, from)) = expect::private_probe(self.conv.name(), a)
        {
            match self.conv.raw(call) {
                Ok(c) if c == code => {}
                Ok(c) => {
                    return Err(fail!(
                        "{call} of {a:#x}, private by the tracker, answered {c}; {from} must answer {code}"
                    ));
                }
                Err(e) => return Err(fail!("{call}: {e:?}")),
            }
        }
        Ok(())
    }

    /// The SKIP of a test that needs a second CPU and the host's checks.
    pub(super) fn needs_cpus_and_host(&self, what: &str) -> Option<Verdict> {
        let cpus = crate::smp::cpus();
        if cpus < 2 {
            return Some(Verdict::Skip(format!(
                "cpus={cpus}: {what} needs a second CPU (--vcpus N, N ≥ 2)"
            )));
        }
        (!self.plan.host).then(|| Verdict::Skip(format!("host=off: {what} is checked by the host")))
    }

    fn read(&self, pa: u64) -> u64 {
        // SAFETY: callers pass addresses in the test's own mapped RAM.
        unsafe { self.word(pa).read_volatile() }
    }
}
