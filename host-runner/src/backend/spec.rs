//! One boot, fully decided: what every backend is asked to run.

use crate::accel::Accel;
use crate::cli::L1Options;
use crate::machine::{Boot, Machine};
use convtest_proto::arch::Arch;
use convtest_vmm::VmmOptions;
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
    /// nested: a board kit archive for the L1's kit runs
    /// (`convtest_proto::l1::kit`).
    pub kit: Option<&'a Path>,
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
        accel: Accel::Tcg,
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
        kit: None,
    }
}
