//! The allocator under seeded churn: every live block keeps its own fill
//! pattern, alignment is honoured and nothing leaks.

use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use crate::heap;
use crate::report::tdiag;
use alloc::alloc::{Layout, alloc, dealloc};
use convtest_proto::prng::{SplitMix64, mix};

const SLOTS: usize = 64;
const MAX_BLOCK: u64 = 64 << 10;

struct Block {
    ptr: *mut u8,
    layout: Layout,
    tag: u64,
}

/// Byte `i` of a block tagged `tag`.
fn pattern(tag: u64, i: usize) -> u8 {
    (mix(tag ^ i as u64) >> 56) as u8
}

fn fill(b: &Block) {
    for i in 0..b.layout.size() {
        // SAFETY: `ptr` came from `alloc` with this layout and is live.
        unsafe { b.ptr.add(i).write(pattern(b.tag, i)) };
    }
}

/// First byte that lost its pattern: (offset, expected, found).
fn check(b: &Block) -> Option<(usize, u8, u8)> {
    (0..b.layout.size()).find_map(|i| {
        // SAFETY: as in `fill`.
        let got = unsafe { b.ptr.add(i).read() };
        let want = pattern(b.tag, i);
        (got != want).then_some((i, want, got))
    })
}

fn release(b: Block) {
    // SAFETY: `ptr` was allocated with exactly `layout` and is freed once.
    unsafe { dealloc(b.ptr, b.layout) };
}

pub fn stress(ctx: &mut Ctx) -> Verdict {
    let free_before = heap::free_bytes();
    let mut rng = SplitMix64::fork(ctx.plan.seed, "heap.stress");
    let mut slots: [Option<Block>; SLOTS] = [const { None }; SLOTS];
    let (mut allocs, mut frees, mut bytes) = (0u64, 0u64, 0u64);
    for round in 0..ctx.plan.iters as u64 {
        let slot = rng.below(SLOTS as u64) as usize;
        if let Some(b) = slots[slot].take() {
            if let Some((off, want, got)) = check(&b) {
                return fail!(
                    "round {round}: block of {} bytes at {:p} byte {off}: expected {want:#04x}, found {got:#04x}",
                    b.layout.size(),
                    b.ptr
                );
            }
            release(b);
            frees += 1;
            continue;
        }
        let size = 1 + rng.below(MAX_BLOCK) as usize;
        let align = 1usize << rng.below(13); // 1 .. 4096
        let Ok(layout) = Layout::from_size_align(size, align) else {
            return fail!("round {round}: invalid layout size={size} align={align}");
        };
        // SAFETY: `layout` has non-zero size.
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            return fail!(
                "round {round}: alloc({size}, align {align}) failed with {} bytes free",
                heap::free_bytes()
            );
        }
        if !(ptr as usize).is_multiple_of(align) {
            return fail!("round {round}: alloc(align {align}) returned misaligned {ptr:p}");
        }
        let b = Block {
            ptr,
            layout,
            tag: rng.next_u64(),
        };
        fill(&b);
        slots[slot] = Some(b);
        allocs += 1;
        bytes += size as u64;
    }
    for b in slots.iter_mut().filter_map(Option::take) {
        if let Some((off, want, got)) = check(&b) {
            return fail!(
                "final check: block at {:p} byte {off}: expected {want:#04x}, found {got:#04x}",
                b.ptr
            );
        }
        release(b);
    }
    let free_after = heap::free_bytes();
    tdiag!(
        "{allocs} allocs ({} KiB), {frees} frees over {} rounds",
        bytes >> 10,
        ctx.plan.iters
    );
    if free_after != free_before {
        return fail!(
            "leak: {free_before} bytes free before, {free_after} after freeing every block"
        );
    }
    Verdict::Pass
}

pub fn large(ctx: &mut Ctx) -> Verdict {
    let free_before = heap::free_bytes();
    let size = free_before / 2;
    tdiag!(
        "heap {} KiB, {} KiB free; allocating {} KiB",
        heap::size_bytes() >> 10,
        free_before >> 10,
        size >> 10
    );
    let Ok(layout) = Layout::from_size_align(size, 4096) else {
        return fail!("invalid layout of {size} bytes");
    };
    if size == 0 {
        return fail!("heap has no free bytes");
    }
    // SAFETY: non-zero size.
    let ptr = unsafe { alloc(layout) };
    if ptr.is_null() {
        return fail!("alloc of half the free heap ({size} bytes) failed");
    }
    let b = Block {
        ptr,
        layout,
        tag: ctx.plan.seed,
    };
    fill(&b);
    let bad = check(&b);
    release(b);
    if let Some((off, want, got)) = bad {
        return fail!("byte {off} of {size}: expected {want:#04x}, found {got:#04x}");
    }
    if heap::free_bytes() != free_before {
        return fail!(
            "leak: {free_before} bytes free before, {} after",
            heap::free_bytes()
        );
    }
    Verdict::Pass
}
