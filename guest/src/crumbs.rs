//! The guest's half of `convtest_proto::crumbs`: one table in the image's
//! .data (the magic makes it initialised data, so it is in the loaded bytes
//! where the VMM looks for it) that CPUs write with plain atomic stores. A
//! VMM reads it only after a vCPU stopped in a way the guest could not
//! report; the guest never reads it back, so nothing here may fail or wait.

use convtest_proto::crumbs::{
    CPU_BASE, CPU_SLOTS, Doing, EXC_BASE, EXC_COUNT, EXC_SLOTS, EXC_WORDS, HEADER_WORDS, LAYOUT,
    MAGIC, WORDS,
};
use core::sync::atomic::{AtomicU64, Ordering};

#[repr(C)]
struct Table {
    magic: [u8; 16],
    layout: u64,
    words: [AtomicU64; WORDS - HEADER_WORDS],
}

/// `#[used]`: kept even if the linker saw no reader (the reader is the VMM).
#[used]
static TABLE: Table = Table {
    magic: MAGIC,
    layout: LAYOUT,
    words: [const { AtomicU64::new(0) }; WORDS - HEADER_WORDS],
};

fn word(i: usize) -> &'static AtomicU64 {
    &TABLE.words[i - HEADER_WORDS]
}

/// CPU `cpu` now does `d`.
pub fn doing(cpu: usize, d: Doing) {
    if cpu >= CPU_SLOTS {
        return;
    }
    word(CPU_BASE + 2 * cpu).store(d.encode(), Ordering::Relaxed);
    word(CPU_BASE + 2 * cpu + 1).fetch_add(1, Ordering::Relaxed);
}

/// An exception handler's first act: what the CPU reported, before the
/// handler touches the console (which may be what faults next).
pub fn exception(vector: u64, pc: u64, sp: u64, addr: u64, extra: u64) {
    let n = word(EXC_COUNT).fetch_add(1, Ordering::Relaxed) as usize;
    if n >= EXC_SLOTS {
        return;
    }
    let base = EXC_BASE + n * EXC_WORDS;
    for (i, v) in [vector, pc, sp, addr, extra].into_iter().enumerate() {
        word(base + i).store(v, Ordering::Relaxed);
    }
}
