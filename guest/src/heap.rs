//! The kernel heap: one block of boot-reported free RAM handed to
//! linked_list_allocator.

use crate::arch::{Current, Platform};
use crate::boot::BootInfo;
use convtest_proto::range::{MemRange, RangeList, align_up};
use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Heap size: enough for the suite's bookkeeping and the heap tests.
pub const HEAP_BYTES: u64 = 8 << 20;

#[derive(Debug)]
pub enum HeapError {
    /// No free RAM range can hold `HEAP_BYTES`.
    NoRoom { largest: u64 },
}

impl core::fmt::Display for HeapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeapError::NoRoom { largest } => {
                write!(
                    f,
                    "no free RAM range holds {HEAP_BYTES} bytes (largest is {largest})"
                )
            }
        }
    }
}

/// Carves the heap from the lowest free range that fits and returns its
/// physical extent (the caller removes it from what tests may touch).
pub fn init(boot: &BootInfo, free: &RangeList) -> Result<MemRange, HeapError> {
    let fits = free.iter().find(|r| {
        let start = align_up(r.start, 4096);
        start < r.end && r.end - start >= HEAP_BYTES
    });
    let Some(r) = fits else {
        return Err(HeapError::NoRoom {
            largest: free.largest().map_or(0, |r| r.len()),
        });
    };
    let heap = MemRange::from_len(align_up(r.start, 4096), HEAP_BYTES);
    Current::first_touch(heap);
    // SAFETY: `heap` lies in RAM the boot path reported free and reserved
    // nothing in; it is mapped at `phys_offset`, and init runs once, before
    // any allocation.
    unsafe {
        HEAP.lock()
            .init(boot.phys_to_virt(heap.start), HEAP_BYTES as usize)
    };
    Ok(heap)
}

/// Bytes currently free in the heap (for leak checks in the heap tests).
pub fn free_bytes() -> usize {
    HEAP.lock().free()
}

pub fn size_bytes() -> usize {
    HEAP.lock().size()
}
