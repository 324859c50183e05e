//! Who runs the guest. Every backend boots a prepared payload, streams the
//! guest's first console to the caller and says how the VM ended; the
//! verdict is made above, from the KTAP: QEMU, convtest's own KVM VMM (run
//! as a child process, so a wedged vCPU is killed like a wedged QEMU), and
//! nested (QEMU TCG → Linux L1 with real KVM → the own VMM).

pub mod kind;
pub mod nested;
pub mod process;
pub mod qemu;
pub mod vmm;

use crate::accel::Accel;
use crate::cli::{L1Options, VmmOptions};
use crate::error::Error;
use crate::machine::{Boot, Machine};
use crate::verdict::Ending;
use convtest_proto::arch::Arch;
use kind::BackendKind;
use std::path::Path;
use std::time::Duration;

/// One boot, fully decided.
#[derive(Clone, Copy, Debug)]
pub struct BootSpec<'a> {
    pub arch: Arch,
    pub boot: Boot,
    pub machine: Machine,
    pub accel: Accel,
    pub memory_mib: u32,
    /// CPUs the guest gets (QEMU `-smp`; the own VMMs: one thread per vCPU).
    pub vcpus: u32,
    /// Kernel (pvh: ELF, image: arm64 Image) or disk image (bios, uefi).
    pub payload: &'a Path,
    /// The plan, for boots that take a command line (disk images carry it inside).
    pub cmdline: &'a str,
    /// Guest resets the plan expects; with none, a reset ends the VM.
    pub reboots: u32,
    pub timeout: Duration,
    /// Own-VMM settings (vmm and nested backends).
    pub vmm: &'a VmmOptions,
    /// L1 settings (nested backend).
    pub l1: &'a L1Options,
    /// Where to build helpers (the musl runner for nested) from.
    pub workspace: &'a Path,
    /// Print nothing but errors (no progress lines).
    pub quiet: bool,
}

#[derive(Clone, Debug)]
pub struct RunEnd {
    pub ending: Ending,
    /// The VMM's exit status (None: killed).
    pub exit_code: Option<i32>,
    pub stderr: String,
    /// The command line that was run, copy-pasteable.
    pub command: String,
}

/// Called with each chunk of console output; returns bytes to type into the
/// guest's console (empty for none).
pub type ConsoleFn<'a> = dyn FnMut(&[u8]) -> Vec<u8> + 'a;

pub trait Backend {
    fn kind(&self) -> BackendKind;

    /// Checks what the backend needs on this host before the (slow) guest
    /// build, so a missing QEMU is reported in a second, not in minutes.
    fn preflight(&self, arch: Arch, boot: Boot) -> Result<(), Error>;

    /// Boots the guest and returns when it powers off or the timeout ends it.
    fn run(&self, spec: &BootSpec<'_>, console: &mut ConsoleFn<'_>) -> Result<RunEnd, Error>;
}

pub fn for_kind(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Qemu => Box::new(qemu::Qemu::default()),
        BackendKind::Vmm => Box::new(vmm::OwnVmm),
        BackendKind::Nested => Box::new(nested::Nested),
    }
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
                    hint: qemu::exit_hint(spec.arch, code),
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

/// A BootSpec with the CLI's defaults, for backend unit tests.
#[cfg(test)]
pub(crate) fn test_spec(arch: Arch, boot: Boot, machine: Machine, payload: &Path) -> BootSpec<'_> {
    use std::sync::LazyLock;
    static VMM: LazyLock<VmmOptions> = LazyLock::new(VmmOptions::default);
    static L1: LazyLock<L1Options> = LazyLock::new(L1Options::default);
    BootSpec {
        arch,
        boot,
        machine,
        accel: crate::accel::Accel::Tcg,
        memory_mib: 256,
        vcpus: 1,
        payload,
        cmdline: "tests=* seed=0x5eed",
        reboots: 0,
        timeout: Duration::from_secs(5),
        vmm: &VMM,
        l1: &L1,
        workspace: Path::new("."),
        quiet: true,
    }
}
