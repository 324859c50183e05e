//! The kill table as it must come out: for each platform and mutant, the
//! `conv.*` tests that must turn red (every other test must stay green).
//! Written down from what each fault does to what each test checks — not
//! derived from a run — so a run that differs is a finding about the
//! platform, the VMM or the suite. The VMM faults apply only to requests
//! that would flip a page (see `--vmm-fault`), so the boot's reset of a
//! fresh VM (nothing to flip) survives them.

use super::lane::{Mutant, Platform};
use crate::cli::VmmFault as V;
use convtest_proto::plan::GuestFault as G;

/// Tests (without the `conv.` prefix) a mutant must turn red.
type Red = &'static [&'static str];

const ALL_BUT_REJECTS: Red = &[
    "reset_private",
    "share_verify",
    "unshare_private",
    "content",
    "sizes",
    "flipflop",
    "cost",
];

/// sw-protected memory, content=zero: private and shared are different pages.
const SW_PROTECTED: &[(Mutant, Red)] = &[
    // Shares answered 0 but not made: the host never sees the guest's
    // bytes, pages keep their content where zero was promised.
    (
        Mutant::Vmm(V::Ignore),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
        ],
    ),
    (Mutant::Vmm(V::Deny), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Partial), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Garbage), ALL_BUT_REJECTS),
    // Unshares answered 0, pages left shared: canaries written after them
    // reach the host; the bytes are not zeroed on the way back.
    (
        Mutant::Vmm(V::Leak),
        &["reset_private", "unshare_private", "content", "flipflop"],
    ),
    // No hole punched, no shared page dropped: stale bytes come back.
    (Mutant::Vmm(V::WrongContent), &["content", "flipflop"]),
    (
        Mutant::Guest(G::SkipShare),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
        ],
    ),
    (
        Mutant::Guest(G::SkipUnshare),
        &[
            "reset_private",
            "unshare_private",
            "content",
            "rejects",
            "flipflop",
        ],
    ),
    (Mutant::Guest(G::SkipReset), &["reset_private"]),
    (
        Mutant::Guest(G::ForgetTracker),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
        ],
    ),
];

/// Emulated-private memory, content=preserve: one page, the VMM's tracking
/// decides what the host may read.
const EMULATED_PRIVATE: &[(Mutant, Red)] = &[
    // Preserve was promised and nothing changes: content tests stay green.
    (
        Mutant::Vmm(V::Ignore),
        &["reset_private", "share_verify", "unshare_private", "sizes"],
    ),
    (Mutant::Vmm(V::Deny), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Partial), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Garbage), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Leak), &["reset_private", "unshare_private"]),
    (Mutant::Vmm(V::WrongContent), &["content", "flipflop"]),
    (
        Mutant::Guest(G::SkipShare),
        &["reset_private", "share_verify", "unshare_private", "sizes"],
    ),
    (
        Mutant::Guest(G::SkipUnshare),
        &["reset_private", "unshare_private", "rejects"],
    ),
    (Mutant::Guest(G::SkipReset), &["reset_private"]),
    (
        Mutant::Guest(G::ForgetTracker),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
        ],
    ),
];

/// pKVM protected VM, content=preserve; one call per granule, -3 for a
/// granule already in the asked state.
const PKVM: &[(Mutant, Red)] = &[
    // Nothing is shared: the host is refused everything, and the unshare
    // that follows each skipped share answers -3.
    (
        Mutant::Guest(G::SkipShare),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "rejects",
            "sizes",
            "flipflop",
            "cost",
        ],
    ),
    // Pages stay shared: canaries leak, and the next share of a page that
    // was never unshared answers -3.
    (
        Mutant::Guest(G::SkipUnshare),
        &[
            "reset_private",
            "unshare_private",
            "content",
            "rejects",
            "sizes",
            "flipflop",
            "cost",
        ],
    ),
    // The dirty 2 MiB range stays shared, so conv.sizes' share of it
    // answers -3 as well.
    (Mutant::Guest(G::SkipReset), &["reset_private", "sizes"]),
    (
        Mutant::Guest(G::ForgetTracker),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
        ],
    ),
];

/// The tests `mutant` must turn red on `platform`, `None` when the table
/// has no row (a mutant that does not apply there, or the clean run).
pub fn red(platform: Platform, mutant: Mutant) -> Option<Red> {
    if mutant == Mutant::Clean {
        return Some(&[]);
    }
    let table = match platform {
        Platform::X86SwProtected => SW_PROTECTED,
        Platform::X86EmulatedPrivate => EMULATED_PRIVATE,
        Platform::Arm64Pkvm => PKVM,
    };
    table.iter().find(|(m, _)| *m == mutant).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutants::lane::LANES;
    use convtest_proto::catalog;

    #[test]
    fn every_applicable_mutant_has_a_row_naming_real_tests() {
        for lane in LANES {
            for m in Mutant::all() {
                let row = red(lane.platform, m);
                assert_eq!(
                    row.is_some(),
                    m.not_applicable(lane.platform).is_none(),
                    "{} {m}",
                    lane.name
                );
                for t in row.unwrap_or_default() {
                    assert!(
                        catalog::find(&format!("conv.{t}")).is_some(),
                        "{} {m}: no test conv.{t}",
                        lane.name
                    );
                }
            }
        }
    }

    #[test]
    fn on_paper_every_test_and_every_mutant_has_a_kill() {
        for lane in LANES {
            let rows: Vec<(Mutant, Red)> = Mutant::all()
                .into_iter()
                .filter(|&m| m != Mutant::Clean)
                .filter_map(|m| red(lane.platform, m).map(|r| (m, r)))
                .collect();
            for (m, r) in &rows {
                assert!(!r.is_empty(), "{}: {m} kills nothing", lane.name);
            }
            for t in catalog::selected("conv.*", false) {
                let short = t.name.trim_start_matches("conv.");
                assert!(
                    rows.iter().any(|(_, r)| r.contains(&short)),
                    "{}: nothing kills {}",
                    lane.name,
                    t.name
                );
            }
        }
    }
}
