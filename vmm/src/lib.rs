//! convtest's own KVM VMM: one guest per process (`convtest vmm` on the
//! host, started by the vmm backend; the L1's /init inside the nested
//! lane). One thread per vCPU, a polled UART, the conversion exits of the
//! guest's ABI, and the host side of the host checks. The guest console goes to
//! stdout through a relay that keeps its lines from reading as the host's
//! (stream.rs); the VMM's own facts go there as `# convtest-vmm:` lines
//! (the runner copies them into the JSON `vmm` object). Exit codes copy
//! QEMU's so the runner judges every backend alike.

pub mod argv;
pub mod config;
pub mod console;
pub mod crosvm_layout;
pub mod crumbs;
pub mod end;
pub mod error;
pub mod facts;
pub mod hostcheck;
pub mod reboot;
pub mod stream;
pub mod uart16550;
pub mod vcpus;
pub mod watchdog;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub use config::{VmmConfig, VmmOptions};
use convtest_proto::arch::Arch;
use end::EXIT_ERROR;
use error::VmmError;

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
