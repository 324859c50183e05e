//! convtest's own KVM VMM: one guest per process (`convtest vmm` on the
//! host, started by the vmm backend; the L1's /init inside the nested lane). One thread per vCPU (`--vcpus`), a polled UART, the conversion exits of the guest's
//! ABI, and the host side of the host checks. The guest console goes to
//! stdout unchanged; the VMM's own facts go there as `# convtest-vmm:` lines
//! (the runner copies them into the JSON `vmm` object). Exit codes copy
//! QEMU's so the runner judges every backend alike.

pub mod argv;
pub mod config;
pub mod console;
pub mod crumbs;
pub mod facts;
pub mod hostcheck;
pub mod reboot;
pub mod uart16550;
pub mod vcpus;
pub mod watchdog;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub use config::{VmmConfig, VmmOptions};
use convtest_proto::arch::Arch;
use std::path::PathBuf;

/// Exit status when the VMM's own watchdog caught a vCPU that never left
/// KVM_RUN (QEMU never uses 3).
pub const EXIT_HANG: i32 = 3;
/// Exit status for VMM errors, as QEMU's.
pub const EXIT_ERROR: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("{call}: {source}")]
    Kvm {
        call: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the guest {path}: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("VMM access to private guest memory at {0:#x} refused")]
    PrivateAccess(u64),
    #[error("{0}")]
    Config(String),
    #[error("unhandled vCPU exit: {0}")]
    UnhandledExit(String),
}

impl VmmError {
    pub fn kvm(call: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
        move |source| VmmError::Kvm { call, source }
    }
}

/// How the guest ended, in QEMU's exit-code terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestEnd {
    /// x86 isa-debug-exit: (value << 1) | 1.
    DebugExit(i32),
    /// PSCI SYSTEM_OFF or equivalent.
    PowerOff,
    /// A reset the plan did not expect (a planned one starts the next boot
    /// inside the VMM), so the run ends.
    Reset,
    /// The watchdog fired (the message says where).
    Hang,
    /// The vCPU stopped in a way the VMM cannot serve; the closing facts'
    /// `end=` names it.
    Unserved(Unserved),
}

/// What a vCPU did that ends the run because the VMM cannot serve it.
/// Guest-caused, so never a VMM error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unserved {
    /// KVM_EXIT_MEMORY_FAULT: the guest accessed `gpa` as private or shared
    /// (`flags` bit 3 = private) while KVM has it the other way.
    MemoryFault { gpa: u64, size: u64, flags: u64 },
    /// HLT with no interrupt source to wake the vCPU.
    Halt,
    /// An MMIO access where nothing is mapped.
    Mmio { gpa: u64, write: bool },
    /// KVM_RUN itself failed with `errno` (not EINTR/EAGAIN).
    RunFailed { errno: i32 },
    /// Any other exit: the KVM_EXIT_* number and its first detail word.
    Exit { reason: u32, detail: u64 },
}

/// KVM_MEMORY_EXIT_FLAG_PRIVATE.
const MEMORY_EXIT_FLAG_PRIVATE: u64 = 1 << 3;

impl std::fmt::Display for Unserved {
    /// One word for the `end=` fact (no spaces).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Unserved::MemoryFault { gpa, size, flags } => {
                let access = if flags & MEMORY_EXIT_FLAG_PRIVATE != 0 {
                    "private"
                } else {
                    "shared"
                };
                write!(
                    f,
                    "memory_fault(gpa:{gpa:#x},size:{size:#x},flags:{flags:#x},access:{access})"
                )
            }
            Unserved::Halt => write!(f, "halt"),
            Unserved::Mmio { gpa, write } => {
                let dir = if write { "write" } else { "read" };
                write!(f, "mmio_{dir}(gpa:{gpa:#x})")
            }
            Unserved::RunFailed { errno } => write!(f, "kvm_run_failed(errno:{errno})"),
            Unserved::Exit { reason, detail } => {
                write!(f, "exit(reason:{reason},detail:{detail:#x})")
            }
        }
    }
}

impl std::fmt::Display for GuestEnd {
    /// The `end=` fact.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestEnd::DebugExit(c) => write!(f, "debug_exit({c})"),
            GuestEnd::PowerOff => write!(f, "power_off"),
            GuestEnd::Reset => write!(f, "reset"),
            GuestEnd::Hang => write!(f, "hang"),
            GuestEnd::Unserved(u) => u.fmt(f),
        }
    }
}

impl GuestEnd {
    /// The process exit status, in QEMU's terms (the runner's exit hint):
    /// 1 stays "the VMM failed before or around the guest" (a setup error),
    /// 3 "hang", 0x7f "the guest's run ended some other way than power-off".
    pub fn exit_code(self) -> i32 {
        match self {
            GuestEnd::DebugExit(c) => c,
            GuestEnd::PowerOff => 0,
            // What QEMU -no-reboot does on a reset: a plain exit 0 would read as a
            // power-off; 0x7f is "unexpected" for the verdict's exit hint.
            GuestEnd::Reset => 0x7f,
            GuestEnd::Hang => EXIT_HANG,
            // A halted vCPU with nothing to wake it is a hang, caught at once.
            GuestEnd::Unserved(Unserved::Halt) => EXIT_HANG,
            // The guest ran and did something the VMM cannot serve: an
            // unexpected end, like a reset, not a VMM error (1).
            GuestEnd::Unserved(_) => EXIT_UNSERVED,
        }
    }
}

/// Exit status for a guest exit the VMM cannot serve (as for a reset).
pub const EXIT_UNSERVED: i32 = 0x7f;

/// Can this host run the own VMM at all? (Before the slow guest build.)
pub fn preflight() -> Result<(), VmmError> {
    kvm_ioctls::Kvm::new()
        .map(drop)
        .map_err(VmmError::kvm("opening /dev/kvm"))
}

/// Runs one guest; returns the process exit status.
pub fn main(args: &VmmConfig) -> i32 {
    let arch = args
        .arch
        .or_else(|| Arch::from_host(std::env::consts::ARCH));
    let result = match arch {
        #[cfg(target_arch = "x86_64")]
        Some(Arch::X86_64) => x86_64::run(args),
        #[cfg(target_arch = "aarch64")]
        Some(Arch::Aarch64) => aarch64::run(args),
        other => Err(VmmError::Config(format!(
            "this VMM runs {} guests only, not {}",
            std::env::consts::ARCH,
            other.map_or("this arch", |a| a.as_str())
        ))),
    };
    match result {
        Ok(end) => end.exit_code(),
        Err(e) => {
            eprintln!("convtest vmm: {e}");
            EXIT_ERROR
        }
    }
}
