//! Synthetic bench lines shaped like the guest's and the VMM's, for the
//! tests: costs follow simple models (a fixed exit cost plus a per-page
//! cost; memcpy per byte) in the ranges measured on the nested lanes, so
//! the break-even and the plot have something real-looking to show.

use crate::ktap::Bench;

/// Which platform the lines imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// x86, stock KVM: MAP_GPA_RANGE exits to the VMM, one call per range.
    X86Stock,
    /// x86 with KVM_SET_MEMORY_ATTRIBUTES: a dearer VMM part per page.
    X86SwProt,
    /// arm64 pKVM: one HVC per granule at EL2, no VMM part.
    Arm64,
    /// The same without a known counter frequency: cycles only.
    Arm64CyclesOnly,
}

const PAGE: u64 = 4096;
/// Granules 1, 2, 4 … 512.
pub const PAGES: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

fn line(op: &str, size: u64, ns: u64, shape: Shape) -> Bench {
    // A 62.5 MHz arm64 counter, a 2.5 GHz TSC.
    let (cycles_per_ns, with_ns) = match shape {
        Shape::Arm64 => (0.0625, true),
        Shape::Arm64CyclesOnly => (0.0625, false),
        Shape::X86Stock | Shape::X86SwProt => (2.5, true),
    };
    let cycles = |n: u64| ((n as f64 * cycles_per_ns) as u64).max(1);
    let vmm = op.starts_with("vmm_");
    Bench {
        op: op.into(),
        size_bytes: Some(size),
        pages: Some((size / PAGE).max(1)),
        iters: Some(200),
        ns_p50: (with_ns || vmm).then_some(ns),
        ns_p99: (with_ns || vmm).then_some(ns * 3 / 2),
        ns_min: (with_ns || vmm).then_some(ns * 9 / 10),
        cycles_p50: (!vmm).then(|| cycles(ns)),
        cycles_p99: (!vmm).then(|| cycles(ns * 3 / 2)),
        cycles_min: (!vmm).then(|| cycles(ns * 9 / 10)),
        ..Bench::default()
    }
}

/// A platform's cost model, µs: a fixed part per call plus a part per
/// granule (page).
struct Model {
    null_exit: f64,
    share: (f64, f64),
    unshare: (f64, f64),
    touch_per_page: f64,
    memcpy_warm_per_page: f64,
    memcpy_cold_per_page: f64,
    /// The own VMM's part of a share (x86 only).
    vmm: Option<(f64, f64)>,
    noop_op: &'static str,
}

fn model(shape: Shape) -> Model {
    match shape {
        Shape::X86Stock => Model {
            null_exit: 120.0,
            share: (130.0, 0.4),
            unshare: (125.0, 0.35),
            touch_per_page: 5.0,
            memcpy_warm_per_page: 8.0,
            memcpy_cold_per_page: 12.0,
            vmm: Some((15.0, 0.1)),
            noop_op: "noop_map_gpa_private",
        },
        Shape::X86SwProt => Model {
            null_exit: 115.0,
            share: (210.0, 1.1),
            unshare: (200.0, 1.0),
            touch_per_page: 6.0,
            memcpy_warm_per_page: 8.5,
            memcpy_cold_per_page: 13.0,
            vmm: Some((60.0, 0.8)),
            noop_op: "noop_map_gpa_private",
        },
        // One HVC per granule: no fixed part worth the name.
        Shape::Arm64 | Shape::Arm64CyclesOnly => Model {
            null_exit: 2.9,
            share: (0.0, 40.0),
            unshare: (0.0, 38.0),
            touch_per_page: 1.5,
            memcpy_warm_per_page: 6.0,
            memcpy_cold_per_page: 9.0,
            vmm: None,
            noop_op: "noop_kvm_features",
        },
    }
}

/// Every line one lane's `bench.*,conv.cost` run prints, `lane` set.
pub fn lane(name: &str, shape: Shape) -> Vec<Bench> {
    let ns = |us: f64| (us * 1000.0) as u64;
    let m = model(shape);
    let cost = |(fixed, per_page): (f64, f64), pages: f64| fixed + per_page * pages;
    let mut v = Vec::new();
    for n in PAGES {
        let (size, pages) = (n * PAGE, n as f64);
        let share = cost(m.share, pages);
        let unshare = cost(m.unshare, pages);
        let mut push = |op: &str, us: f64| v.push(line(op, size, ns(us), shape));
        push("share", share);
        push("unshare", unshare);
        push("io_round_trip", share + unshare + m.touch_per_page * pages);
        push("bounce_warm", m.memcpy_warm_per_page * pages);
        push("bounce_cold", m.memcpy_cold_per_page * pages);
        push("bookkeeping", 0.05 + 0.02 * pages);
        if let Some(vmm) = m.vmm {
            push("vmm_share", cost(vmm, pages));
            push("vmm_unshare", cost(vmm, pages) - 0.1 * vmm.0);
            push("vmm_model", 1.0 + 0.01 * pages);
        }
    }
    let two_m = 512 * PAGE;
    v.push(line("null_exit", 0, ns(m.null_exit), shape));
    // The 2M hint saves a fifth (fewer page-table updates).
    v.push(line(
        "share_2m",
        two_m,
        ns(cost(m.share, 512.0) * 0.8),
        shape,
    ));
    v.push(line(
        "unshare_2m",
        two_m,
        ns(cost(m.unshare, 512.0) * 0.8),
        shape,
    ));
    v.push(line(
        "share_unshare",
        PAGE,
        ns(cost(m.share, 1.0) + cost(m.unshare, 1.0)),
        shape,
    ));
    v.push(line(m.noop_op, PAGE, ns(m.null_exit), shape));
    for b in &mut v {
        b.lane = Some(name.to_string());
    }
    v
}

/// The three lanes `convtest bench` runs by default.
pub fn three_lanes() -> Vec<(&'static str, Vec<Bench>)> {
    vec![
        (
            "nested-x86-swprot",
            lane("nested-x86-swprot", Shape::X86SwProt),
        ),
        ("nested-x86", lane("nested-x86", Shape::X86Stock)),
        ("nested-arm64-pkvm", lane("nested-arm64-pkvm", Shape::Arm64)),
    ]
}

/// A lane that ran and passed with `bench`, judged (for the writers' tests).
pub fn passed(lane: &str, bench: Vec<Bench>, total_ms: u64) -> super::judged::Judged {
    use super::judged::{Judged, LaneResult, RunOutcome};
    Judged::of(LaneResult {
        lane: lane.into(),
        outcome: RunOutcome::Ran {
            verdict: crate::verdict::Verdict::Pass,
            reason: String::new(),
            ran_as: lane.into(),
            total_ms,
        },
        bench,
    })
}

/// The three lanes, all passed.
pub fn three_passed(total_ms: u64) -> Vec<super::judged::Judged> {
    three_lanes()
        .into_iter()
        .map(|(lane, bench)| passed(lane, bench, total_ms))
        .collect()
}
