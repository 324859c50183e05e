//! The lanes `convtest bench` measures (the nested lanes with a real
//! converter, as `convtest mutants` names them) and the one `convtest run`
//! line each lane is.

use super::error::BenchError;
use crate::cli::BenchArgs;
use crate::mutants::lane::{LANES, Lane, Platform};

/// What every lane's run selects: the bench suite and `conv.cost` (the
/// one-page round trip next to the no-op exit, from the same harness).
pub const TESTS: &str = "bench.*,conv.cost";

/// The lanes asked for, in the order asked; by default mutants' default
/// lanes (the 16 KiB one only when named).
pub fn resolve(names: &[String]) -> Result<Vec<Lane>, BenchError> {
    if names.is_empty() {
        return Ok(LANES.into_iter().filter(|l| l.by_default).collect());
    }
    names
        .iter()
        .map(|n| {
            crate::mutants::lane::lane(n).ok_or_else(|| BenchError::UnknownLane {
                name: n.clone(),
                valid: LANES.map(|l| l.name).join(", "),
            })
        })
        .collect()
}

/// `convtest run …` for `lane`. The memory mode and VM type are named,
/// not left to auto, so a host that cannot give them fails the run
/// instead of measuring another platform under the lane's name.
pub fn run_line(lane: &Lane, args: &BenchArgs) -> Vec<String> {
    let mut line: Vec<String> = [
        "convtest",
        "run",
        "--backend",
        "nested",
        "--arch",
        lane.arch.as_str(),
        "--tests",
        TESTS,
        "--timeout",
    ]
    .map(String::from)
    .to_vec();
    line.push(args.timeout.to_string());
    line.push("--memory".into());
    line.push(args.memory.to_string());
    match lane.platform {
        Platform::X86SwProtected => {
            line.extend(["--l1-swprot", "--vmm-memory", "sw-protected"].map(String::from));
        }
        Platform::X86EmulatedPrivate => {
            line.extend(["--vmm-memory", "emulated-private"].map(String::from));
        }
        Platform::Arm64Pkvm => {
            line.extend(["--vm-type", "protected"].map(String::from));
            if args.vmm_console != convtest_vmm::config::ConsoleKind::Word {
                line.push("--vmm-console".into());
                line.push(convtest_proto::keyword::Keyword::as_str(args.vmm_console).into());
            }
        }
    }
    if let Some(l1) = lane.l1 {
        line.extend(["--l1".to_string(), l1.as_str().to_string()]);
    }
    if let Some(ms) = args.bench_ms {
        line.push("--bench-ms".into());
        line.push(ms.to_string());
    }
    if args.quiet {
        line.push("--quiet".into());
    }
    line
}

/// Why `lane` cannot run on this machine, found before anything is
/// built; `None` when nothing is known to be missing (the run itself still
/// says what it lacks).
pub fn cannot_run(lane: &Lane) -> Option<String> {
    use crate::backend::nested::swprot::{Swprot, readiness};
    if lane.l1_swprot
        && let Swprot::Missing(pkgs) = readiness()
    {
        return Some(format!(
            "the sw-protected kvm.ko must be built once and needs {} (run \
             `scripts/install-deps.sh` as root)",
            pkgs.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use convtest_proto::arch::Arch;

    fn bench_args(extra: &[&str]) -> BenchArgs {
        let mut argv = vec!["convtest", "bench"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Bench(b) => b,
            _ => panic!("not bench"),
        }
    }

    #[test]
    fn every_lane_by_default_and_unknown_names_list_the_valid_ones() {
        let all = resolve(&[]).expect("default");
        assert_eq!(
            all.iter().map(|l| l.name).collect::<Vec<_>>(),
            ["nested-x86-swprot", "nested-x86", "nested-arm64-pkvm"]
        );
        let one = resolve(&["nested-arm64-pkvm".into()]).expect("known");
        assert_eq!(one[0].arch, Arch::Aarch64);
        let e = resolve(&["nested-x86".into(), "qemu-tcg-x86".into()]).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "--lanes qemu-tcg-x86: no such lane; lanes are nested-x86-swprot, nested-x86, \
             nested-arm64-pkvm, nested-arm64-pkvm-16k"
        );
        let k16 = resolve(&["nested-arm64-pkvm-16k".into()]).expect("named");
        assert!(
            run_line(&k16[0], &bench_args(&[]))
                .ends_with(&["--l1".into(), "debian-7.3-16k".into()])
        );
    }

    #[test]
    fn each_lane_is_a_run_line_that_resolves_to_that_lane() {
        let args = bench_args(&[
            "--bench-ms",
            "40",
            "--timeout",
            "500",
            "--memory",
            "2560",
            "--quiet",
        ]);
        for lane in LANES {
            let line = run_line(&lane, &args);
            let Command::Run(run) = Cli::try_parse_from(&line).expect("clap accepts it").command
            else {
                panic!("not run")
            };
            assert_eq!(run.tests, TESTS);
            assert_eq!(
                (run.bench_ms, run.timeout, run.quiet),
                (Some(40), 500, true)
            );
            assert_eq!(run.arch, Some(lane.arch));
            assert_eq!(run.l1.l1_swprot, lane.l1_swprot, "{}", lane.name);
            let config = crate::config::resolve(
                &run,
                &crate::accel::Host {
                    arch: Some(Arch::X86_64),
                    kvm_device: false,
                    cpuinfo: String::new(),
                },
            )
            .expect("resolves");
            assert_eq!(config.backend, crate::backend::kind::BackendKind::Nested);
            assert!(
                config.plan.contains("tests=bench.*,conv.cost "),
                "{}",
                config.plan
            );
            assert!(config.plan.ends_with(" bench_ms=40"), "{}", config.plan);
        }
        let plain = run_line(&LANES[1], &bench_args(&[]));
        assert!(
            !plain.iter().any(|w| w == "--bench-ms" || w == "--quiet"),
            "{plain:?}"
        );
    }
}
