//! `stress.storm`: a seeded conversion storm (`convtest_proto::storm`) over
//! 8 MiB, checked against the model at every operation and against the
//! platform at every checkpoint. Operations: share and unshare of random
//! ranges (single granules, runs, 2 MiB-aligned 2 MiB ranges, straddles of
//! 2 MiB and — where free RAM crosses one — 1 GiB boundaries), guest writes
//! in sequential, strided and scattered order, guest read-backs, host
//! verifies of shared ranges and host probes of private ones.
//!
//! With several CPUs (`cpus=`) every CPU runs its own seeded sequence over
//! its own 4 MiB slice, all converting through the one shared converter at
//! once, in rounds of 1000 operations; between rounds, with every CPU
//! quiet, CPU 0 checks each slice against its model, through the tracker,
//! the ABI and the host (`storm_cpu.rs`).
//!
//! A failure names the seed, the CPU and the operation index, and how to
//! replay the run up to it.

use super::expect;
use super::harness::{T, shared_runs};
use super::storm_cpu::{self, Counts, Failure, Lane, SharedConverter, StormCtx};
use super::window::{WINDOW, Window};
use crate::arch::{Current, Platform};
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::range::{MemRange, RangeList};
use convtest_proto::storm;
use core::sync::atomic::AtomicBool;

/// Bytes the storm works in with one CPU, and per CPU with several.
const AREA: u64 = 8 << 20;
const SLICE: u64 = 4 << 20;
const ONE_GIB: u64 = 1 << 30;
/// Operations between checkpoints.
const CHECKPOINT_EVERY: u64 = 1000;

/// Bytes of the storm's area for `cpus` CPUs.
pub(super) fn area_bytes(cpus: usize) -> u64 {
    if cpus <= 1 { AREA } else { SLICE * cpus as u64 }
}

/// The storm's area of `bytes`: across a 1 GiB boundary when free RAM has
/// one (the straddles then include 1 GiB ones), else right above the
/// conversion window and the reboot series' dirty area.
pub(super) fn area(test_ram: &RangeList, win: &Window, bytes: u64) -> Result<MemRange, String> {
    let taken = MemRange::from_len(win.base, 2 * WINDOW);
    let top = test_ram.iter().map(|r| r.end).max().unwrap_or(0);
    let across_gib = (1..=top / ONE_GIB)
        .map(|k| MemRange::from_len(k * ONE_GIB - bytes / 2, bytes))
        .find(|a| test_ram.covers(a) && !a.overlaps(&taken));
    let above = MemRange::from_len(taken.end, bytes);
    across_gib
        .or_else(|| test_ram.covers(&above).then_some(above))
        .inspect(|&a| Current::first_touch(a))
        .ok_or_else(|| {
            format!(
                "no room for the storm's {} MiB above {:#x}: give the guest more RAM",
                bytes >> 20,
                taken.end
            )
        })
}

impl T<'_> {
    pub(super) fn storm(&mut self, area: Result<MemRange, String>) -> Verdict {
        let area = match area {
            Ok(a) => a,
            Err(why) => return fail!("{why}"),
        };
        let abi = self.conv.name();
        let Some((rule, refusal)) = expect::storm_rule(abi) else {
            return Verdict::Skip(format!("no storm rules for converter {abi} in this suite"));
        };
        if !self.plan.host {
            return Verdict::Skip(
                "host=off: the storm's host checks need a VMM that answers them (convtest's own)"
                    .into(),
            );
        }
        if let Err(why) = self.storm_cleanup(area) {
            return fail!("before the storm: {why}");
        }
        let cpus = crate::smp::cpus();
        let g = self.win.granule;
        let seed = self.plan.seed;
        let total = self.plan.storm_len();
        // Each CPU runs its share; replay= stops every CPU after that op.
        let per_cpu = total.div_ceil(cpus as u64);
        let last = self
            .plan
            .replay
            .map_or(per_cpu, |r| r.saturating_add(1).min(per_cpu));
        let slice = area.len() / cpus as u64;
        let lanes: Vec<spin::Mutex<Lane>> = (0..cpus)
            .map(|c| {
                let s = MemRange::from_len(area.start + c as u64 * slice, slice);
                spin::Mutex::new(storm_cpu::lane(
                    c,
                    seed,
                    s,
                    g,
                    rule,
                    self.plan.content,
                    CHECKPOINT_EVERY,
                ))
            })
            .collect();
        let stop = AtomicBool::new(false);
        let host = crate::hostcheck::Host::of(&self.plan);
        let t0 = Current::cycles();
        let mut failed: Option<(usize, Failure)> = None;
        let mut done = 0;
        while done < last && failed.is_none() {
            let until = (done + CHECKPOINT_EVERY).min(last);
            let shared = SharedConverter::new(&mut *self.conv);
            let ctx = StormCtx {
                conv: &shared,
                boot: self.boot,
                host,
                refusal,
                abi,
                seed,
                last,
                stop: &stop,
            };
            crate::smp::on_each(&|cpu| ctx.run_round(cpu, &mut lanes[cpu].lock(), until));
            failed = first_failure(&lanes);
            if failed.is_none() {
                // Quiescent: every CPU is back in its job loop.
                for (cpu, l) in lanes.iter().enumerate() {
                    let mut l = l.lock();
                    if let Err(why) = ctx.checkpoint(&mut l, until ^ cpu as u64) {
                        let label = format!("the checkpoint after op {}", until - 1);
                        failed = Some((cpu, (until - 1, label, why)));
                        break;
                    }
                }
            }
            done = until;
        }
        let cycles = Current::cycles().wrapping_sub(t0);
        let mut n = Counts::default();
        let mut ops = 0;
        for l in &lanes {
            let l = l.lock();
            n.add(&l.counts);
            ops += l.failure.as_ref().map_or(l.storm.index(), |f| f.0 + 1);
            // A CPU that asked the host nothing has no evidence to add.
            if l.evidence.is_some() {
                self.weigh(l.evidence);
            }
        }
        let cleanup = self.storm_cleanup(area);
        self.storm_report(area, cpus, ops, total, &n, cycles);
        match (failed, cleanup) {
            (Some((cpu, (i, op, why))), c) => fail!(
                "seed {seed:#x} cpu {cpu} op {i} ({op}): {why}{}; replay: --seed {seed:#x}{} --replay {i}",
                c.err().map_or(String::new(), |e| format!("; cleanup: {e}")),
                if cpus > 1 {
                    format!(" --vcpus {cpus}")
                } else {
                    String::new()
                },
            ),
            (None, Err(e)) => fail!("after {ops} ops: cleanup: {e}"),
            (None, Ok(())) if self.plan.replay.is_some() => Verdict::PassNoted(format!(
                "replay: every CPU stopped after op {} as asked; nothing failed",
                last - 1
            )),
            (None, Ok(())) => Verdict::Pass,
        }
    }

    fn storm_report(
        &self,
        area: MemRange,
        cpus: usize,
        ops: u64,
        total: u64,
        n: &Counts,
        cycles: u64,
    ) {
        tdiag!(
            "storm: seed {:#x}, {ops} of {total} ops on {cpus} CPU(s) over {area}{}: {} shares + {} unshares ({} refused as predicted, {} calls), {} touches, {} guest verifies, {} host checks, {} ABI probes, {} checkpoints; straddles 2M {} 1G {}, 2M-aligned 2M {}",
            self.plan.seed,
            if storm::straddles(area, ONE_GIB) {
                " (across a 1 GiB boundary)"
            } else {
                " (no 1 GiB boundary in free RAM: no 1G straddles)"
            },
            n.shares,
            n.unshares,
            n.refused,
            n.calls,
            n.touches,
            n.verifies,
            n.host,
            n.probes,
            n.checkpoints,
            n.straddle_2m,
            n.straddle_1g,
            n.hint_2m
        );
        if let Ok(hz) = Current::cycle_freq() {
            let ns = convtest_proto::bench::cycles_to_ns(cycles, hz).max(1);
            tdiag!(
                "storm: {} ms, {} ops/s, {} conversions/s",
                ns / 1_000_000,
                u128::from(ops) * 1_000_000_000 / u128::from(ns),
                u128::from(n.shares + n.unshares) * 1_000_000_000 / u128::from(ns)
            );
        }
    }

    /// Every granule of `area` private, run by run from the tracker.
    pub(super) fn storm_cleanup(&mut self, area: MemRange) -> Result<(), String> {
        if self.conv.resolve(area) != 0 {
            return Err(format!(
                "{area}: unknown state the hypervisor refused to resolve"
            ));
        }
        for run in shared_runs(&*self.conv, area) {
            self.conv.unshare(run).map_err(|e| format!("{run}: {e}"))?;
        }
        Ok(())
    }
}

/// The failure of the lowest-numbered CPU that failed.
fn first_failure(lanes: &[spin::Mutex<Lane>]) -> Option<(usize, Failure)> {
    lanes
        .iter()
        .enumerate()
        .find_map(|(cpu, l)| l.lock().failure.clone().map(|f| (cpu, f)))
}
