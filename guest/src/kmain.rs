//! The platform-neutral main: heap, plan, hypervisor detection, KTAP header,
//! the selected suites, the plan-complete marker, power off.

use crate::arch::{Current, Platform};
use crate::boot::BootInfo;
use crate::console::kprintln;
use crate::suite::{self, Ctx, Verdict};
use crate::{conv, heap, report, series, smp};
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::catalog::{self, TestDef};
use convtest_proto::ktap::{self, Outcome, Word};
use convtest_proto::plan::Plan;

/// The platform's [`Platform::boot_words`], for the header line.
struct BootWords;

impl core::fmt::Display for BootWords {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        Current::boot_words(f)
    }
}

pub fn kmain(boot: &'static BootInfo) -> ! {
    kprintln!();
    kprintln!("{}", ktap::VERSION_LINE);
    let mut test_ram = match boot.free_ram() {
        Ok(free) => free,
        Err(e) => report::crash(format_args!("boot RAM map unusable: {e}"), None),
    };
    let heap = match heap::init(boot, &test_ram) {
        Ok(h) => h,
        Err(e) => report::crash(format_args!("no room for the heap: {e}"), None),
    };
    if let Err(e) = test_ram.subtract(&heap) {
        report::crash(format_args!("free RAM map too fragmented: {e}"), None);
    }

    let mut parsed = Plan::parse(boot.cmdline);
    let series = match series::Series::begin(&mut test_ram, boot.phys_offset, &parsed.plan) {
        Ok(s) => s,
        Err(e) => report::crash(format_args!("{e}"), None),
    };
    // From here on the plan's boot= is the series' word, not the host's.
    parsed.plan.boot = series.index.index;
    // Before the header, which names the CPUs that came up.
    let smp = if parsed.plan.cpus > 1 {
        smp::bring_up(boot, parsed.plan.cpus as usize)
    } else {
        smp::Report::default()
    };
    let probe = Current::probe();
    let mut converter = conv::detect(&probe, boot, &test_ram, parsed.plan.guest_fault);
    if let Some(r) = converter.as_ref().ok().and_then(|c| c.reserved())
        && let Err(e) = test_ram.subtract(&r)
    {
        report::crash(format_args!("free RAM map too fragmented: {e}"), None);
    }
    let granule = converter
        .as_ref()
        .map_or(Current::PAGE_SIZE, |c| c.granule());
    kprintln!(
        "{}arch={} entry={} mode={} hypervisor={} converter={} granule={} page_size={} ram={} console={} counter_hz={} cpus={} boot={} boot_from={} unaccepted={}{}",
        ktap::HEADER_PREFIX,
        Current::NAME,
        boot.entry,
        boot.cpu_mode,
        Word(&alloc::format!("{}", probe.hypervisor())),
        converter.as_ref().map_or("none", |c| c.name()),
        granule,
        Current::PAGE_SIZE,
        boot.ram.total(),
        boot.console,
        Current::cycle_freq().unwrap_or(0),
        smp::cpus(),
        series.index.index,
        series.index.source.as_str(),
        Unaccepted(boot.unaccepted),
        BootWords,
    );
    report::diag(0, format_args!("probe: {}", probe.finding()));
    report::diag(0, format_args!("plan: {}", parsed.plan));
    if parsed.plan.cpus > 1 {
        report::diag(0, format_args!("{}", smp::describe(&smp)));
    }
    describe_boot(&series.index);
    if let Some(g) = parsed.plan.guest_fault {
        report::diag(
            0,
            format_args!(
                "guest-fault: {} injected on purpose (a firmware bug the conversion tests must notice)",
                g.as_str()
            ),
        );
    }
    if let Ok(c) = converter.as_mut() {
        reset_to_private(&mut **c);
    }

    let mut ctx = Ctx {
        boot,
        parsed,
        plan: parsed.plan,
        test_ram,
        heap,
        converter,
        smp,
    };
    let selected: Vec<(usize, &TestDef)> = catalog::TESTS
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.runs_in_boot(
                ctx.plan.tests,
                ctx.plan.inject.is_some(),
                ctx.plan.boot,
                ctx.plan.reboots,
            )
        })
        .collect();
    let suites = group_by_suite(&selected);
    kprintln!("1..{}", suites.len());

    let (mut pass, mut fail, mut skip) = (0usize, 0usize, 0usize);
    for (suite_no, cases) in suites.iter().enumerate() {
        let suite_name = catalog::suite_of(cases[0].1.name);
        kprintln!("{}{}", ktap::INDENT, ktap::VERSION_LINE);
        kprintln!("{}# Subtest: {}", ktap::INDENT, suite_name);
        kprintln!("{}1..{}", ktap::INDENT, cases.len());
        let (mut s_fail, mut s_skip) = (0, 0);
        for (case_no, (index, test)) in cases.iter().enumerate() {
            report::begin_test(*index, case_no + 1);
            let verdict = suite::run(test.name, &mut ctx);
            report::end_test();
            let (outcome, reason) = match &verdict {
                Verdict::Pass => (Outcome::Pass, ""),
                Verdict::PassNoted(note) => (Outcome::Pass, note.as_str()),
                Verdict::Fail(r) => (Outcome::Fail, r.as_str()),
                Verdict::Skip(r) => (Outcome::Skip, r.as_str()),
            };
            match outcome {
                Outcome::Pass => pass += 1,
                Outcome::Fail => {
                    fail += 1;
                    s_fail += 1
                }
                Outcome::Skip => {
                    skip += 1;
                    s_skip += 1
                }
            }
            report::line(1, outcome, case_no + 1, test.name, reason);
        }
        let (outcome, reason) = if s_fail > 0 {
            (Outcome::Fail, "")
        } else if s_skip == cases.len() {
            (Outcome::Skip, "every case skipped")
        } else {
            (Outcome::Pass, "")
        };
        report::line(0, outcome, suite_no + 1, suite_name, reason);
    }
    console_cost(boot.console);
    kprintln!(
        "{}pass={} fail={} skip={}",
        ktap::DONE_PREFIX,
        pass,
        fail,
        skip
    );
    if series.is_last() {
        Current::power_off(fail == 0)
    }
    // Dirty state and all: what a crashed or kexec'ing OS leaves.
    series.reset()
}

/// What this boot's console output cost the guest (scripts/bench-lanes.py
/// reads it): lines, bytes and the time spent in the platform's writes.
fn console_cost(path: &str) {
    let s = crate::console::spent();
    let ns = Current::cycle_freq().map_or(alloc::string::String::new(), |hz| {
        alloc::format!(" ns={}", convtest_proto::bench::cycles_to_ns(s.ticks, hz))
    });
    report::diag(
        0,
        format_args!(
            "console: path={path} lines={} bytes={}{ns}",
            s.lines, s.bytes
        ),
    );
}

/// Where this boot's index came from, when that is worth a line.
fn describe_boot(b: &convtest_proto::reboot::BootIndex) {
    use convtest_proto::reboot::{Source, Stage};
    match b.source {
        Source::Host => report::diag(
            0,
            format_args!(
                "boot {}: no boot record survived the reset (the VMM wiped memory): the index is the host's boot=",
                b.index
            ),
        ),
        Source::Record(Stage::Running) => report::diag(
            0,
            format_args!(
                "boot {}: boot {} ended without its planned reset (a crash or an unplanned reset)",
                b.index,
                b.index.saturating_sub(1)
            ),
        ),
        Source::Record(Stage::Dirty) | Source::First => {}
    }
    if let Some(h) = b.host_disagrees {
        report::diag(
            0,
            format_args!(
                "boot {}: the host's boot={h} disagrees with the guest's own record; the record wins",
                b.index
            ),
        );
    }
}

/// Firmware duty at every boot, before any test: all RAM private again.
/// The cost goes into a diagnostic; a failure is recorded in the converter
/// and fails every conversion test.
fn reset_to_private(c: &mut dyn conv::Converter) {
    match c.reset_to_private() {
        Ok(r) => {
            // ns only when the counter frequency is known: never a 0.
            let ns = Current::cycle_freq().ok().map_or(String::new(), |hz| {
                alloc::format!(" ns={}", convtest_proto::bench::cycles_to_ns(r.cycles, hz))
            });
            report::diag(
                0,
                format_args!(
                    "reset-to-private: ranges={} pages={} cycles={}{ns} calls={} unknown={} method={}",
                    r.ranges, r.pages, r.cycles, r.calls, r.unknown, r.method,
                ),
            );
        }
        Err(e) => report::diag(0, format_args!("reset-to-private: failed: {e}")),
    }
    if let Some(note) = c.take_note() {
        report::diag(0, format_args!("{note}"));
    }
}

/// Consecutive runs of one suite (the catalog keeps each suite contiguous).
fn group_by_suite<'a>(
    selected: &'a [(usize, &'static TestDef)],
) -> Vec<&'a [(usize, &'static TestDef)]> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=selected.len() {
        if i == selected.len()
            || catalog::suite_of(selected[i].1.name) != catalog::suite_of(selected[start].1.name)
        {
            if start < i {
                groups.push(&selected[start..i]);
            }
            start = i;
        }
    }
    groups
}

/// The header's `unaccepted=`: `none`, or `left-out:<bytes>` for memory the
/// firmware left unaccepted, which this kernel keeps out of its RAM map.
struct Unaccepted(u64);

impl core::fmt::Display for Unaccepted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            0 => f.write_str("none"),
            n => write!(f, "left-out:{n}"),
        }
    }
}
