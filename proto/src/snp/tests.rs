//! `SnpConversion` against the model (model.rs), with every injected fault
//! the issue names, and the mutants of the machine the model must catch: a
//! guest that drops the PVALIDATE rescind, one that swaps the PSC op.

use super::convert::{SnpAnswer, SnpCall, SnpConversion, SnpError};
use super::ghcb::{PscOp, PscResponseError};
use super::model::{Pvalidated, SnpModel, Violation};
use super::pvalidate::{PVALIDATE_FAIL_INPUT, PvalidateError};
use crate::range::MemRange;
use crate::size_walk::{PageSize, SIZE_2M, SIZE_4K};
use crate::tracker::Target;
use alloc::format;
use alloc::string::ToString;

const RAM: MemRange = MemRange::new(0x4000_0000, 0x4080_0000);
const BIG: MemRange = MemRange::new(0x4020_0000, 0x4060_0000);
const SMALL: MemRange = MemRange::new(0x401f_8000, 0x4020_8000);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutant {
    Faithful,
    /// Never rescinds: behaves as if every rescind succeeded.
    DropRescind,
    /// Asks for private where it should ask for shared, and back.
    SwapPscOp,
}

fn drive(m: &mut SnpModel, c: &mut SnpConversion, mutant: Mutant) -> Result<(), SnpError> {
    for _ in 0..100_000 {
        let Some(call) = c.call() else {
            return Ok(());
        };
        let answer = match (mutant, call) {
            (Mutant::DropRescind, SnpCall::Pvalidate(p)) if !p.validate => {
                SnpAnswer::Pvalidate { rax: 0, cf: false }
            }
            (Mutant::SwapPscOp, SnpCall::Psc { gfn, op }) => {
                let op = match op {
                    PscOp::Private => PscOp::Shared,
                    PscOp::Shared => PscOp::Private,
                };
                m.answer(SnpCall::Psc { gfn, op })
            }
            _ => m.answer(call),
        };
        c.answer(answer)?;
    }
    panic!("the conversion never ended")
}

fn convert(
    m: &mut SnpModel,
    r: MemRange,
    to: Target,
    mutant: Mutant,
) -> (Result<(), SnpError>, SnpConversion) {
    let mut c = SnpConversion::new(r, to);
    let res = drive(m, &mut c, mutant);
    (res, c)
}

#[test]
fn round_trip_rescinds_changes_state_and_validates() {
    let mut m = SnpModel::new(RAM);
    let (res, c) = convert(&mut m, BIG, Target::Shared, Mutant::Faithful);
    res.expect("share");
    m.check(BIG, Target::Shared).expect("shared");
    assert_eq!(
        c.psc_calls(),
        BIG.len() / SIZE_4K,
        "one MSR request per 4 KiB"
    );
    assert_eq!(m.psc_calls(), c.psc_calls());
    assert_eq!(c.done(), BIG.len());
    // 4 KiB RMP entries: both 2 MiB rescinds were split.
    assert_eq!(c.pvalidate_report().splits, 2);
    // Rescinds all come before the first page state change.
    assert!(m.pvalidates.iter().all(|p| !p.validate));

    let (res, c) = convert(&mut m, BIG, Target::Private, Mutant::Faithful);
    res.expect("unshare");
    m.check(BIG, Target::Private).expect("private");
    let r = c.pvalidate_report();
    assert_eq!((r.changed_4k, r.splits, r.unchanged_4k), (1024, 2, 0));
    // What the guest reads back is whatever the new page holds.
    assert_ne!(m.read_private(BIG.start), 0);
    m.check(BIG, Target::Private).expect("readable");
}

#[test]
fn a_2m_rmp_entry_is_rescinded_at_2m() {
    let mut m = SnpModel::new(RAM);
    m.huge(BIG.start);
    let (res, c) = convert(
        &mut m,
        MemRange::from_len(BIG.start, SIZE_2M),
        Target::Shared,
        Mutant::Faithful,
    );
    res.expect("share");
    let r = c.pvalidate_report();
    assert_eq!((r.changed_2m, r.splits), (1, 0));
    assert_eq!(
        m.pvalidates.first(),
        Some(&Pvalidated {
            gpa: BIG.start,
            size: PageSize::Size2M,
            validate: false
        })
    );
}

#[test]
fn psc_error_is_an_error_naming_gfn_and_code() {
    let mut m = SnpModel::new(RAM);
    let bad = SMALL.start + 6 * SIZE_4K;
    m.faults.psc_error = Some(bad / SIZE_4K);
    let (res, c) = convert(&mut m, SMALL, Target::Shared, Mutant::Faithful);
    let e = res.expect_err("refused");
    assert_eq!(
        e,
        SnpError::Psc {
            gfn: bad / SIZE_4K,
            op: PscOp::Shared,
            error: PscResponseError::Error { code: 0x100 }
        }
    );
    assert!(e.to_string().contains("error 0x100"), "{e}");
    assert_eq!(c.done(), 6 * SIZE_4K);
    m.check(MemRange::from_len(SMALL.start, 6 * SIZE_4K), Target::Shared)
        .expect("the front is shared");
}

#[test]
fn a_response_that_is_not_a_psc_response_is_an_error() {
    let mut m = SnpModel::new(RAM);
    m.faults.psc_wrong_response = Some(SMALL.start / SIZE_4K);
    let e = convert(&mut m, SMALL, Target::Private, Mutant::Faithful)
        .0
        .expect_err("wrong response");
    assert!(
        matches!(
            e,
            SnpError::Psc {
                error: PscResponseError::NotPscResponse { msr: 0x13 },
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn cf_set_on_validate_ends_the_conversion_as_a_possible_attack() {
    let mut m = SnpModel::new(RAM);
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    let hit = SMALL.start + 2 * SIZE_4K;
    m.faults.no_update = Some(hit);
    let (res, c) = convert(&mut m, SMALL, Target::Private, Mutant::Faithful);
    let e = res.expect_err("CF=1");
    assert!(e.is_possible_attack(), "{e:?}");
    assert!(e.to_string().contains("possible attack"), "{e}");
    // Never retried: exactly one PVALIDATE of that page reached the platform.
    let tries = m
        .pvalidates
        .iter()
        .filter(|p| p.gpa == hit && p.validate)
        .count();
    assert_eq!(tries, 1);
    assert_eq!(c.done(), 2 * SIZE_4K);
}

#[test]
fn cf_set_on_rescind_is_a_possible_attack_too() {
    let mut m = SnpModel::new(RAM);
    m.faults.no_update = Some(SMALL.start);
    let (res, c) = convert(&mut m, SMALL, Target::Shared, Mutant::Faithful);
    assert!(res.expect_err("CF=1").is_possible_attack());
    assert_eq!((c.done(), c.psc_calls()), (0, 0), "no page state changed");
}

#[test]
fn fail_input_is_an_error_with_rax() {
    let mut m = SnpModel::new(RAM);
    m.faults.fail_input = Some(SMALL.start + SIZE_4K);
    let e = convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect_err("FAIL_INPUT");
    assert!(
        matches!(
            e,
            SnpError::Pvalidate(PvalidateError::Failed {
                rax: PVALIDATE_FAIL_INPUT,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("FAIL_INPUT"), "{e}");
}

#[test]
fn sizemismatch_at_4k_is_an_error() {
    // 4 KiB pages inside a 2 MiB RMP entry: nothing smaller than 4 KiB to try.
    let mut m = SnpModel::new(RAM);
    m.huge(SMALL.start & !(SIZE_2M - 1));
    let e = convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect_err("mismatch");
    assert!(e.to_string().contains("FAIL_SIZEMISMATCH"), "{e}");
}

#[test]
fn a_refused_share_is_made_private_again_without_an_alarm() {
    let mut m = SnpModel::new(RAM);
    m.faults.psc_error = Some((SMALL.start + 5 * SIZE_4K) / SIZE_4K);
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect_err("refused");
    m.faults.psc_error = None;
    // What the tracker's resolve does with the range left unknown.
    convert(&mut m, SMALL, Target::Private, Mutant::Faithful)
        .0
        .expect("recovered");
    m.check(SMALL, Target::Private)
        .expect("private, validated once");
}

#[test]
fn the_reset_sweep_counts_pages_already_validated() {
    let mut m = SnpModel::new(RAM);
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    let mut c = SnpConversion::reset(RAM);
    drive(&mut m, &mut c, Mutant::Faithful).expect("reset");
    m.check(RAM, Target::Private).expect("all private");
    let r = c.pvalidate_report();
    let pages = RAM.len() / SIZE_4K;
    let shared = SMALL.len() / SIZE_4K;
    assert_eq!(r.changed_4k, shared);
    assert_eq!(r.unchanged_4k, pages - shared);
}

#[test]
fn a_wrong_answer_is_refused() {
    let mut c = SnpConversion::new(SMALL, Target::Private);
    let e = c
        .answer(SnpAnswer::Pvalidate { rax: 0, cf: false })
        .expect_err("a PSC comes first");
    assert!(matches!(e, SnpError::WrongAnswer { .. }));
}

// ---- mutants: each must be caught by the model ----------------------------

#[test]
fn mutant_drop_rescind_is_caught() {
    // Plainly: the order rule (S4) sees a validated page asked for shared.
    let mut m = SnpModel::new(RAM);
    convert(&mut m, SMALL, Target::Shared, Mutant::DropRescind)
        .0
        .expect("the mutant believes it succeeded");
    let e = m.check(SMALL, Target::Shared).expect_err("caught");
    assert!(e.contains("SharedWhileValidated"), "{e}");

    // And by its consequence, with no order rule needed: a share the
    // hypervisor refuses leaves the mutant's pages validated, and making
    // them private again trips CF=1, a false attack alarm.
    let mut m = SnpModel::new(RAM);
    m.faults.psc_error = Some((SMALL.start + 5 * SIZE_4K) / SIZE_4K);
    convert(&mut m, SMALL, Target::Shared, Mutant::DropRescind)
        .0
        .expect_err("refused");
    m.faults.psc_error = None;
    let e = convert(&mut m, SMALL, Target::Private, Mutant::DropRescind)
        .0
        .expect_err("the recovery must trip");
    assert!(e.is_possible_attack(), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("{:#x}", SMALL.start + 5 * SIZE_4K)),
        "{e}"
    );
}

#[test]
fn mutant_swap_psc_op_is_caught() {
    let mut m = SnpModel::new(RAM);
    convert(&mut m, SMALL, Target::Shared, Mutant::SwapPscOp)
        .0
        .expect("the mutant believes it succeeded");
    let e = m.check(SMALL, Target::Shared).expect_err("still private");
    assert!(e.contains("assigned: true"), "{e}");

    let mut m = SnpModel::new(RAM);
    convert(&mut m, SMALL, Target::Shared, Mutant::Faithful)
        .0
        .expect("share");
    let _ = convert(&mut m, SMALL, Target::Private, Mutant::SwapPscOp);
    let e = m.check(SMALL, Target::Private).expect_err("caught");
    assert!(e.contains("PvalidateOfShared"), "{e}");
    assert_eq!(
        m.violations().first(),
        Some(&Violation::PvalidateOfShared(SMALL.start))
    );
}
