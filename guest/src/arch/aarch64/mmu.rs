//! The EL1 identity map. With the MMU off every data access is Device
//! memory, where unaligned accesses fault and nothing is cached; tests and
//! the heap need Normal memory. RAM is mapped Normal write-back cacheable,
//! the rest of the first 512 GiB Device-nGnRE (UART, GIC, …), everything
//! above stays unmapped so a stray pointer faults.
//!
//! 4 KiB granule, 48-bit VA (T0SZ = 16, walks start at level 0), 1 GiB and
//! 2 MiB blocks where alignment allows, 4 KiB pages at unaligned edges.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, MAIR_EL1, ReadWriteable, Readable, SCTLR_EL1, TCR_EL1, TTBR0_EL1, Writeable,
};
use convtest_proto::range::{MemRange, RangeList};
use core::arch::asm;
use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The translation granule, and so the kernel's page size.
pub const PAGE_SIZE: u64 = 4096;
const ENTRIES: usize = 512;
/// Tables for the whole map. Each RAM range not 1 GiB aligned costs an L2
/// table per partly covered GiB, plus an L3 per unaligned 2 MiB edge.
const POOL_TABLES: usize = 64;

// Descriptor bits (stage 1, VMSAv8-64).
const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_NORMAL: u64 = 0 << 2; // MAIR index 0
const ATTR_DEVICE: u64 = 1 << 2; // MAIR index 1
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

const NORMAL: u64 = ATTR_NORMAL | SH_INNER | AF | UXN;
const DEVICE: u64 = ATTR_DEVICE | AF | PXN | UXN;

/// MAIR: index 0 = Normal inner/outer write-back RW-allocate, 1 = Device-nGnRE.
const MAIR: u64 = 0xff | (0x04 << 8);

#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

struct Pool(UnsafeCell<[Table; POOL_TABLES]>);
// SAFETY: written only by `enable`, once, on the single boot CPU; read by
// `is_mapped` afterwards.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new(
    [const { Table([0; ENTRIES]) }; POOL_TABLES],
));
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Physical address of the level-0 table once the MMU is on.
static ROOT: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub enum MmuError {
    /// The table pool ran out.
    OutOfTables,
    /// A RAM range lies above what the CPU can address.
    BeyondPaRange(MemRange),
    AlreadyOn,
}

impl fmt::Display for MmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmuError::OutOfTables => write!(f, "all {POOL_TABLES} page tables used"),
            MmuError::BeyondPaRange(r) => {
                write!(f, "RAM {r} lies beyond the CPU's physical address range")
            }
            MmuError::AlreadyOn => f.write_str("enable() called twice"),
        }
    }
}

struct Builder<'a> {
    tables: &'a mut [Table; POOL_TABLES],
    used: usize,
}

impl Builder<'_> {
    fn alloc(&mut self) -> Result<usize, MmuError> {
        let i = self.used;
        if i == POOL_TABLES {
            return Err(MmuError::OutOfTables);
        }
        self.used += 1;
        Ok(i)
    }

    fn addr(&self, i: usize) -> u64 {
        (&raw const self.tables[i]) as u64
    }

    fn index_of(&self, addr: u64) -> usize {
        (addr - self.addr(0)) as usize / core::mem::size_of::<Table>()
    }

    /// Maps `[start, end)` (4 KiB aligned) below table `t` at `level`.
    fn map(
        &mut self,
        t: usize,
        level: u32,
        start: u64,
        end: u64,
        attrs: u64,
    ) -> Result<(), MmuError> {
        let shift = 39 - 9 * level;
        let size = 1u64 << shift;
        let mut va = start;
        while va < end {
            let base = va & !(size - 1);
            let chunk_end = end.min(base + size);
            let slot = ((va >> shift) as usize) % ENTRIES;
            let entry = self.tables[t].0[slot];
            let whole = va == base && chunk_end == base + size;
            if level == 3 {
                self.tables[t].0[slot] = base | attrs | VALID | TABLE_OR_PAGE;
            } else if level >= 1 && whole && entry & VALID == 0 {
                self.tables[t].0[slot] = base | attrs | VALID;
            } else {
                let next = if entry & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE {
                    self.index_of(entry & ADDR_MASK)
                } else {
                    let n = self.alloc()?;
                    self.tables[t].0[slot] = self.addr(n) | VALID | TABLE_OR_PAGE;
                    n
                };
                self.map(next, level + 1, va, chunk_end, attrs)?;
            }
            va = chunk_end;
        }
        Ok(())
    }

    /// Turns every still-invalid entry under `t` into Device memory.
    fn fill_device(&mut self, t: usize, level: u32, base: u64) {
        let shift = 39 - 9 * level;
        for slot in 0..ENTRIES {
            let va = base + ((slot as u64) << shift);
            let entry = self.tables[t].0[slot];
            if entry & VALID == 0 {
                let kind = if level == 3 {
                    VALID | TABLE_OR_PAGE
                } else {
                    VALID
                };
                self.tables[t].0[slot] = va | DEVICE | kind;
            } else if level < 3 && entry & TABLE_OR_PAGE != 0 {
                let next = self.index_of(entry & ADDR_MASK);
                self.fill_device(next, level + 1, va);
            }
        }
    }
}

/// Builds the identity map for `ram` and turns the MMU and caches on.
/// `written` (the image, the DTB) is invalidated from the data cache first:
/// it was written with the cache off and must not be shadowed by stale
/// lines once it is on.
pub fn enable(ram: &RangeList, written: &[MemRange]) -> Result<(), MmuError> {
    // Load + store, not swap: exclusives need the cacheable memory we are
    // about to create, and the boot CPU is the only one running.
    if ENABLED.load(Ordering::SeqCst) {
        return Err(MmuError::AlreadyOn);
    }
    ENABLED.store(true, Ordering::SeqCst);
    let pa_bits = match ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange) {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        _ => 48,
    };
    let ips = match pa_bits {
        32 => 0,
        36 => 1,
        40 => 2,
        42 => 3,
        44 => 4,
        _ => 5,
    };
    // SAFETY: `ENABLED` guarantees this is the only reference ever made to
    // the pool mutably, and the MMU is still off so no walker reads it.
    let tables = unsafe { &mut *POOL.0.get() };
    let mut b = Builder { tables, used: 0 };
    let root = b.alloc()?;
    for r in ram.iter() {
        if r.end > (1u64 << pa_bits) {
            return Err(MmuError::BeyondPaRange(*r));
        }
        b.map(root, 0, r.start, r.end, NORMAL)?;
    }
    // Slot 0 of level 0 covers the first 512 GiB, the Device window: make
    // sure it has an L1 table to fill.
    let l1 = if b.tables[root].0[0] & VALID != 0 {
        b.index_of(b.tables[root].0[0] & ADDR_MASK)
    } else {
        let n = b.alloc()?;
        b.tables[root].0[0] = b.addr(n) | VALID | TABLE_OR_PAGE;
        n
    };
    b.fill_device(l1, 1, 0);
    let root_pa = b.addr(root);

    for r in written {
        invalidate_dcache(*r);
    }
    MAIR_EL1.set(MAIR);
    TCR_EL1.write(
        TCR_EL1::T0SZ.val(16)
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::SH0::Inner
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::EPD1::DisableTTBR1Walks
            + TCR_EL1::IPS.val(ips),
    );
    TTBR0_EL1.set_baddr(root_pa);
    // SAFETY: drops stale TLB entries before the first walk; no memory effect.
    unsafe {
        asm!(
            "dsb ish",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    };
    SCTLR_EL1.modify(SCTLR_EL1::M::Enable + SCTLR_EL1::C::Cacheable + SCTLR_EL1::I::Cacheable);
    barrier::isb(barrier::SY);
    ROOT.store(root_pa, Ordering::SeqCst);
    Ok(())
}

/// Discards data-cache lines over `r` (to the point of coherency). Only
/// valid before the cache is enabled: nothing in `r` can be dirty in it.
fn invalidate_dcache(r: MemRange) {
    let ctr: u64;
    // SAFETY: reads the cache type register.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    let mut a = r.start & !(line - 1);
    while a < r.end {
        // SAFETY: cache maintenance on our own image; with the cache off no
        // line holds newer data than memory, so nothing is lost.
        unsafe { asm!("dc ivac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: orders the maintenance before what follows.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Whether `va` translates in our map (false while the MMU is off).
pub fn is_mapped(va: u64) -> bool {
    let mut table = ROOT.load(Ordering::SeqCst);
    if table == 0 || va >> 48 != 0 {
        return false;
    }
    for level in 0..4 {
        let slot = ((va >> (39 - 9 * level)) as usize) % ENTRIES;
        // SAFETY: `table` is one of the pool's tables, identity-mapped.
        let entry = unsafe { (table as *const u64).add(slot).read_volatile() };
        if entry & VALID == 0 {
            return false;
        }
        if level == 3 || entry & TABLE_OR_PAGE == 0 {
            return true;
        }
        table = entry & ADDR_MASK;
    }
    false
}
