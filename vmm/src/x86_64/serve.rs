//! Serving one MAP_GPA_RANGE exit: check the request, find the pages that
//! flip, apply the run's `--vmm-fault`s, convert, answer. The run loop and
//! the property test call exactly this. It cannot fail: whatever the guest
//! put in its registers and whatever the host refused, the outcome is an
//! answer for rax (one of [`ANSWERS`](super::hypercall::ANSWERS)) and a
//! record that still matches KVM.

use super::faults::{Faults, Portion};
use super::host_time::HostTime;
use super::hypercall::{self, RET_EIO, RET_OK, Rejected, Request};
use super::memory::GuestRam;
use super::platform::{Platform, PlatformError};
use convtest_proto::map_gpa::PAGE_4K;
use convtest_proto::plan::Content;
use convtest_proto::range::MemRange;

/// What serving one request did to guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Malformed, outside RAM, or not MAP_GPA_RANGE.
    Rejected(Rejected),
    /// Every page was already in the target state.
    Unchanged(Request),
    /// `pages` pages changed state (fewer than asked when faulted).
    Converted { req: Request, pages: u64 },
    /// A host operation failed; `pages` had changed state before it did.
    Failed {
        req: Request,
        pages: u64,
        error: PlatformError,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// For the guest's rax.
    pub ret: u64,
    pub outcome: Effect,
    /// A `--vmm-fault` changed how this request was handled.
    pub faulted: bool,
    /// Time spent in host calls (timing.rs files it).
    pub host: HostTime,
}

/// Cuts `runs` to their first `n` pages, in place.
fn keep_first_pages(runs: &mut Vec<MemRange>, mut n: u64) {
    let mut keep = 0;
    for r in runs.iter_mut() {
        if n == 0 {
            break;
        }
        let take = (r.len() / PAGE_4K).min(n);
        *r = MemRange::new(r.start, r.start + take * PAGE_4K);
        n -= take;
        keep += 1;
    }
    runs.truncate(keep);
}

pub fn serve<P: Platform>(
    ram: &mut GuestRam<P>,
    faults: &Faults,
    nr: u64,
    args: [u64; 3],
) -> Served {
    let req = match hypercall::check(nr, args, &ram.pages) {
        Ok(req) => req,
        Err((ret, why)) => {
            return Served {
                ret,
                outcome: Effect::Rejected(why),
                faulted: false,
                host: HostTime::default(),
            };
        }
    };
    // The buffer goes back whatever happens, so the next request reuses it.
    let mut runs = std::mem::take(&mut ram.scratch);
    ram.pages.flips_into(req.range, req.state, &mut runs);
    let served = serve_flips(ram, faults, req, &mut runs);
    ram.scratch = runs;
    served
}

/// The rest of [`serve`], once `flips` holds the pages that would flip.
fn serve_flips<P: Platform>(
    ram: &mut GuestRam<P>,
    faults: &Faults,
    req: Request,
    flips: &mut Vec<MemRange>,
) -> Served {
    if flips.is_empty() {
        return Served {
            ret: RET_OK,
            outcome: Effect::Unchanged(req),
            faulted: false,
            host: HostTime::default(),
        };
    }
    let plan = faults.plan(req.state);
    match plan.portion {
        Portion::All => {}
        Portion::Nothing => flips.clear(),
        Portion::FirstHalf => {
            let n: u64 = flips.iter().map(|r| r.len() / PAGE_4K).sum();
            keep_first_pages(flips, n / 2);
        }
    }
    let clear = (ram.content == Content::Zero) != plan.invert_content;
    let mut host = HostTime::default();
    let (ret, outcome) = match ram.convert(flips, req.state, clear, &mut host) {
        Ok(pages) => (plan.answer, Effect::Converted { req, pages }),
        Err(stop) => (
            RET_EIO,
            Effect::Failed {
                req,
                pages: stop.converted,
                error: stop.error,
            },
        ),
    };
    Served {
        ret,
        outcome,
        faulted: plan.faulted,
        host,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakePlatform, Op};
    use super::super::hypercall::{RET_EAGAIN, RET_EINVAL, RET_EPERM, RET_GARBAGE};
    use super::super::memory::Mode;
    use super::*;
    use crate::config::VmmFault;
    use convtest_proto::keyword::Keyword;
    use convtest_proto::map_gpa::ATTR_ENC_STATUS;
    use convtest_proto::tracker::{PageState, Target};

    const MIB: u64 = 1 << 20;

    fn ram(mode: Mode, content: Content) -> GuestRam<FakePlatform> {
        let mut r =
            GuestRam::init(FakePlatform::new(mode, 8 * MIB), 8 * MIB, mode, content).unwrap();
        r.platform_mut().take_ops();
        r
    }

    fn sw() -> GuestRam<FakePlatform> {
        ram(Mode::SwProtected { boot_end: 2 * MIB }, Content::Zero)
    }

    fn faults(list: &[VmmFault]) -> Faults {
        Faults::new(list).unwrap()
    }

    #[test]
    fn sharing_across_the_boot_slot_boundary_is_served() {
        let mut r = sw();
        let s = serve(&mut r, &Faults::default(), 12, [0x1ff000, 2, 0]);
        assert_eq!(s.ret, RET_OK, "{s:?}");
        assert!(matches!(s.outcome, Effect::Converted { pages: 2, .. }));
        assert_eq!(r.pages.state(0x200000), Some(PageState::Shared));
        assert!(!r.platform().is_private(0x200000));
    }

    /// musl's allocator made a malloc+free per exit cost ~6 µs in the
    /// nested lane, more than the rest of the model: the runs buffer stays.
    #[test]
    fn serving_reuses_one_runs_buffer() {
        let mut r = sw();
        serve(&mut r, &Faults::default(), 12, [3 * MIB, 4, 0]);
        let buf = r.scratch.as_ptr();
        assert!(r.scratch.capacity() > 0);
        for args in [
            [3 * MIB, 4, ATTR_ENC_STATUS],
            [3 * MIB, 1, 0],
            [8 * MIB, 1, 0],
        ] {
            serve(&mut r, &Faults::default(), 12, args);
            assert_eq!(r.scratch.as_ptr(), buf, "{args:x?}");
        }
        let s = serve(&mut r, &faults(&[VmmFault::Partial]), 12, [4 * MIB, 5, 0]);
        assert!(matches!(s.outcome, Effect::Converted { pages: 2, .. }));
    }

    #[test]
    fn no_op_and_malformed_requests_are_answered_truly_under_any_fault() {
        for &f in VmmFault::ALL {
            let mut r = sw();
            let fs = faults(&[f]);
            let s = serve(&mut r, &fs, 12, [3 * MIB, 4, ATTR_ENC_STATUS]);
            assert_eq!(
                (s.ret, s.faulted),
                (RET_OK, false),
                "{f:?}: already private"
            );
            let s = serve(&mut r, &fs, 12, [8 * MIB, 1, 0]);
            assert_eq!(
                (s.ret, s.faulted),
                (RET_EINVAL, false),
                "{f:?}: outside RAM"
            );
            assert!(r.platform_mut().take_ops().is_empty());
        }
    }

    #[test]
    fn answer_faults_change_nothing_or_half() {
        let share = [3 * MIB, 5, 0];
        for (f, ret, shared) in [
            (VmmFault::Ignore, RET_OK, 0),
            (VmmFault::Deny, RET_EPERM, 0),
            (VmmFault::Garbage, RET_GARBAGE, 0),
            (VmmFault::Partial, RET_EAGAIN, 2),
            (VmmFault::Leak, RET_OK, 5),
        ] {
            let mut r = sw();
            let s = serve(&mut r, &faults(&[f]), 12, share);
            assert_eq!(s.ret, ret, "{f:?}");
            assert_eq!(r.pages.count(PageState::Shared), shared, "{f:?}");
            assert_eq!(s.faulted, f != VmmFault::Leak, "{f:?}");
            if f == VmmFault::Partial {
                assert_eq!(r.pages.state(3 * MIB + PAGE_4K), Some(PageState::Shared));
                assert_eq!(
                    r.pages.state(3 * MIB + 2 * PAGE_4K),
                    Some(PageState::Private)
                );
            }
        }
        // Leak keeps to-private requests from happening, but says 0.
        let mut r = sw();
        serve(&mut r, &Faults::default(), 12, share);
        let s = serve(
            &mut r,
            &faults(&[VmmFault::Leak]),
            12,
            [3 * MIB, 5, ATTR_ENC_STATUS],
        );
        assert_eq!((s.ret, s.faulted), (RET_OK, true));
        assert_eq!(r.pages.count(PageState::Shared), 5);
        assert!(!r.platform().is_private(3 * MIB));
    }

    #[test]
    fn wrong_content_inverts_the_promise() {
        let mut r = sw();
        serve(
            &mut r,
            &faults(&[VmmFault::WrongContent]),
            12,
            [3 * MIB, 1, 0],
        );
        assert_eq!(
            r.platform_mut().take_ops(),
            [Op::SetAttributes(
                MemRange::new(3 * MIB, 3 * MIB + PAGE_4K),
                Target::Shared
            )],
            "zero promised: nothing dropped"
        );
        let mut e = ram(
            Mode::EmulatedPrivate { gmem_mmap: false },
            Content::Preserve,
        );
        serve(&mut e, &Faults::default(), 12, [3 * MIB, 1, 0]);
        assert!(e.platform_mut().take_ops().is_empty(), "preserve: kept");
        serve(
            &mut e,
            &faults(&[VmmFault::WrongContent]),
            12,
            [3 * MIB, 1, ATTR_ENC_STATUS],
        );
        assert_eq!(
            e.platform_mut().take_ops(),
            [Op::Discard(MemRange::new(3 * MIB, 3 * MIB + PAGE_4K))],
            "preserve promised: cleared"
        );
    }

    #[test]
    fn a_failed_host_operation_is_an_eio_answer_and_the_record_follows_kvm() {
        let mut r = sw();
        r.platform_mut().fail_one_in(1, 1);
        let s = serve(&mut r, &Faults::default(), 12, [3 * MIB, 2, 0]);
        assert_eq!(s.ret, RET_EIO);
        let Effect::Failed {
            pages: 0, error, ..
        } = s.outcome
        else {
            panic!("{s:?}")
        };
        assert_eq!(error.call(), "KVM_SET_MEMORY_ATTRIBUTES");
        assert_eq!(r.pages.count(PageState::Shared), 0);
        assert!(r.platform().is_private(3 * MIB));
    }
}
