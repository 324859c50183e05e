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
        lane: None,
    }
}

/// Every line one lane's `bench.*,conv.cost` run prints, `lane` set.
pub fn lane(name: &str, shape: Shape) -> Vec<Bench> {
    let us = |x: f64| (x * 1000.0) as u64;
    // (null exit, share fixed, per page; unshare fixed, per page; first
    // touch per page; memcpy warm, cold per page; vmm fixed, per page)
    let m = match shape {
        Shape::X86Stock => [120.0, 130.0, 0.4, 125.0, 0.35, 5.0, 8.0, 12.0, 15.0, 0.1],
        Shape::X86SwProt => [115.0, 210.0, 1.1, 200.0, 1.0, 6.0, 8.5, 13.0, 60.0, 0.8],
        Shape::Arm64 | Shape::Arm64CyclesOnly => {
            [2.9, 0.0, 40.0, 0.0, 38.0, 1.5, 6.0, 9.0, 0.0, 0.0]
        }
    };
    let x86 = matches!(shape, Shape::X86Stock | Shape::X86SwProt);
    let mut v = Vec::new();
    for n in PAGES {
        let size = n * PAGE;
        let nf = n as f64;
        let share = m[1] + m[2] * nf;
        let unshare = m[3] + m[4] * nf;
        v.push(line("share", size, us(share), shape));
        v.push(line("unshare", size, us(unshare), shape));
        v.push(line(
            "io_round_trip",
            size,
            us(share + unshare + m[5] * nf),
            shape,
        ));
        v.push(line("bounce_warm", size, us(m[6] * nf), shape));
        v.push(line("bounce_cold", size, us(m[7] * nf), shape));
        v.push(line("bookkeeping", size, us(0.05 + 0.02 * nf), shape));
        if x86 {
            v.push(line("vmm_share", size, us(m[8] + m[9] * nf), shape));
            v.push(line("vmm_unshare", size, us(m[8] * 0.9 + m[9] * nf), shape));
            v.push(line("vmm_model", size, us(1.0 + 0.01 * nf), shape));
        }
    }
    v.push(line("null_exit", 0, us(m[0]), shape));
    let two_m = 512 * PAGE;
    v.push(line(
        "share_2m",
        two_m,
        us((m[1] + m[2] * 512.0) * 0.8),
        shape,
    ));
    v.push(line(
        "unshare_2m",
        two_m,
        us((m[3] + m[4] * 512.0) * 0.8),
        shape,
    ));
    v.push(line(
        "share_unshare",
        PAGE,
        us(m[1] + m[2] + m[3] + m[4]),
        shape,
    ));
    let noop = if x86 {
        "noop_map_gpa_private"
    } else {
        "noop_kvm_features"
    };
    v.push(line(noop, PAGE, us(m[0]), shape));
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
