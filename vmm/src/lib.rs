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
#[cfg(test)]
mod fdt_props;
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
    main_telling_end(args, &mut |_| {})
}

/// [`main`], telling `told` the exit status as soon as the run has ended
/// and its output is out, before the VM is torn down: pKVM reclaims a
/// protected VM's pages one by one (seconds under TCG), and nothing the
/// run reports depends on it. The teardown's own fact follows on stdout,
/// for whoever still reads it.
pub fn main_telling_end(args: &VmmConfig, told: &mut dyn FnMut(i32)) -> i32 {
    let arch = args
        .arch
        .or_else(|| Arch::from_host(std::env::consts::ARCH));
    let result: Result<(end::GuestEnd, Option<VmLeft>), VmmError> = match arch {
        #[cfg(target_arch = "x86_64")]
        Some(Arch::X86_64) => x86_64::run(args).map(|end| (end, None)),
        #[cfg(target_arch = "aarch64")]
        Some(Arch::Aarch64) => {
            aarch64::run(args).map(|(end, vm)| (end, Some(Box::new(vm) as VmLeft)))
        }
        other => Err(VmmError::Config(format!(
            "this VMM runs {} guests only, not {}",
            std::env::consts::ARCH,
            other.map_or("this arch", |a| a.as_str())
        ))),
    };
    match result {
        Ok((end, vm)) => {
            let code = end.exit_code();
            told(code);
            if let Some(vm) = vm {
                teardown(vm);
            }
            code
        }
        Err(e) => {
            eprintln!("convtest vmm: {e}");
            EXIT_ERROR
        }
    }
}

/// A finished run's VM, left to drop once the end is told.
type VmLeft = Box<dyn std::any::Any>;

/// Drops the VM, timed: a `teardown_ms` fact.
fn teardown(vm: VmLeft) {
    use std::io::Write;
    let t = std::time::Instant::now();
    drop(vm);
    let mut f = facts::Facts::default();
    f.add("teardown_ms", t.elapsed().as_millis());
    let mut out = std::io::stdout();
    f.emit(&mut out);
    let _ = out.flush();
}
