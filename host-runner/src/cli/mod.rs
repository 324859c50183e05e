//! The command line as users type it: the top level and its subcommands
//! here, one file per subcommand's arguments (run.rs, mutants.rs, bench.rs,
//! matrix.rs, and vmm.rs for the own VMM's), the long help texts in
//! help.rs. Resolving defaults and rejecting impossible combinations lives
//! in `config/`; what the arguments name (backends, boots, machines, L1
//! kernels) lives with the code that owns it.

use clap::{Parser, Subcommand};

mod bench;
mod bundle;
mod help;
mod kcidb;
mod lava;
mod matrix;
mod mutants;
mod parsers;
mod run;
mod vmm;

use help::{
    ABOUT, BENCH_AFTER, EXAMPLES, LAVA_CASES_AFTER, LAVA_JOB_AFTER, LONG_ABOUT, MUTANTS_AFTER,
    RUN_AFTER,
};

pub use bench::BenchArgs;
pub use bundle::{BundleArgs, CheckArg};
pub use kcidb::KcidbFlags;
pub use lava::{LavaCasesArgs, LavaJobArgs};
pub use matrix::MatrixArgs;
pub use mutants::MutantsArgs;
pub use run::{AccelArg, BackendArg, GuestFaultArg, InjectArg, L1Options, L1Pick, RunArgs};
pub use vmm::{VMM_COMMAND, VmmArgs, VmmFlags};

#[derive(Debug, Parser)]
#[command(name = "convtest", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the guest, boot it, stream its KTAP and judge the run.
    #[command(after_long_help = RUN_AFTER)]
    Run(Box<RunArgs>),
    /// Print every test the guest knows with what it checks.
    List,
    /// Break the platform on purpose and show which tests notice: per lane,
    /// one L1 boot runs the clean guest and every applicable VMM and guest
    /// fault, and prints the kill table next to the expected one.
    #[command(after_long_help = MUTANTS_AFTER)]
    Mutants(MutantsArgs),
    /// Measure conversion against bounce buffering on each nested lane:
    /// latency per range size next to memcpy of the same bytes and the null
    /// exit, the break-even size, throughput; tables, SVG plot, Markdown, JSON.
    #[command(after_long_help = BENCH_AFTER)]
    Bench(BenchArgs),
    /// Run the default suite on each L1 kernel of the nested lane and print
    /// one table: kernel × capabilities, memory mode, conv results,
    /// evidence, conversion cost.
    Matrix(MatrixArgs),
    /// Write a LAVA job definition: deploy a pKVM kernel and the board kit,
    /// boot with kvm-arm.mode=protected, run convtest on the board's KVM,
    /// one LAVA test case per convtest test.
    #[command(after_long_help = LAVA_JOB_AFTER)]
    LavaJob(LavaJobArgs),
    /// On a LAVA board: record a `convtest run --json` report as LAVA test
    /// cases (lava-test-case, one per test and measurement).
    #[command(after_long_help = LAVA_CASES_AFTER)]
    LavaCases(LavaCasesArgs),
    /// Write a board kit: one archive with a static convtest (no cargo, no
    /// rustup, no network needed), the prebuilt guest and a README; on the
    /// board `./convtest run --backend vmm --kernel ./Image --json r.json`
    /// runs and judges. `--check nested` tries it in the nested L1 first.
    Bundle(BundleArgs),
    /// Internal: convtest's own KVM VMM, one guest, console on stdout. The
    /// `vmm` and `nested` backends start this; run it by hand to debug a VMM
    /// on a KVM host.
    #[command(hide = true)]
    Vmm(VmmArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nested::L1Name;
    use crate::machine::{Boot, Machine};
    use clap::CommandFactory;
    use convtest_proto::arch::Arch;

    #[test]
    fn vmm_flag_defaults_are_the_vmm_defaults() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            vmm: VmmFlags,
        }
        let parsed = Wrap::parse_from(["convtest"]).vmm;
        assert_eq!(parsed.options(), convtest_vmm::VmmOptions::default());
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_full_run_line() {
        let cli = Cli::try_parse_from([
            "convtest",
            "run",
            "--arch",
            "x86_64",
            "--boot",
            "uefi",
            "--machine",
            "pc",
            "--tests",
            "mem.*,boot.*",
            "--seed",
            "0x2a",
            "--iters",
            "5",
            "--inject",
            "hang",
            "--timeout",
            "15",
            "--accel",
            "tcg",
        ])
        .expect("parses");
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            (r.arch, r.boot, r.machine),
            (Some(Arch::X86_64), Some(Boot::Uefi), Some(Machine::Pc))
        );
        assert_eq!(
            (r.seed, r.iters, r.inject, r.timeout),
            (Some(42), Some(5), Some(InjectArg::Hang), 15)
        );
        assert_eq!(
            (r.accel, r.memory, r.tests.as_str()),
            (AccelArg::Tcg, 256, "mem.*,boot.*")
        );
    }

    #[test]
    fn vmm_faults_parse_as_a_list_and_contradictions_are_refused() {
        let cli = Cli::try_parse_from([
            "convtest",
            "run",
            "--vmm-fault",
            "leak,wrong-content",
            "--guest-fault",
            "skip-reset",
        ])
        .expect("parses");
        let Command::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            r.vmm.vmm_fault,
            [
                convtest_vmm::config::VmmFault::Leak,
                convtest_vmm::config::VmmFault::WrongContent
            ]
        );
        assert_eq!(r.guest_fault, Some(GuestFaultArg::SkipReset));
        let e = Cli::try_parse_from(["convtest", "run", "--vmm-fault", "leak,nope"]).unwrap_err();
        assert!(e.to_string().contains("no-reset"), "{e}");
    }

    #[test]
    fn l1_names_parse_and_conflict_with_an_own_kernel() {
        let run = |extra: &[&str]| {
            let mut argv = vec!["convtest", "run", "--backend", "nested"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Run(r) => r.l1,
                _ => panic!("not run"),
            })
        };
        assert_eq!(run(&[]).expect("default").debian(), L1Name::Debian73);
        for name in L1Name::ALL {
            let l1 = run(&["--l1", name.as_str()]).expect("known name");
            assert_eq!((l1.debian(), l1.pin()), (name, None));
        }
        assert!(run(&["--l1", "debian-5.10"]).is_err());
        let pinned = run(&["--l1", "debian-7.3=7.3.5+deb13"]).expect("a build of the series");
        assert_eq!(
            (pinned.debian(), pinned.pin()),
            (L1Name::Debian73, Some("7.3.5+deb13"))
        );
        let e = run(&["--l1", "debian-7.3=6.12.118+deb12"]).expect_err("another series");
        assert!(
            e.to_string()
                .contains("not a build of the series 7.3.<n>+deb13"),
            "{e}"
        );
        let e = run(&["--l1", "debian-6.1", "--l1-kernel", "/boot/vmlinuz"]).expect_err("both");
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        // --l1-swprot with --l1 parses; which kernels have the recipe is
        // the nested backend's usage error.
        assert!(run(&["--l1", "debian-6.12", "--l1-swprot"]).is_ok());
    }

    #[test]
    fn lava_job_needs_a_device_type_and_a_kit() {
        let cli = Cli::try_parse_from([
            "convtest",
            "lava-job",
            "--device-type",
            "qemu",
            "--kit",
            "kit",
            "--run-arg",
            "--vcpus",
            "--run-arg",
            "2",
            "--kernel-arg",
            "loglevel=4",
        ])
        .expect("parses");
        let Command::LavaJob(j) = cli.command else {
            panic!("not lava-job")
        };
        assert_eq!((j.device_type.as_str(), j.kit.as_str()), ("qemu", "kit"));
        assert_eq!(j.run_args, ["--vcpus", "2"]);
        assert_eq!(
            (j.out.to_str(), j.timeout, j.memory, j.cpus),
            (Some("lava-job.yaml"), 300, 2048, 2)
        );
        for missing in [
            &["convtest", "lava-job", "--kit", "k"][..],
            &["convtest", "lava-job", "--device-type", "qemu"],
        ] {
            let e = Cli::try_parse_from(missing).expect_err("required");
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        }
        let cli = Cli::try_parse_from(["convtest", "lava-cases", "r.json", "--print"]).expect("ok");
        assert!(matches!(cli.command, Command::LavaCases(c) if c.print));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["convtest", "run", "--arch", "riscv64"][..],
            &["convtest", "run", "--seed", "banana"],
            &["convtest", "run", "--timeout", "0"],
            &["convtest", "run", "--machine", "sun4m"],
            &["convtest", "frobnicate"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_teaches_lanes_and_exit_codes() {
        let mut cmd = Cli::command();
        let top = cmd.render_long_help().to_string();
        assert!(top.contains("Exit status") && top.contains("convtest list"));
        let run = cmd
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        assert!(run.contains("virt-el2") && run.contains("OVMF") && run.contains("--inject"));
        let bench = cmd
            .find_subcommand_mut("bench")
            .expect("bench")
            .render_long_help()
            .to_string();
        assert!(
            bench.contains("break-even")
                && bench.contains("nested-arm64-pkvm")
                && bench.contains("Exit status")
                && bench.contains("--bench-ms"),
            "{bench}"
        );
    }
}
