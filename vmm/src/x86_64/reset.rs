//! A guest reset the plan expects (`reboots=N`, see vmm/src/reboot.rs): the next
//! boot starts in the same process, on the same stdout, under the same
//! watchdog. Every policy puts the vCPU back at the PVH entry state and
//! reloads the kernel and the boot data (the plan with `boot=N`); what
//! happens to memory is the policy:
//!
//! - `keep`: nothing. RAM, KVM's attributes and the guest_memfd survive;
//!   only the guest's own firmware can make memory private again.
//! - `private`: all RAM private and empty ([`GuestRam::reset_private`]):
//!   in sw-protected memory KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) over the
//!   guest_memfd slot, the hole punched, the shared backing discarded; in
//!   emulated-private memory the record all private and every page cleared.
//! - `recreate`: the whole VM torn down (vCPU fd, VM fd, guest_memfd,
//!   mappings; `reset_teardown_ns`) and built again exactly as at the first
//!   boot ([`super::vm::Setup::build`]), whose facts line is not printed again:
//!   the new VM is made from the same capabilities by the same choice.
//!
//! `--vmm-fault no-reset` claims the policy (the guest's plan still names
//! it) and does only what booting needs: vCPU state, kernel and boot data.
//! Memory, attributes and guest_memfd stay as they were; under recreate
//! the old VM is kept.
//!
//! `reset_pages` counts the pages the policy turned from shared to
//! private (private: those shared at the reset, all of RAM cleared anyway;
//! recreate: those shared in the old VM; keep and no-reset: 0).
//!
//! The fact line is [`ResetDone`]'s plus where the time went
//! (`reset_memory_ns`, `reset_load_ns`, see [`Parts`]).
//!
//! vCPU state put back: general and segment registers (CR0/CR3/CR4 and
//! EFER, the only MSR the guest writes, with them, and the APIC base),
//! XCR0, the XSAVE area (x87/SSE/AVX, else KVM_SET_FPU) and the
//! pending-event state, all as the fresh vCPU had them. Not put back: other
//! MSRs (the guest writes none; the TSC keeps running) and the debug
//! registers (never used).
//!
//! With several vCPUs (an in-kernel irqchip, see `super::vm::Irqchip`) vCPU 0
//! also gets its fresh local APIC back (KVM_SET_LAPIC, after the APIC base:
//! the last boot left it in x2APIC mode) and KVM_MP_STATE_RUNNABLE, and
//! every other vCPU is put back into the wait for INIT/SIPI
//! (KVM_SET_MP_STATE KVM_MP_STATE_UNINITIALIZED), where a fresh AP starts:
//! the next boot starts them itself, and the INIT it sends first resets
//! their registers as on hardware. Every vCPU has left KVM_RUN by then with
//! whatever its last exit left pending completed (vmm/src/vcpus.rs), so no
//! stale completion lands on the new state. Under recreate the new VM has
//! as many vCPUs as the old.

use super::super::reboot::{Reboots, ResetDone};
use super::boot_cpu::park_ap;
use super::host_time::HostTime;
use super::memory::GuestRam;
use super::platform::Platform;
use super::vm::{Setup, Vm};
use crate::error::VmmError;
use convtest_proto::plan::ResetPolicy;
use std::time::Instant;

/// What the memory policy left to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Memory is done; `pages` changed state.
    Done { pages: u64 },
    /// Build a new VM; `pages` were shared in the old one.
    Recreate { pages: u64 },
}

/// The memory part of a reset under `policy` (`applies`: false under
/// `--vmm-fault no-reset`, then nothing at all).
pub fn memory<P: Platform>(
    ram: &mut GuestRam<P>,
    policy: ResetPolicy,
    applies: bool,
) -> Result<Step, VmmError> {
    use convtest_proto::tracker::PageState;
    Ok(match (policy, applies) {
        (_, false) | (ResetPolicy::Keep, true) => Step::Done { pages: 0 },
        (ResetPolicy::Private, true) => Step::Done {
            pages: ram
                .reset_private(&mut HostTime::default())
                .map_err(|e| VmmError::Memory(format!("reset private: {e}")))?,
        },
        (ResetPolicy::Recreate, true) => Step::Recreate {
            pages: ram.pages.count(PageState::Shared),
        },
    })
}

/// Where a reset's time went, beyond `reset_ns`: `memory_ns` the policy
/// (recreate: teardown and the new VM), `load_ns` kernel, boot data and
/// vCPU state (recreate: inside `memory_ns`); the rest of `reset_ns` is
/// the console output drained at the reset exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parts {
    pub memory_ns: u128,
    pub load_ns: u128,
}

impl Parts {
    /// The fact line: ResetDone's keys, then `reset_memory_ns`,
    /// `reset_load_ns`.
    pub fn emit(&self, done: &ResetDone, out: &mut dyn std::io::Write) {
        let mut f = done.facts();
        f.add("reset_memory_ns", self.memory_ns)
            .add("reset_load_ns", self.load_ns);
        let _ = out.write_all(b"\n");
        f.emit(out);
    }
}

/// What follows a guest reset.
pub enum Next {
    /// The next boot is ready: resume, after the fact line.
    Boot(Vm, ResetDone, Parts),
    /// Not planned: the run ends as a reset.
    End(Vm),
}

/// Carries out the run's planned resets.
pub struct Resetter<'a> {
    pub setup: &'a Setup<'a>,
    pub reboots: Reboots,
}

impl Resetter<'_> {
    /// `exited`: when KVM_RUN returned with the reset.
    pub fn reset(&mut self, m: Vm, exited: Instant) -> Result<Next, VmmError> {
        let Some(boot) = self.reboots.next_boot() else {
            return Ok(Next::End(m));
        };
        let (policy, applies) = (self.reboots.policy, self.reboots.applies());
        let mut done = ResetDone {
            boot,
            policy: Some(policy),
            applied: applies,
            ..Default::default()
        };
        let mut m = m;
        let mut parts = Parts::default();
        let t = Instant::now();
        match memory(&mut m.ram, policy, applies)? {
            Step::Done { pages } => {
                done.pages = pages;
                parts.memory_ns = t.elapsed().as_nanos();
                let t = Instant::now();
                self.setup.load(&m.ram, boot, true)?;
                let (bsp, aps) = m
                    .vcpus
                    .split_first()
                    .ok_or_else(|| VmmError::Config("a VM without vCPUs cannot be reset".into()))?;
                m.cpu.apply(bsp)?;
                for ap in aps {
                    park_ap(ap)?;
                }
                parts.load_ns = t.elapsed().as_nanos();
            }
            Step::Recreate { pages } => {
                done.pages = pages;
                drop(m);
                done.teardown_ns = Some(t.elapsed().as_nanos());
                m = self.setup.build(boot)?.0;
                parts.memory_ns = t.elapsed().as_nanos();
            }
        }
        done.ns = exited.elapsed().as_nanos();
        Ok(Next::Boot(m, done, parts))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakePlatform;
    use super::super::memory::Mode;
    use super::*;
    use convtest_proto::map_gpa::PAGE_4K;
    use convtest_proto::plan::Content;
    use convtest_proto::range::MemRange;
    use convtest_proto::tracker::{PageState, Target};

    const MIB: u64 = 1 << 20;

    fn ram(mode: Mode) -> GuestRam<FakePlatform> {
        let mut r = GuestRam::init(
            FakePlatform::new(mode, 8 * MIB),
            8 * MIB,
            mode,
            Content::Zero,
        )
        .unwrap();
        // What a boot leaves: shared pages in both slots, bytes in them
        // and in a private page.
        let shared = [
            MemRange::new(MIB, MIB + 2 * PAGE_4K),
            MemRange::new(3 * MIB, 3 * MIB + 5 * PAGE_4K),
        ];
        r.convert(&shared, Target::Shared, true, &mut HostTime::default())
            .unwrap();
        r.platform_mut().write(3 * MIB, b"left by boot 0");
        r.platform_mut().write(5 * MIB, b"private secret");
        r.platform_mut().take_ops();
        r
    }

    const MODES: [Mode; 3] = [
        Mode::SwProtected { boot_end: 2 * MIB },
        Mode::EmulatedPrivate { gmem_mmap: true },
        Mode::EmulatedPrivate { gmem_mmap: false },
    ];

    fn read(r: &GuestRam<FakePlatform>, gpa: u64) -> Vec<u8> {
        let mut b = vec![0; 14];
        r.read_host(gpa, &mut b).unwrap();
        b
    }

    #[test]
    fn private_makes_every_shared_page_private_and_ram_empty() {
        for mode in MODES {
            let mut r = ram(mode);
            assert_eq!(r.pages.count(PageState::Shared), 7);
            let step = memory(&mut r, ResetPolicy::Private, true).unwrap();
            assert_eq!(step, Step::Done { pages: 7 }, "{mode:?}");
            assert_eq!(r.pages.count(PageState::Shared), 0, "{mode:?}");
            if let Some(g) = r.gmem_slot() {
                for gpa in (g.start..g.end).step_by(PAGE_4K as usize) {
                    assert!(r.platform().is_private(gpa), "{mode:?} {gpa:#x}");
                }
            }
            assert_eq!(read(&r, 3 * MIB), [0; 14], "{mode:?}");
            assert_eq!(read(&r, 5 * MIB), [0; 14], "{mode:?}");
            assert!(r.platform().violations.is_empty(), "{mode:?}");
        }
    }

    #[test]
    fn keep_and_no_reset_change_nothing() {
        for mode in MODES {
            for (policy, applies) in [
                (ResetPolicy::Keep, true),
                (ResetPolicy::Keep, false),
                (ResetPolicy::Private, false),
                (ResetPolicy::Recreate, false),
            ] {
                let mut r = ram(mode);
                let step = memory(&mut r, policy, applies).unwrap();
                assert_eq!(step, Step::Done { pages: 0 }, "{mode:?} {policy:?}");
                assert!(
                    r.platform_mut().take_ops().is_empty(),
                    "{mode:?} {policy:?}"
                );
                assert_eq!(r.pages.count(PageState::Shared), 7);
                assert_eq!(r.pages.state(3 * MIB), Some(PageState::Shared));
                if r.gmem_slot().is_some() {
                    assert!(!r.platform().is_private(3 * MIB));
                }
                assert_eq!(read(&r, 3 * MIB), b"left by boot 0");
            }
        }
    }

    #[test]
    fn the_fact_line_is_reset_dones_plus_the_parts() {
        let done = ResetDone {
            boot: 2,
            policy: Some(ResetPolicy::Private),
            applied: true,
            ns: 9,
            pages: 7,
            ..Default::default()
        };
        let mut out = Vec::new();
        Parts {
            memory_ns: 5,
            load_ns: 3,
        }
        .emit(&done, &mut out);
        let want = done.facts().line();
        let want = format!("\n{} reset_memory_ns=5 reset_load_ns=3\n", want.trim_end());
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn recreate_counts_the_old_vms_shared_pages_and_touches_nothing() {
        let mut r = ram(MODES[0]);
        assert_eq!(
            memory(&mut r, ResetPolicy::Recreate, true).unwrap(),
            Step::Recreate { pages: 7 }
        );
        assert!(r.platform_mut().take_ops().is_empty());
    }
}
