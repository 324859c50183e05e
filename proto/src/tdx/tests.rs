//! `TdxConversion` against the model (model.rs), with every injected fault
//! the issue names, and the mutants of the machine that the model must
//! catch: a guest that skips the accept, one that takes RETRY for SUCCESS.

use super::abi::{AcceptStatus, VmcallStatus};
use super::accept::{AcceptError, MAX_BUSY};
use super::convert::{TdxAnswer, TdxCall, TdxConversion, TdxError};
use super::map_gpa::{MAX_STALLS, WalkError};
use super::model::{TdxModel, Violation};
use crate::range::MemRange;
use crate::size_walk::{SIZE_2M, SIZE_4K};
use crate::tracker::Target;
use alloc::format;
use alloc::string::ToString;

const SHARED_BIT: u64 = 1 << 47;
/// 8 MiB of TD RAM at 1 GiB.
const RAM: MemRange = MemRange::new(0x4000_0000, 0x4080_0000);
/// 4 MiB, 2 MiB-aligned: two whole 2 MiB pages.
const BIG: MemRange = MemRange::new(0x4020_0000, 0x4060_0000);
/// 16 pages straddling a 2 MiB boundary: no 2 MiB page fits.
const SMALL: MemRange = MemRange::new(0x401f_8000, 0x4020_8000);

/// A guest whose conversion machine is broken on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutant {
    Faithful,
    /// Never reaches `TDG.MEM.PAGE.ACCEPT`: behaves as if every accept
    /// succeeded.
    SkipAccept,
    /// Takes MapGPA's RETRY for SUCCESS.
    IgnoreRetry,
}

/// Runs `c` against `m` until it ends; the guest's loop, with `mutant`'s bug.
fn drive(m: &mut TdxModel, c: &mut TdxConversion, mutant: Mutant) -> Result<(), TdxError> {
    for _ in 0..100_000 {
        let Some(call) = c.call() else {
            return Ok(());
        };
        let answer = match (mutant, call) {
            (Mutant::SkipAccept, TdxCall::Accept(_)) => TdxAnswer::Accept(AcceptStatus::Success),
            _ => m.answer(call),
        };
        let answer = match (mutant, answer) {
            (
                Mutant::IgnoreRetry,
                TdxAnswer::MapGpa {
                    status: VmcallStatus::Retry,
                    r11,
                },
            ) => TdxAnswer::MapGpa {
                status: VmcallStatus::Success,
                r11,
            },
            (_, a) => a,
        };
        c.answer(answer)?;
    }
    panic!("the conversion never ended")
}

fn convert(
    m: &mut TdxModel,
    r: MemRange,
    to: Target,
    mutant: Mutant,
) -> (Result<(), TdxError>, TdxConversion) {
    let mut c = TdxConversion::new(r, to, SHARED_BIT);
    let res = drive(m, &mut c, mutant);
    (res, c)
}

fn model() -> TdxModel {
    TdxModel::new(RAM, SHARED_BIT)
}

#[test]
fn round_trip_maps_the_alias_then_accepts_every_page() {
    let mut m = model();
    let (res, c) = convert(&mut m, BIG, Target::Shared, Mutant::Faithful);
    res.expect("share");
    m.check(BIG, Target::Shared).expect("shared");
    assert_eq!((c.done(), c.map_gpa_calls()), (BIG.len(), 1));
    // Neighbours are untouched.
    m.check(MemRange::new(RAM.start, BIG.start), Target::Private)
        .expect("below");

    let (res, c) = convert(&mut m, BIG, Target::Private, Mutant::Faithful);
    res.expect("unshare");
    m.check(BIG, Target::Private).expect("private again");
    assert!(
        m.zeroed(BIG),
        "the accept zeroes: TDX converts destructively"
    );
    // KVM adds pages at 4 KiB: each 2 MiB accept is refused for its size
    // and redone as 512 pages.
    let r = c.accept_report();
    assert_eq!((r.splits, r.accepted_2m, r.accepted_4k), (2, 0, 1024));
    assert_eq!(r.already_accepted_4k, 0);
    assert_eq!(c.done(), BIG.len());
}

#[test]
fn pages_added_at_2m_are_accepted_at_2m() {
    let mut m = model();
    m.faults.huge_aug = true;
    convert(&mut m, BIG, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    let (res, c) = convert(&mut m, BIG, Target::Private, Mutant::Faithful);
    res.expect("unshare");
    m.check(BIG, Target::Private).expect("private");
    let r = c.accept_report();
    assert_eq!((r.accepted_2m, r.splits, r.calls), (2, 0, 2));
}

#[test]
fn retry_at_every_offset_resumes_where_the_vmm_stopped() {
    for to in [Target::Shared, Target::Private] {
        for k in 0..SMALL.len() / SIZE_4K {
            let mut m = model();
            if to == Target::Private {
                convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
                    .0
                    .expect("setup");
            }
            m.faults.retry_after = Some(k * SIZE_4K);
            let (res, c) = convert(&mut m, SMALL, to, Mutant::Faithful);
            res.unwrap_or_else(|e| panic!("{to:?}, RETRY after {k} pages: {e}"));
            m.check(SMALL, to)
                .unwrap_or_else(|e| panic!("{to:?}, RETRY after {k} pages: {e}"));
            // The RETRY call and the one resuming at r11 (k = 0 is a stall).
            assert_eq!(c.map_gpa_calls(), 2, "{to:?} k={k}");
        }
    }
}

#[test]
fn retry_at_every_2m_chunk_walks_the_whole_range() {
    let mut m = model();
    m.faults.retry_every_chunk = true;
    let r = MemRange::new(RAM.start, RAM.start + 3 * SIZE_2M);
    let (res, c) = convert(&mut m, r, Target::Shared, Mutant::Faithful);
    res.expect("share");
    m.check(r, Target::Shared).expect("shared");
    assert_eq!(c.map_gpa_calls(), 3);
}

#[test]
fn retry_backwards_is_an_error_naming_r11() {
    let mut m = model();
    m.faults.retry_backwards = true;
    let (res, c) = convert(&mut m, BIG, Target::Shared, Mutant::Faithful);
    let e = res.expect_err("backwards");
    let r11 = SHARED_BIT | (BIG.start + SIZE_2M - SIZE_4K);
    assert!(
        matches!(e, TdxError::MapGpa(WalkError::Backwards { r11: got, .. }) if got == r11),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("r11={r11:#x}")), "{e}");
    // What the VMM confirmed before is reported as done, and is so.
    assert_eq!(c.done(), SIZE_2M);
    m.check(MemRange::from_len(BIG.start, SIZE_2M), Target::Shared)
        .expect("first chunk");
}

#[test]
fn retry_outside_the_range_is_an_error() {
    let mut m = model();
    m.faults.retry_outside = true;
    let e = convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect_err("outside");
    assert!(
        matches!(e, TdxError::MapGpa(WalkError::Outside { .. })),
        "{e:?}"
    );
}

#[test]
fn retry_without_progress_is_bounded() {
    let mut m = model();
    m.faults.retry_stall = true;
    let e = convert(&mut m, SMALL, Target::Private, Mutant::Faithful)
        .0
        .expect_err("stall");
    assert!(
        matches!(e, TdxError::MapGpa(WalkError::Stalled { .. })),
        "{e:?}"
    );
    assert_eq!(m.map_calls(), u64::from(MAX_STALLS) + 1);
    assert_eq!(
        m.accept_calls(),
        0,
        "nothing accepted before MapGPA is done"
    );
}

#[test]
fn invalid_operand_is_an_error_with_r11() {
    let mut m = model();
    m.faults.refuse_map = true;
    let (res, c) = convert(&mut m, SMALL, Target::Shared, Mutant::Faithful);
    let e = res.expect_err("refused");
    assert!(
        matches!(
            e,
            TdxError::MapGpa(WalkError::Refused {
                status: VmcallStatus::InvalidOperand,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("INVALID_OPERAND"), "{e}");
    assert_eq!(c.done(), 0);
    m.check(SMALL, Target::Private).expect("nothing changed");
}

#[test]
fn a_range_outside_ram_is_refused_by_the_model_and_reported() {
    let mut m = model();
    let outside = MemRange::from_len(RAM.end, SIZE_4K);
    let e = convert(&mut m, outside, Target::Shared, Mutant::Faithful)
        .0
        .expect_err("outside RAM");
    assert!(e.to_string().contains("INVALID_OPERAND"), "{e}");
}

#[test]
fn already_accepted_is_counted_and_reported() {
    let mut m = model();
    // A lying VMM: SUCCESS for the share, but one page stays private.
    let liar = SMALL.start + 5 * SIZE_4K;
    m.faults.keep_private = Some(liar);
    m.write_private(liar, 0x5ec2e7);
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("the VMM says yes");
    let (res, c) = convert(&mut m, SMALL, Target::Private, Mutant::Faithful);
    res.expect("unshare");
    m.check(SMALL, Target::Private).expect("private");
    // The only trace of the lie: one page the accept did not zero, counted.
    assert_eq!(c.accept_report().already_accepted_4k, 1);
    assert_eq!(m.page(liar).content, 0x5ec2e7);
    assert!(!m.zeroed(SMALL));
}

#[test]
fn accept_refused_is_an_error_and_the_front_is_done() {
    let mut m = model();
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    let bad = SMALL.start + 3 * SIZE_4K;
    m.faults.accept_invalid = Some(bad);
    let (res, c) = convert(&mut m, SMALL, Target::Private, Mutant::Faithful);
    let e = res.expect_err("refused");
    assert!(
        matches!(
            e,
            TdxError::Accept(AcceptError::Refused {
                status: AcceptStatus::OperandInvalid,
                ..
            })
        ),
        "{e:?}"
    );
    assert_eq!(c.done(), 3 * SIZE_4K);
    assert!(e.to_string().contains(&format!("{bad:#x}")), "{e}");
}

#[test]
fn busy_is_retried_then_given_up() {
    let mut m = model();
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    m.faults.busy = MAX_BUSY;
    convert(&mut m, SMALL, Target::Private, Mutant::Faithful)
        .0
        .expect("busy within the bound");
    m.check(SMALL, Target::Private).expect("private");

    let mut m = model();
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    m.faults.busy = MAX_BUSY + 1;
    let e = convert(&mut m, SMALL, Target::Private, Mutant::Faithful)
        .0
        .expect_err("busy for too long");
    assert!(
        matches!(e, TdxError::Accept(AcceptError::Busy { .. })),
        "{e:?}"
    );
}

#[test]
fn reset_of_private_memory_counts_every_page_already_accepted() {
    let mut m = model();
    m.write_private(RAM.start, 42);
    let (res, c) = convert(&mut m, RAM, Target::Private, Mutant::Faithful);
    res.expect("reset");
    m.check(RAM, Target::Private).expect("private");
    let r = c.accept_report();
    assert_eq!(r.already_accepted_4k, RAM.len() / SIZE_4K);
    assert_eq!((r.calls, r.splits), (RAM.len() / SIZE_2M, 0));
    assert_eq!(m.page(RAM.start).content, 42, "nothing was zeroed");
}

#[test]
fn a_wrong_answer_is_refused() {
    let mut c = TdxConversion::new(SMALL, Target::Shared, SHARED_BIT);
    let e = c
        .answer(TdxAnswer::Accept(AcceptStatus::Success))
        .expect_err("not a MapGPA answer");
    assert!(matches!(e, TdxError::WrongAnswer { .. }));
}

// ---- mutants: each must be caught by the model ----------------------------

#[test]
fn mutant_skip_accept_is_caught() {
    let mut m = model();
    convert(&mut m, BIG, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    let (res, _) = convert(&mut m, BIG, Target::Private, Mutant::SkipAccept);
    res.expect("the mutant believes it succeeded");
    let e = m
        .check(BIG, Target::Private)
        .expect_err("pages left PENDING must be caught");
    assert!(e.contains("Pending"), "{e}");
    // And the TD's first touch of such a page is a #VE.
    m.read_private(BIG.start);
    assert_eq!(m.violations(), &[Violation::ReadPending(BIG.start)]);
}

#[test]
fn mutant_ignore_retry_is_caught() {
    // To shared: the pages after r11 never convert.
    let mut m = model();
    m.faults.retry_after = Some(4 * SIZE_4K);
    convert(&mut m, SMALL, Target::Shared, Mutant::IgnoreRetry)
        .0
        .expect("the mutant believes it succeeded");
    let e = m.check(SMALL, Target::Shared).expect_err("caught");
    assert!(
        e.contains(&format!("{:#x}", SMALL.start + 4 * SIZE_4K)),
        "{e}"
    );

    // To private: it accepts pages the VMM still holds shared.
    let mut m = model();
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    m.faults.retry_after = Some(4 * SIZE_4K);
    convert(&mut m, SMALL, Target::Private, Mutant::IgnoreRetry)
        .0
        .expect("the mutant believes it succeeded");
    let e = m.check(SMALL, Target::Private).expect_err("caught");
    assert!(e.contains("AcceptOfShared"), "{e}");
}
