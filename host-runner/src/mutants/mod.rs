//! `convtest mutants`: break the platform on purpose and check that the
//! tests notice. Per lane, one L1 boot serves every run: per section of the
//! lane's kill table, a clean run and one run per applicable mutant (a
//! deliberate VMM fault, `--vmm-fault`, or guest firmware fault, `gfault=`).
//! Each run's KTAP is judged like `convtest run` judges one, and the
//! section's results form its table, held against the one written down in
//! `expected.rs`. The sections (lane.rs): conv, single boots of the `conv.*`
//! tests and the seeded storm; reboot, runs of two boots each
//! (`reboots=1`): the reset tests against the firmware's skipped reset, a
//! VMM that claims a reset policy and does not apply it (`--vmm-fault
//! no-reset`) and shares never made; smp, runs on two vCPUs of the race,
//! the storm and overlapping conversions. Exit 0 only when, in every table,
//! the clean run passed, every test was killed by some mutant, every mutant
//! was noticed by some test, and the table is the expected one.

pub mod expected;
pub mod lane;
pub mod table;

use crate::backend::nested::{self, InnerRun, Part};
use crate::backend::spec::BootSpec;
use crate::backend::vmm;
use crate::cli::{L1Options, MutantsArgs};
use crate::error::Error;
use crate::ktap;
use crate::machine::{Boot, Machine};
use crate::verdict::{self, FinishedRun};
use convtest_proto::arch::Arch;
use convtest_proto::plan::{DEFAULT_SEED, Plan};
use convtest_vmm::VmmOptions;
use lane::{CONV_TESTS, Lane, Mutant, SMP_TESTS, Section};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};
use table::{LaneTable, Row};

/// Guest RAM per run (the default of `convtest run`).
const MEMORY_MIB: u32 = 256;
/// The L1's own share of the outer timeout (boot, modules, power-off);
/// the runs' limits come on top (`nested::outer_timeout`).
const L1_ALLOWANCE: Duration = Duration::from_secs(180);

pub fn main(args: &MutantsArgs) -> i32 {
    let lanes = match resolve_lanes(&args.lanes) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("convtest mutants: {e}");
            return 2;
        }
    };
    let workspace = args
        .workspace
        .clone()
        .unwrap_or_else(crate::config::default_workspace);
    let started = Instant::now();
    let mut tables = Vec::new();
    for lane in &lanes {
        if !args.quiet {
            eprintln!(
                "convtest mutants: {}: {} run(s) in one L1 boot ...",
                lane.name,
                runs_of(lane).len()
            );
        }
        let lane_tables = match run_lane(lane, args, &workspace) {
            Ok(t) => t,
            // What the user must change stops every lane (status 2); any
            // other error fails this lane's tables.
            Err(
                e @ (Error::Usage(_)
                | Error::MissingTool { .. }
                | Error::Unsupported { .. }
                | Error::Unavailable { .. }
                | Error::UnusableModules { .. }
                | Error::UnusableBuild { .. }
                | Error::BadRunList { .. }
                | Error::NeedsBuild { .. }),
            ) => {
                eprintln!("convtest mutants: {}: {e}", lane.name);
                return 2;
            }
            Err(e) => Section::of(lane.platform)
                .iter()
                .map(|&s| LaneTable::failed(lane, s, &s.tests(), e.to_string()))
                .collect(),
        };
        for t in lane_tables {
            print!("{}", t.render());
            tables.push(t);
        }
    }
    let ok = tables.iter().all(|t| t.ok);
    let report = Report {
        verdict: if ok { "pass" } else { "fail" },
        lanes: &tables,
        wall_ms: started.elapsed().as_millis() as u64,
    };
    if let Some(path) = &args.json {
        // Plain data with string keys: serialization cannot fail.
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        if let Err(e) = crate::report::write_file(path, text.as_bytes()) {
            eprintln!("convtest mutants: {e}");
            return 2;
        }
    }
    if let Some(path) = &args.kcidb.kcidb {
        let mut doc = crate::report::kcidb::Document::new(&args.kcidb.kcidb_origin, "mutants");
        doc.add_mutants(&tables, |name| {
            lanes
                .iter()
                .find(|l| l.name == name)
                .map_or_else(String::new, |l| l.arch.as_str().to_string())
        });
        if let Err(e) = crate::report::write_file(path, doc.to_json().as_bytes()) {
            eprintln!("convtest mutants: {e}");
            return 2;
        }
    }
    println!(
        "{}  convtest mutants: {} lane(s), {} kill table(s), {:.0} s",
        if ok { "PASS" } else { "FAIL" },
        lanes.len(),
        tables.len(),
        started.elapsed().as_secs_f64()
    );
    if ok { 0 } else { 1 }
}

#[derive(Serialize)]
struct Report<'a> {
    verdict: &'static str,
    lanes: &'a [LaneTable],
    wall_ms: u64,
}

fn resolve_lanes(names: &[String]) -> Result<Vec<Lane>, String> {
    if names.is_empty() {
        return Ok(lane::LANES.into_iter().filter(|l| l.by_default).collect());
    }
    names
        .iter()
        .map(|n| {
            lane::lane(n).ok_or_else(|| {
                format!(
                    "--lanes {n}: no such lane; lanes are {}",
                    lane::LANES.map(|l| l.name).join(", ")
                )
            })
        })
        .collect()
}

/// The runs of a lane, section by section, each section's clean run first.
fn runs_of(lane: &Lane) -> Vec<(Section, Mutant)> {
    Section::of(lane.platform)
        .iter()
        .flat_map(|&s| s.mutants(lane.platform).into_iter().map(move |m| (s, m)))
        .collect()
}

/// The plan a mutant's guest gets. The reboot section runs only the
/// cheapest selected test besides the series' own.
fn plan_for(section: Section, mutant: Mutant, args: &MutantsArgs) -> String {
    Plan {
        tests: match section {
            Section::Conv => CONV_TESTS,
            Section::Reboot => "boot.plan",
            Section::Smp => SMP_TESTS,
        },
        seed: args.seed.unwrap_or(DEFAULT_SEED),
        iters: args.iters,
        storm_ops: (section != Section::Reboot).then_some(args.storm_ops),
        cpus: section.vcpus(),
        host: true,
        reboots: section.reboots(),
        guest_fault: match mutant {
            Mutant::Guest(g) | Mutant::Covered(g) => Some(g),
            _ => None,
        },
        ..Plan::default()
    }
    .to_string()
}

fn run_lane(lane: &Lane, args: &MutantsArgs, workspace: &Path) -> Result<Vec<LaneTable>, Error> {
    use crate::backend::interface::Backend;
    let started = Instant::now();
    let boot = match lane.arch {
        Arch::X86_64 => Boot::Pvh,
        Arch::Aarch64 => Boot::Image,
    };
    nested::Nested.preflight(lane.arch, boot)?;
    let scratch = crate::cleanup::Scratch::new("convtest-mutants-")?;
    let mutants = runs_of(lane);
    let plans: Vec<String> = mutants.iter().map(|&(s, m)| plan_for(s, m, args)).collect();
    let payload = crate::guest_build::prepare(&crate::guest_build::Request {
        workspace,
        arch: lane.arch,
        boot,
        kernel: None,
        plan: &plans[0],
        work_dir: scratch.path(),
        quiet: args.quiet,
        silent_loader: false,
    })?;
    let inner: Vec<InnerRun> = mutants
        .iter()
        .zip(&plans)
        .map(|(&(section, m), plan)| {
            let opts = VmmOptions {
                faults: match m {
                    Mutant::Vmm(v) => vec![v],
                    _ => Vec::new(),
                },
                reset_policy: section.policy(lane.platform, m),
                console: args.vmm_console,
                ..VmmOptions::default()
            };
            InnerRun {
                // Run labels are file names in the L1: no colon.
                label: format!("{}-{}", section.as_str(), m.to_string().replace(':', "-")),
                vmm_args: vmm::vmm_args(
                    lane.arch,
                    Path::new(convtest_proto::l1::PAYLOAD),
                    plan,
                    MEMORY_MIB,
                    section.vcpus(),
                    &opts,
                ),
                limit: Duration::from_secs(args.timeout),
            }
        })
        .collect();
    let l1 = L1Options {
        l1_swprot: lane.l1_swprot,
        l1_name: lane.l1.map(|name| crate::cli::L1Pick { name, abi: None }),
        ..L1Options::default()
    };
    let vmm_opts = VmmOptions::default();
    let spec = BootSpec {
        arch: lane.arch,
        boot,
        machine: match lane.arch {
            Arch::X86_64 => Machine::Microvm,
            Arch::Aarch64 => Machine::Virt,
        },
        accel: crate::accel::Accel::Tcg,
        memory_mib: MEMORY_MIB,
        vcpus: 1,
        payload: &payload,
        cmdline: &plans[0],
        reboots: 0,
        timeout: L1_ALLOWANCE,
        vmm: &vmm_opts,
        l1: &l1,
        workspace,
        quiet: args.quiet,
        kit: None,
    };
    let quiet = args.quiet;
    let mut seen = vec![false; inner.len()];
    let out = nested::run_many(&spec, &inner, &mut |part: Part, _line: &[u8]| {
        if let Part::Run(i) = part
            && let Some(first) = seen.get_mut(i)
            && !*first
        {
            *first = true;
            if !quiet {
                eprintln!(
                    "convtest mutants: {}: [{}/{}] {} {}",
                    lane.name,
                    i + 1,
                    mutants.len(),
                    mutants[i].0.as_str(),
                    mutants[i].1
                );
            }
        }
    })?;
    let mut tables = Vec::new();
    for section in Section::of(lane.platform) {
        let tests = section.tests();
        let mut rows = Vec::new();
        let mut facts = Vec::new();
        for (i, (&(s, m), plan)) in mutants.iter().zip(&plans).enumerate() {
            let Some(run) = out.runs.get(i).filter(|_| s == section) else {
                continue;
            };
            // Each run's console starts with the L1's facts.
            let log = ktap::parse_all(&run.console);
            let judgement = verdict::judge(&FinishedRun {
                log: &log,
                ending: &run.end.ending,
                plan,
                vmm_stderr: &run.end.stderr,
            });
            if m == Mutant::Clean {
                facts.extend(log.vmm.iter().map(|(k, v)| (format!("vmm.{k}"), v.clone())));
                facts.extend(log.l1.iter().map(|(k, v)| (format!("l1.{k}"), v.clone())));
            }
            rows.push(Row::new(
                lane,
                section,
                m,
                &tests,
                &log,
                &judgement,
                run.run_ms.unwrap_or(0),
            ));
        }
        let mut t = LaneTable::new(lane, section, &tests, rows);
        t.facts = facts;
        t.wall_ms = started.elapsed().as_millis() as u64;
        tables.push(t);
    }
    Ok(tables)
}
