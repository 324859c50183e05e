//! The kill table as it must come out: for each platform, section and
//! mutant, the tests that must turn red (every other test must stay green).
//! Written down from what each fault does to what each test checks — not
//! derived from a run — so a run that differs is a finding about the
//! platform, the VMM or the suite. The VMM faults apply only to requests
//! that would flip a page (see `--vmm-fault`), so the boot's reset of a
//! fresh VM (nothing to flip) survives them.

use super::lane::{Mutant, Platform, Section};
use convtest_proto::plan::GuestFault as G;
use convtest_vmm::config::VmmFault as V;

/// Tests a mutant must turn red: `conv.*` ones without the prefix, others
/// by their whole name.
type Red = &'static [&'static str];

/// The catalog name of an entry of a `Red` list.
pub fn full_name(t: &str) -> String {
    if t.contains('.') {
        t.to_string()
    } else {
        format!("conv.{t}")
    }
}

const ALL_BUT_REJECTS: Red = &[
    "reset_private",
    "share_verify",
    "unshare_private",
    "content",
    "sizes",
    "flipflop",
    "cost",
    "stress.storm",
];

const ALL_CONV: Red = &[
    "reset_private",
    "share_verify",
    "unshare_private",
    "content",
    "rejects",
    "sizes",
    "flipflop",
    "cost",
    "stress.storm",
];

// Every conversion a conv.* test makes is confirmed on the platform after it
// (the guest's harness `confirm`): on x86 by the host over the whole range
// (it must read a pattern written into what was shared, and not see a
// canary written into what was made private; conv.flipflop asks after its
// first, last and a seeded sample of rounds), on pKVM by pKVM itself, one
// state probe per granule. So a conversion the platform did not make is
// caught by the test that asked for it, in either direction.

/// Tests that convert several granules at once toward shared: the 2 MiB
/// dirty range of conv.reset_private and the 2 MiB ranges of conv.sizes.
/// A `partial-share-*` fault leaves one of them private, which the
/// confirmation after the share finds (and the storm, see each row).
const MULTI_GRANULE_SHARES: Red = &["reset_private", "sizes", "stress.storm"];

/// Tests that convert several granules at once toward private: conv.sizes'
/// unshares of its 2 MiB ranges. conv.reset_private's only way back to
/// private is the firmware's reset (MAP_GPA_RANGE of each RAM range, pKVM's
/// ledger walk one granule at a time), which the partial faults do not
/// reach: `guest:skip-reset` is that path's fault.
const MULTI_GRANULE_UNSHARES: Red = &["sizes", "stress.storm"];

/// x86: every test asks the host (the only one who can tell a page's state
/// there), so a forged host (`guest:forge-host`) turns all of them red: the
/// relay marks each answer the guest printed itself.
const X86_FORGED: Red = ALL_CONV;

/// pKVM: the tests that ask the host; content, flipflop, rejects and cost
/// are confirmed by pKVM's own answers and ask the host nothing.
const PKVM_FORGED: Red = &[
    "reset_private",
    "share_verify",
    "unshare_private",
    "sizes",
    "stress.storm",
];

/// The partial-conversion faults, with the tests each must turn red.
const fn partial(shares: Red, unshares: Red) -> [(Mutant, Red); 6] {
    use convtest_proto::plan::Omitted as O;
    use convtest_proto::tracker::Target::{Private, Shared};
    [
        (Mutant::Guest(G::Partial(Shared, O::First)), shares),
        (Mutant::Guest(G::Partial(Shared, O::Middle)), shares),
        (Mutant::Guest(G::Partial(Shared, O::Last)), shares),
        (Mutant::Guest(G::Partial(Private, O::First)), unshares),
        (Mutant::Guest(G::Partial(Private, O::Middle)), unshares),
        (Mutant::Guest(G::Partial(Private, O::Last)), unshares),
    ]
}

const PARTIAL: [(Mutant, Red); 6] = partial(MULTI_GRANULE_SHARES, MULTI_GRANULE_UNSHARES);

/// sw-protected memory, content=zero: private and shared are different pages.
const SW_PROTECTED: &[(Mutant, Red)] = &[
    // Shares answered 0 but not made: the host never sees the guest's
    // bytes, pages keep their content where zero was promised. The
    // benchmark's granule ends private as it began.
    (
        Mutant::Vmm(V::Ignore),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
            "stress.storm",
        ],
    ),
    (Mutant::Vmm(V::Deny), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Partial), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Garbage), ALL_BUT_REJECTS),
    // Unshares answered 0, pages left shared: the canary written after each
    // unshare reaches the host. conv.rejects never flips its page.
    (Mutant::Vmm(V::Leak), ALL_BUT_REJECTS),
    // No hole punched, no shared page dropped: stale bytes come back.
    (
        Mutant::Vmm(V::WrongContent),
        &["content", "flipflop", "stress.storm"],
    ),
    (
        Mutant::Guest(G::SkipShare),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
            "stress.storm",
        ],
    ),
    // Every unshare skipped, the benchmark's making-private included: pages
    // stay shared and the host sees the canaries; the malformed requests
    // all ask for private and are answered 0.
    (Mutant::Guest(G::SkipUnshare), ALL_CONV),
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
            "stress.storm",
        ],
    ),
    (Mutant::Guest(G::ForgeHost), X86_FORGED),
    PARTIAL[0],
    PARTIAL[1],
    PARTIAL[2],
    PARTIAL[3],
    PARTIAL[4],
    PARTIAL[5],
];

/// Emulated-private memory, content=preserve: one page, the VMM's tracking
/// decides what the host may read.
const EMULATED_PRIVATE: &[(Mutant, Red)] = &[
    // Preserve was promised and nothing changes, so the bytes cannot tell;
    // the host can: it is refused what the guest thinks it shared.
    (
        Mutant::Vmm(V::Ignore),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
            "stress.storm",
        ],
    ),
    (Mutant::Vmm(V::Deny), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Partial), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Garbage), ALL_BUT_REJECTS),
    (Mutant::Vmm(V::Leak), ALL_BUT_REJECTS),
    (
        Mutant::Vmm(V::WrongContent),
        &["content", "flipflop", "stress.storm"],
    ),
    (
        Mutant::Guest(G::SkipShare),
        &[
            "reset_private",
            "share_verify",
            "unshare_private",
            "content",
            "sizes",
            "flipflop",
            "stress.storm",
        ],
    ),
    (Mutant::Guest(G::SkipUnshare), ALL_CONV),
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
            "stress.storm",
        ],
    ),
    (Mutant::Guest(G::ForgeHost), X86_FORGED),
    PARTIAL[0],
    PARTIAL[1],
    PARTIAL[2],
    PARTIAL[3],
    PARTIAL[4],
    PARTIAL[5],
];

/// pKVM protected VM, content=preserve; one call per granule, -3 for a
/// granule already in the asked state.
const PKVM: &[(Mutant, Red)] = &[
    // Nothing is shared: the host is refused everything, and the unshare
    // that follows each skipped share answers -3.
    (Mutant::Guest(G::SkipShare), ALL_CONV),
    // Pages stay shared: canaries leak, pKVM's probe after each unshare
    // finds the granule still shared, and the next share of a page that was
    // never unshared answers -3.
    (Mutant::Guest(G::SkipUnshare), ALL_CONV),
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
            "stress.storm",
        ],
    ),
    (Mutant::Guest(G::ForgeHost), PKVM_FORGED),
    PARTIAL[0],
    PARTIAL[1],
    PARTIAL[2],
    PARTIAL[3],
    PARTIAL[4],
    PARTIAL[5],
];

// ---- the reboot section: two boots per run (boot 0 leaves its dirty
// state, boot 1 checks it), policy keep except where the run says. What
// the tests check: reset.content the previous boot's private canaries
// (keep: preserved; private, recreate: zero) and its shared ranges (the
// content promise; zero after a wipe); reset.private_again the host's scan
// and reads (and pKVM's MEM_UNSHARE probe); reset.calls exactly the calls
// the dirty state needs (x86 keep: one per RAM range; pKVM keep: each
// shared granule; after a wipe: none on pKVM, at most one per range on
// x86) with nothing left unknown; reboot.leave_dirty that the host saw the
// shared ranges.

const REBOOT_SW_PROTECTED: &[(Mutant, Red)] = &[
    // The ranges stay shared: the host finds the canaries, the guest reads
    // its canary where zero was promised, and the sweep made no call.
    (
        Mutant::Guest(G::SkipReset),
        &["reset.content", "reset.private_again", "reset.calls"],
    ),
    // `private` claimed, nothing punched: the private canaries survive
    // where zero is due. The guest's own reset still makes the shared
    // ranges private, with its usual two calls.
    (Mutant::Vmm(V::NoReset), &["reset.content"]),
    // Nothing was shared: the host never saw the canary; the pages stayed
    // private with it, so no conversion zeroed them.
    (
        Mutant::Guest(G::SkipShare),
        &["reboot.leave_dirty", "reset.content"],
    ),
    // The host's answers forged: the tests that ask the host.
    (
        Mutant::Guest(G::ForgeHost),
        &["reboot.leave_dirty", "reset.private_again"],
    ),
];

const REBOOT_EMULATED_PRIVATE: &[(Mutant, Red)] = &[
    // Preserve was promised: the canaries reading back is right; the host
    // still sees them and the sweep made no call.
    (
        Mutant::Guest(G::SkipReset),
        &["reset.private_again", "reset.calls"],
    ),
    // `private` claimed, nothing cleared: both kinds of canary survive.
    (Mutant::Vmm(V::NoReset), &["reset.content"]),
    // Never shared, still preserved: only the host's missing view shows.
    (Mutant::Guest(G::SkipShare), &["reboot.leave_dirty"]),
    // The host's answers forged: the tests that ask the host.
    (
        Mutant::Guest(G::ForgeHost),
        &["reboot.leave_dirty", "reset.private_again"],
    ),
];

const REBOOT_PKVM: &[(Mutant, Red)] = &[
    // The ledger's granules stay shared: the VMM reads the canaries, and
    // no MEM_UNSHARE was made for the granules the ledger lists.
    (
        Mutant::Guest(G::SkipReset),
        &["reset.private_again", "reset.calls"],
    ),
    // `recreate` claimed, the old VM kept: the canaries survive where a new
    // VM reads zero, and the ledger (which a new VM would not have) makes
    // calls where none are due.
    (Mutant::Vmm(V::NoReset), &["reset.content", "reset.calls"]),
    // The ledger lists shares pKVM never made: its MEM_UNSHAREs answer
    // not-shared for confirmed shares, which the reset leaves unknown.
    (
        Mutant::Guest(G::SkipShare),
        &["reboot.leave_dirty", "reset.calls"],
    ),
    // The host's answers forged: the tests that ask the host.
    (
        Mutant::Guest(G::ForgeHost),
        &["reboot.leave_dirty", "reset.private_again"],
    ),
];

// ---- the smp section: two vCPUs, stress.race, stress.storm and
// stress.overlap. What they check: the race, that a racing CPU's canary in
// a granule just made private reaches no host-visible page (scan, noread;
// pKVM's MEM_UNSHARE probe) and its pattern in a granule just made shared
// is what the host reads; the storm, every answer and read-back against
// its model; the overlap, the answers per granule of calls several CPUs
// made at once (pKVM: exactly one success each), the tracker against the
// round's prediction and the host's view of what was just converted.

const ALL_SMP: Red = &["stress.race", "stress.storm", "stress.overlap"];

const SMP_X86: &[(Mutant, Red)] = &[
    // Shares answered but not made: the host reads no pattern.
    (Mutant::Vmm(V::Ignore), ALL_SMP),
    // Unshares answered, pages left shared: the canary is host-visible.
    (Mutant::Vmm(V::Leak), ALL_SMP),
    (Mutant::Guest(G::SkipShare), ALL_SMP),
    (Mutant::Guest(G::SkipUnshare), ALL_SMP),
    // The race plans from a tracker that never changes: every round shares
    // again what is shared, then calls it private and the host finds the
    // canary.
    (Mutant::Guest(G::ForgetTracker), ALL_SMP),
    // Every smp test asks the host.
    (Mutant::Guest(G::ForgeHost), ALL_SMP),
];

const SMP_PKVM: &[(Mutant, Red)] = &[
    (Mutant::Guest(G::SkipShare), ALL_SMP),
    (Mutant::Guest(G::SkipUnshare), ALL_SMP),
    // The second share of a granule pKVM shared answers -3.
    (Mutant::Guest(G::ForgetTracker), ALL_SMP),
    // Every smp test asks the host.
    (Mutant::Guest(G::ForgeHost), ALL_SMP),
];

/// The tests `mutant` must turn red on `platform` in `section`, `None`
/// when the table has no row (a mutant that does not apply there).
pub fn red(platform: Platform, section: Section, mutant: Mutant) -> Option<Red> {
    // A skipped firmware reset under a VMM that wipes memory (private on
    // x86, recreate on pKVM) leaves nothing to find: all green.
    if matches!(mutant, Mutant::Clean | Mutant::Covered(_)) {
        return Some(&[]);
    }
    let table = match (section, platform) {
        (Section::Conv, Platform::X86SwProtected) => SW_PROTECTED,
        (Section::Conv, Platform::X86EmulatedPrivate) => EMULATED_PRIVATE,
        (Section::Conv, Platform::Arm64Pkvm) => PKVM,
        (Section::Reboot, Platform::X86SwProtected) => REBOOT_SW_PROTECTED,
        (Section::Reboot, Platform::X86EmulatedPrivate) => REBOOT_EMULATED_PRIVATE,
        (Section::Reboot, Platform::Arm64Pkvm) => REBOOT_PKVM,
        (Section::Smp, Platform::Arm64Pkvm) => SMP_PKVM,
        (Section::Smp, _) => SMP_X86,
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
            for section in Section::of(lane.platform) {
                for m in section.mutants(lane.platform) {
                    let row = red(lane.platform, section, m);
                    assert!(row.is_some(), "{} {m}", lane.name);
                    for t in row.unwrap_or_default() {
                        let name = full_name(t);
                        assert!(
                            section.tests().contains(&name.as_str()),
                            "{} {m}: {name} is not a column of {}",
                            lane.name,
                            section.as_str()
                        );
                    }
                }
            }
            for m in Mutant::all() {
                assert_eq!(
                    red(lane.platform, Section::Conv, m).is_some(),
                    m.not_applicable(lane.platform).is_none(),
                    "{} {m}",
                    lane.name
                );
            }
        }
        assert!(catalog::find("reset.content").is_some());
    }

    #[test]
    fn on_paper_every_test_and_every_mutant_has_a_kill() {
        for lane in LANES {
            for section in Section::of(lane.platform) {
                let rows: Vec<(Mutant, Red)> = section
                    .mutants(lane.platform)
                    .into_iter()
                    .filter(|&m| !matches!(m, Mutant::Clean | Mutant::Covered(_)))
                    .filter_map(|m| red(lane.platform, section, m).map(|r| (m, r)))
                    .collect();
                for (m, r) in &rows {
                    assert!(!r.is_empty(), "{}: {m} kills nothing", lane.name);
                }
                for t in section.tests() {
                    assert!(
                        rows.iter()
                            .any(|(_, r)| r.iter().any(|x| full_name(x) == t)),
                        "{}: nothing kills {t}",
                        lane.name
                    );
                }
            }
        }
    }
}
