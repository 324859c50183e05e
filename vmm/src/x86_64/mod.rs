//! The x86_64 VMM: a PVH guest on `--vcpus` vCPUs, COM1, isa-debug-exit,
//! the 0xcf9 reset, and KVM_HC_MAP_GPA_RANGE exits served against guest RAM
//! in one of two memory modes (memory.rs), the strongest the host's
//! capabilities allow (caps.rs asks, choose.rs decides). serve.rs answers
//! each exit (with the run's `--vmm-fault`s, faults.rs) over a
//! [`platform::Platform`]: the real VM here, a fake in the property test.
//! vcpu_loop.rs turns every other exit into device I/O or the run's end,
//! on the vCPU threads of ../vcpus.rs (one per vCPU); hostview.rs answers the host checks.
//! A reset the plan expects starts the next boot in the same process
//! (reset.rs, under `--reset-policy`); any other reset ends the run.
//!
//! Secondary CPUs: vCPU 0 starts at the PVH entry; vCPUs 1..N are created
//! with ids (= APIC IDs) 1..N and left to KVM, which parks them in
//! KVM_MP_STATE_UNINITIALIZED and starts them at the guest's trampoline when
//! the guest's INIT-SIPI-SIPI (x2APIC ICR writes) reaches their in-kernel
//! local APIC ([`Irqchip`]).

mod boot_cpu;
pub mod caps;
pub mod choose;
pub mod cpuid;
pub mod elf_extent;
#[cfg(test)]
mod fake;
pub mod faults;
pub mod host_time;
pub mod hostview;
pub mod hypercall;
pub mod memory;
pub mod pagemap;
pub mod platform;
pub mod ports;
pub mod pvh_boot;
#[cfg(test)]
mod random_requests;
mod reset;
pub mod serial;
pub mod serve;
pub mod timing;
mod vcpu_loop;
mod vm;

use crate::config::VmmConfig;
use crate::end::GuestEnd;
use crate::error::VmmError;
use crate::reboot::Reboots;
use std::time::Duration;
use vm::Setup;

pub fn run(args: &VmmConfig) -> Result<GuestEnd, VmmError> {
    let setup = Setup::new(args)?;
    let (machine, facts) = setup.build(0)?;
    // Not locked: every vCPU thread writes the console (under the run
    // loop's one lock), and so does the watchdog's last word when a vCPU
    // never comes back (it ends the process right after).
    let mut out = crate::stream::Relayed::new(std::io::stdout());
    facts.emit(&mut out);
    let mut resetter = reset::Resetter {
        setup: &setup,
        reboots: Reboots::new(&args.cmdline, setup.policy, setup.faults.no_reset()),
    };
    let limit = Duration::from_secs(args.options.vcpu_watchdog_s);
    vcpu_loop::run_loop(machine, limit, &mut out, &mut resetter)
}
