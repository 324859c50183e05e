//! convtest's own KVM VMM (`convtest vmm`, started by the vmm and nested
//! backends). One vCPU, a polled UART, the conversion exits of the guest's
//! ABI, and the host side of the host checks. The guest console goes to
//! stdout unchanged; the VMM's own facts go there as `# convtest-vmm:` lines
//! (the runner copies them into the JSON `vmm` object). Exit codes copy
//! QEMU's so the runner judges every backend alike.

pub mod console;
pub mod facts;
pub mod hostcheck;
pub mod uart16550;
pub mod watchdog;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use crate::cli::VmmArgs;
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
    /// A reset request; the VMM has no reboot support yet, so the run ends.
    Reset,
    /// The watchdog fired (the message says where).
    Hang,
}

impl GuestEnd {
    pub fn exit_code(self) -> i32 {
        match self {
            GuestEnd::DebugExit(c) => c,
            GuestEnd::PowerOff => 0,
            // What QEMU -no-reboot does on a reset: a plain exit 0 would read as a
            // power-off; 0x7f is "unexpected" for the verdict's exit hint.
            GuestEnd::Reset => 0x7f,
            GuestEnd::Hang => EXIT_HANG,
        }
    }
}

/// Can this host run the own VMM at all? (Before the slow guest build.)
pub fn preflight() -> Result<(), crate::error::Error> {
    kvm_ioctls::Kvm::new().map(drop).map_err(|e| {
        crate::error::Error::Usage(format!(
            "--backend vmm needs /dev/kvm ({e}); on a host without usable KVM use --backend nested"
        ))
    })
}

/// `convtest vmm`: runs one guest; returns the process exit status.
pub fn main(args: &VmmArgs) -> i32 {
    let arch = args
        .arch
        .or_else(|| crate::cli::Arch::from_host(std::env::consts::ARCH));
    let result = match arch {
        #[cfg(target_arch = "x86_64")]
        Some(crate::cli::Arch::X86_64) => x86_64::run(args),
        #[cfg(target_arch = "aarch64")]
        Some(crate::cli::Arch::Aarch64) => aarch64::run(args),
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
