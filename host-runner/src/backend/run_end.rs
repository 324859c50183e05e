//! How a backend's VM ended, as the verdict wants it. Every backend's
//! process (QEMU, the own VMM, QEMU running the L1) uses QEMU's exit codes:
//! x86 isa-debug-exit `(value << 1) | 1` (the guest writes 0x10 for success
//! or 0x11 for failure to port 0xf4), arm64 PSCI SYSTEM_OFF 0.

use super::process;
use super::spec::BootSpec;
use crate::verdict::{Ending, ExitHint};
use convtest_proto::arch::Arch;

/// The guest writes 0x10 (success) or 0x11 (failure) to port 0xf4.
pub const X86_EXIT_SUCCESS: i32 = (0x10 << 1) | 1;
pub const X86_EXIT_FAILURE: i32 = (0x11 << 1) | 1;
/// QEMU's own exit status for errors such as a bad option or missing file.
pub const QEMU_ERROR: i32 = 1;

#[derive(Clone, Debug)]
pub struct RunEnd {
    pub ending: Ending,
    /// The VMM's exit status (None: killed).
    pub exit_code: Option<i32>,
    pub stderr: String,
    /// The command line that was run, copy-pasteable.
    pub command: String,
}

/// A supervised process's end as the verdict wants it. Every backend's
/// process (QEMU, the own VMM, QEMU running the L1) uses QEMU's exit codes.
pub fn run_end(finished: process::Finished, spec: &BootSpec<'_>, command: String) -> RunEnd {
    let (ending, exit_code) = match finished.end {
        process::End::Exited(status) => {
            let code = status.code();
            (
                Ending::Exited {
                    code,
                    hint: exit_hint(spec.arch, code),
                },
                code,
            )
        }
        process::End::TimedOut => (
            Ending::TimedOut {
                after: spec.timeout,
            },
            None,
        ),
    };
    RunEnd {
        ending,
        exit_code,
        stderr: finished.stderr,
        command,
    }
}

pub fn exit_hint(arch: Arch, code: Option<i32>) -> ExitHint {
    match (arch, code) {
        (_, Some(QEMU_ERROR)) => ExitHint::VmmError,
        (Arch::X86_64, Some(X86_EXIT_SUCCESS)) | (Arch::Aarch64, Some(0)) => ExitHint::Success,
        (Arch::X86_64, Some(X86_EXIT_FAILURE)) => ExitHint::Failure,
        _ => ExitHint::Unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_hints() {
        assert_eq!(exit_hint(Arch::X86_64, Some(33)), ExitHint::Success);
        assert_eq!(exit_hint(Arch::X86_64, Some(35)), ExitHint::Failure);
        assert_eq!(exit_hint(Arch::X86_64, Some(0)), ExitHint::Unexpected);
        assert_eq!(exit_hint(Arch::X86_64, Some(1)), ExitHint::VmmError);
        assert_eq!(exit_hint(Arch::Aarch64, Some(0)), ExitHint::Success);
        assert_eq!(exit_hint(Arch::Aarch64, Some(33)), ExitHint::Unexpected);
        assert_eq!(exit_hint(Arch::Aarch64, None), ExitHint::Unexpected);
    }
}
