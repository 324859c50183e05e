//! Property test of the MAP_GPA_RANGE server: a million random exits per
//! memory mode through [`serve`] (the run loop's own code) over the fake
//! platform, biased so that many are valid — gpas at RAM and slot
//! boundaries, every page-size hint, npages 0/1/2/huge/u64::MAX, both
//! directions, random `--vmm-fault` sets and randomly failing host calls.
//! After every request:
//! - the answer is one of the documented values, and the one an independent
//!   reading of the spec (validity, faults, failures) predicts;
//! - the VMM's record equals the fake KVM's attribute array over the
//!   guest_memfd slot, and a page-at-a-time oracle over the request;
//! - the host operations cleared exactly the pages the content promise
//!   (or its fault-inverted form) says, and none crossed a slot.

use super::fake::{FakePlatform, Op};
use super::faults::Faults;
use super::hypercall::{
    ANSWERS, RET_EAGAIN, RET_EINVAL, RET_EIO, RET_ENOSYS, RET_EPERM, RET_GARBAGE, RET_OK,
};
use super::memory::{GuestRam, Mode, ram_ranges};
use super::serve::serve;
use crate::config::VmmFault;
use convtest_proto::map_gpa::PAGE_4K;
use convtest_proto::plan::Content;
use convtest_proto::prng::SplitMix64;
use convtest_proto::range::MemRange;
use convtest_proto::tracker::PageState;
use std::time::Instant;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 8 * MIB;
/// One platform call in this many fails (after setup).
const FAIL_ONE_IN: u64 = 300;

/// The spec as a page-at-a-time model: what each page is, nothing clever.
struct Oracle {
    shared: Vec<bool>,
    /// Shared pages in all.
    count: u64,
}

struct Case {
    nr: u64,
    args: [u64; 3],
    answer_fault: Option<VmmFault>,
    wrong_content: bool,
}

fn gen_case(rng: &mut SplitMix64, boot_end: Option<u64>) -> Case {
    let mut edges = vec![
        0,
        0x9f000,
        0xa0000,
        0x10_0000,
        SIZE,
        SIZE - PAGE_4K,
        2 * MIB,
        4 * MIB,
    ];
    edges.extend(boot_end);
    let ram_page = |rng: &mut SplitMix64| {
        let r = if rng.below(8) == 0 {
            MemRange::new(0, 0xa0000)
        } else {
            MemRange::new(0x10_0000, SIZE)
        };
        r.start + rng.below(r.len() / PAGE_4K) * PAGE_4K
    };
    let gpa = match rng.below(20) {
        0..=7 => {
            let e = edges[rng.below(edges.len() as u64) as usize];
            e.wrapping_add((rng.below(17) as i64 - 8).wrapping_mul(PAGE_4K as i64) as u64)
        }
        8..=13 => ram_page(rng),
        14 => ram_page(rng) + 1 + rng.below(PAGE_4K - 1),
        15 => rng.next_u64(),
        16 => (u64::MAX - rng.below(8) * PAGE_4K) & !(PAGE_4K - 1),
        17 => (1 << 52) + rng.below(4) * PAGE_4K,
        _ => edges[rng.below(edges.len() as u64) as usize],
    };
    let to_end = SIZE.saturating_sub(gpa) / PAGE_4K;
    let npages = match rng.below(20) {
        0 => 0,
        1..=3 => 1,
        4..=5 => 2,
        6..=10 => 1 + rng.below(16),
        11..=12 => 1 + rng.below(600),
        13 => [512, 1 << 18][rng.below(2) as usize],
        14..=15 => to_end.max(1),
        16 => to_end.max(1) - rng.below(3).min(to_end.max(1) - 1),
        17 => [
            u64::MAX,
            u64::MAX / PAGE_4K,
            (u64::MAX / PAGE_4K) + 1,
            1 << 52,
        ][rng.below(4) as usize],
        18 => rng.next_u64(),
        _ => 1 + rng.below(2048),
    };
    let hint = match rng.below(10) {
        0..=5 => 0,
        6..=7 => 1,
        8 => 2,
        _ => rng.below(16),
    };
    let enc = if rng.below(2) == 0 { 0x10 } else { 0 };
    let attrs = if rng.below(40) == 0 {
        rng.next_u64()
    } else {
        hint | enc
    };
    let nr = match rng.below(40) {
        0 => rng.below(20),
        1 => rng.next_u64(),
        _ => 12,
    };
    let answer_fault = match rng.below(10) {
        0..=3 => None,
        4 => Some(VmmFault::Ignore),
        5 => Some(VmmFault::Deny),
        6 => Some(VmmFault::Partial),
        7 => Some(VmmFault::Leak),
        8 => Some(VmmFault::Garbage),
        _ => Some(VmmFault::Partial),
    };
    Case {
        nr,
        args: [gpa, npages, attrs],
        answer_fault,
        wrong_content: rng.below(4) == 0,
    }
}

/// The request's range and direction when it is well formed and in RAM
/// (worked out without the code under test, in u128 so nothing wraps).
fn valid_range(c: &Case) -> Option<(MemRange, bool)> {
    let [gpa, npages, attrs] = c.args;
    if c.nr != 12 || npages == 0 || gpa % PAGE_4K != 0 || attrs & !0x1f != 0 || attrs & 0xf > 2 {
        return None;
    }
    let end = u128::from(gpa) + u128::from(npages) * u128::from(PAGE_4K);
    let in_ram = ram_ranges(SIZE)
        .iter()
        .any(|r| u128::from(r.start) <= u128::from(gpa) && end <= u128::from(r.end));
    in_ram.then(|| (MemRange::new(gpa, end as u64), attrs & 0x10 == 0))
}

struct Totals {
    requests: u64,
    valid: u64,
    converted: u64,
    failed: u64,
}

fn drive(mode: Mode, content: Content, requests: u64, seed: u64, t: &mut Totals) {
    let mut ram = GuestRam::init(FakePlatform::new(mode, SIZE), SIZE, mode, content).unwrap();
    ram.platform_mut().take_ops();
    ram.platform_mut().fail_one_in(FAIL_ONE_IN, seed ^ 0x5eed);
    let mut rng = SplitMix64::new(seed);
    let mut oracle = Oracle {
        shared: vec![false; (SIZE / PAGE_4K) as usize],
        count: 0,
    };
    let is_shared = |ram: &GuestRam<FakePlatform>, p: usize| {
        ram.pages.state(p as u64 * PAGE_4K) == Some(PageState::Shared)
    };
    let gmem = ram.gmem_slot();
    let boot_end = gmem.map(|g| g.start);
    for i in 0..requests {
        let c = gen_case(&mut rng, boot_end);
        let mut list: Vec<VmmFault> = c.answer_fault.into_iter().collect();
        if c.wrong_content {
            list.push(VmmFault::WrongContent);
        }
        let faults = Faults::new(&list).unwrap();
        let injected = ram.platform().injected;
        let s = serve(&mut ram, &faults, c.nr, c.args);
        let failed = ram.platform().injected != injected;
        let ops = ram.platform_mut().take_ops();
        let ctx = || format!("request {i} {:x?} faults {list:?} -> {s:x?}", c.args);
        assert!(ANSWERS.contains(&s.ret), "{}", ctx());
        assert!(
            ram.platform().violations.is_empty(),
            "{}: {:?}",
            ctx(),
            ram.platform().violations
        );
        t.requests += 1;

        let pages = |r: MemRange| (r.start / PAGE_4K) as usize..(r.end / PAGE_4K) as usize;
        let Some((range, to_shared)) = valid_range(&c) else {
            let want = if c.nr == 12 { RET_EINVAL } else { RET_ENOSYS };
            assert_eq!((s.ret, s.faulted), (want, false), "{}", ctx());
            assert!(ops.is_empty() && !failed, "{}", ctx());
            continue;
        };
        t.valid += 1;
        // One pass over the request, page by page against the oracle: how
        // many pages would flip (n), how many of those changed — they must be
        // a prefix of the flips — and whether anything else moved. The model
        // is then the oracle's new truth for the range.
        let words = ram.pages.shared_words();
        let (mut n, mut changed, mut changed_in_gmem) = (0usize, 0usize, 0u64);
        let (mut in_prefix, mut out_of_order, mut moved) = (true, false, false);
        // A plain while loop: debug builds make iterator adapters slow.
        let gmem_first = gmem.map_or(usize::MAX, |g| (g.start / PAGE_4K) as usize);
        let (mut p, end) = (
            (range.start / PAGE_4K) as usize,
            (range.end / PAGE_4K) as usize,
        );
        while p < end {
            let now = words[p / 64] >> (p % 64) & 1 != 0;
            let was = oracle.shared[p];
            if was == to_shared {
                moved |= now != to_shared;
            } else {
                n += 1;
                if now == to_shared {
                    out_of_order |= !in_prefix;
                    changed += 1;
                    changed_in_gmem += u64::from(p >= gmem_first);
                } else {
                    in_prefix = false;
                }
            }
            oracle.shared[p] = now;
            p += 1;
        }
        assert!(!out_of_order, "{}: pages changed out of order", ctx());
        assert!(
            !moved,
            "{}: a page already in the target state moved",
            ctx()
        );
        // (pages converted, answer, whether an answer fault applied, whether
        // it converts nothing at all)
        let (k, answer, applied, nothing) = match (c.answer_fault, to_shared) {
            _ if n == 0 => (0, RET_OK, false, true),
            (None, _) | (Some(VmmFault::Leak), true) => (n, RET_OK, false, false),
            (Some(VmmFault::Ignore), _) | (Some(VmmFault::Leak), false) => (0, RET_OK, true, true),
            (Some(VmmFault::Deny), _) => (0, RET_EPERM, true, true),
            (Some(VmmFault::Garbage), _) => (0, RET_GARBAGE, true, true),
            (Some(VmmFault::Partial), _) => (n / 2, RET_EAGAIN, true, false),
            (Some(VmmFault::WrongContent | VmmFault::NoReset), _) => {
                unreachable!("not an answer fault")
            }
        };
        let invert = c.wrong_content && !nothing;
        assert_eq!(s.faulted, applied || invert, "{}", ctx());
        if failed {
            assert_eq!(s.ret, RET_EIO, "{}", ctx());
            assert!(changed <= k, "{}", ctx());
            t.failed += 1;
        } else {
            assert_eq!(s.ret, answer, "{}", ctx());
            assert_eq!(changed, k, "{}", ctx());
            // The content promise, or its inversion, for the pages converted.
            let clear = (content == Content::Zero) != invert;
            let (mut punched, mut discarded, mut attributed) = (0, 0, 0);
            for op in &ops {
                match op {
                    Op::Punch(r) => punched += r.len() / PAGE_4K,
                    Op::Discard(r) => discarded += r.len() / PAGE_4K,
                    Op::SetAttributes(r, _) => attributed += r.len() / PAGE_4K,
                }
            }
            let in_gmem = changed_in_gmem;
            let tracked = k as u64 - in_gmem;
            let want = match (mode, clear) {
                (_, false) => (0, 0),
                (Mode::SwProtected { .. }, true) => (in_gmem, in_gmem + tracked),
                (Mode::EmulatedPrivate { gmem_mmap: true }, true) => (tracked, 0),
                (Mode::EmulatedPrivate { gmem_mmap: false }, true) => (0, tracked),
            };
            assert_eq!((punched, discarded), want, "{}: {ops:?}", ctx());
            assert_eq!(attributed, in_gmem, "{}", ctx());
            t.converted += u64::from(k > 0);
        }
        oracle.count = if to_shared {
            oracle.count + changed as u64
        } else {
            oracle.count - changed as u64
        };
        assert_eq!(
            ram.pages.count(PageState::Shared),
            oracle.count,
            "{}: pages outside the request changed",
            ctx()
        );

        // The record is KVM's attribute array over the guest_memfd slot…
        if let Some(g) = gmem {
            let words = (g.start / PAGE_4K / 64) as usize..(g.end / PAGE_4K / 64) as usize;
            let model = &ram.pages.shared_words()[words.clone()];
            let kvm = &ram.platform().private[words];
            assert!(
                model.iter().zip(kvm).all(|(m, k)| *m == !*k),
                "{}: record and KVM disagree",
                ctx()
            );
        }
        // …and the oracle, everywhere now and then.
        if i % 4096 == 0 {
            for r in ram.pages.ram() {
                for p in pages(r) {
                    assert_eq!(
                        is_shared(&ram, p),
                        oracle.shared[p],
                        "{}: page {p:#x}",
                        ctx()
                    );
                }
            }
        }
    }
}

fn run(name: &str, instances: &[(Mode, Content)], requests: u64) {
    let started = Instant::now();
    let mut t = Totals {
        requests: 0,
        valid: 0,
        converted: 0,
        failed: 0,
    };
    let each = requests.div_ceil(instances.len() as u64);
    for (i, &(mode, content)) in instances.iter().enumerate() {
        drive(mode, content, each, 0xc0de_0000 + i as u64, &mut t);
    }
    println!(
        "{name}: {} requests ({} valid, {} converting, {} with a failed host call) in {:.2?}",
        t.requests,
        t.valid,
        t.converted,
        t.failed,
        started.elapsed()
    );
    assert!(t.requests >= requests);
    assert!(
        t.valid * 3 > t.requests,
        "the bias keeps many requests valid"
    );
    assert!(t.failed > 100, "failure paths were exercised");
}

#[test]
fn sw_protected_serves_a_million_random_requests() {
    run(
        "sw-protected",
        &[
            (Mode::SwProtected { boot_end: 2 * MIB }, Content::Zero),
            (Mode::SwProtected { boot_end: 4 * MIB }, Content::Zero),
        ],
        1_000_000,
    );
}

#[test]
fn emulated_private_serves_a_million_random_requests() {
    run(
        "emulated-private",
        &[
            (
                Mode::EmulatedPrivate { gmem_mmap: false },
                Content::Preserve,
            ),
            (Mode::EmulatedPrivate { gmem_mmap: false }, Content::Zero),
            (Mode::EmulatedPrivate { gmem_mmap: true }, Content::Preserve),
        ],
        1_000_000,
    );
}
