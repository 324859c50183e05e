//! The nested lane's L1 `/init` (pid 1 of the L1 Linux): mounts what the
//! VMM needs, loads the KVM modules, reports `# convtest-l1:` facts, then
//! runs each inner VMM of the run list in order (pid1.rs), each between a
//! run_begin and a run_end line with its console relayed to the L1 console
//! and its time limit kept (inner.rs), and powers off. Every path ends in a
//! power-off: an L1 left spinning would only be stopped by the outer
//! timeout, minutes later.
//!
//! Each inner run is this same binary as a child, started with the run's
//! argv (`vmm --arch … --kernel /payload …`, `convtest_vmm::argv`): it runs
//! the VMM in its own process, so /init can kill a wedged one by pid. The
//! layout of the initramfs and the marker lines are `convtest_proto::l1`.

mod console;
mod end_pipe;
mod failure;
mod inner;
mod kit;
mod pid1;
mod runs;

use convtest_vmm::VmmConfig;
use std::process::ExitCode;

/// The first word of an inner run's argv.
const VMM_COMMAND: &str = "vmm";
/// Exit status for an argv that is not a VMM run (as clap's usage error).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    if std::process::id() == 1 {
        // Returns only if powering off failed.
        return ExitCode::from(u8::try_from(pid1::main()).unwrap_or(1));
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.split_first() {
        Some((command, rest)) if command == VMM_COMMAND => match VmmConfig::from_argv(rest) {
            Ok(config) => {
                let code = match end_pipe::teller() {
                    Some(mut tell) => convtest_vmm::main_telling_end(&config, &mut tell),
                    None => convtest_vmm::main(&config),
                };
                ExitCode::from(u8::try_from(code).unwrap_or(1))
            }
            Err(e) => {
                eprintln!("convtest-l1 vmm: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        _ => {
            eprintln!(
                "convtest-l1: the nested lane's L1 /init; run as pid 1, or as \
                 `convtest-l1 vmm --kernel PATH …` for one inner VMM run"
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}
