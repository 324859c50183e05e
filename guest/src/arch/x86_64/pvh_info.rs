//! `hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h) to
//! [`BootInfo`]: RAM from the memory map, the plan from the command line,
//! and everything the loader placed in RAM marked reserved.

use crate::boot::{BootInfo, CpuList};
use convtest_proto::range::{MemRange, RangeError, RangeList};
use core::fmt;

const MAGIC: u32 = 0x336e_c578;
/// `memmap_paddr` / `memmap_entries` exist from version 1 on.
const MEMMAP_VERSION: u32 = 1;
const E820_RAM: u32 = 1;
/// The loader NUL-terminates the command line; a longer one is taken as corrupt.
const CMDLINE_MAX: usize = 4096;
/// BIOS data, option ROMs and the loader's own structures live here.
const LOW_MEMORY: MemRange = MemRange::new(0, 0x10_0000);

#[repr(C)]
#[derive(Clone, Copy)]
struct StartInfo {
    magic: u32,
    version: u32,
    _flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    _rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    _reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    _reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    _cmdline_paddr: u64,
    _reserved: u64,
}

#[derive(Debug)]
pub enum PvhError {
    BadMagic {
        at: u64,
        found: u32,
    },
    NoMemmap {
        version: u32,
        paddr: u64,
        entries: u32,
    },
    NoRam {
        entries: u32,
    },
    CmdlineUnterminated {
        paddr: u64,
    },
    CmdlineNotUtf8 {
        paddr: u64,
        valid_up_to: usize,
    },
    Ranges(RangeError),
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PvhError::BadMagic { at, found } => {
                write!(
                    f,
                    "hvm_start_info at {at:#x} has magic {found:#x}, expected {MAGIC:#x}"
                )
            }
            PvhError::NoMemmap {
                version,
                paddr,
                entries,
            } => write!(
                f,
                "hvm_start_info version {version} carries no memory map (memmap_paddr={paddr:#x} entries={entries}); need version >= {MEMMAP_VERSION} with a map"
            ),
            PvhError::NoRam { entries } => write!(
                f,
                "PVH memory map ({entries} entries) lists no RAM (type 1)"
            ),
            PvhError::CmdlineUnterminated { paddr } => {
                write!(
                    f,
                    "command line at {paddr:#x} has no NUL within {CMDLINE_MAX} bytes"
                )
            }
            PvhError::CmdlineNotUtf8 { paddr, valid_up_to } => {
                write!(
                    f,
                    "command line at {paddr:#x} is not UTF-8 (valid up to byte {valid_up_to})"
                )
            }
            PvhError::Ranges(e) => write!(f, "boot memory ranges: {e}"),
        }
    }
}

impl From<RangeError> for PvhError {
    fn from(e: RangeError) -> Self {
        PvhError::Ranges(e)
    }
}

/// Reads a loader structure through the identity map.
///
/// # Safety
/// `pa .. pa + size_of::<T>()` must be mapped RAM the loader filled.
unsafe fn read_phys<T: Copy>(pa: u64) -> T {
    // SAFETY: per the contract above; unaligned-safe.
    unsafe { core::ptr::read_unaligned(pa as *const T) }
}

/// Whole pages around `[start, start + len)`.
fn pages(start: u64, len: u64) -> MemRange {
    MemRange::from_len(start, len).align_outward(4096)
}

pub fn boot_info(start_info: u64, kernel: MemRange, limit: u64) -> Result<BootInfo, PvhError> {
    // SAFETY: the PVH ABI passes the physical address of a loader-written
    // hvm_start_info in ebx; the first 4 GiB are identity-mapped. The magic
    // is checked before any other field is trusted.
    let si: StartInfo = unsafe { read_phys(start_info) };
    if si.magic != MAGIC {
        return Err(PvhError::BadMagic {
            at: start_info,
            found: si.magic,
        });
    }
    if si.version < MEMMAP_VERSION || si.memmap_paddr == 0 || si.memmap_entries == 0 {
        return Err(PvhError::NoMemmap {
            version: si.version,
            paddr: si.memmap_paddr,
            entries: si.memmap_entries,
        });
    }

    let mut ram = RangeList::new();
    for i in 0..u64::from(si.memmap_entries) {
        // SAFETY: version >= 1 and a non-zero memmap_paddr: the loader wrote
        // memmap_entries entries there.
        let e: MemmapEntry =
            unsafe { read_phys(si.memmap_paddr + i * size_of::<MemmapEntry>() as u64) };
        let r = MemRange::from_len(e.addr, e.size);
        if e.kind == E820_RAM && r.start < limit {
            ram.insert_merged(MemRange::new(r.start, r.end.min(limit)))?;
        }
    }
    if ram.is_empty() {
        return Err(PvhError::NoRam {
            entries: si.memmap_entries,
        });
    }

    let (cmdline, cmdline_bytes) = read_cmdline(si.cmdline_paddr)?;

    let mut reserved = RangeList::new();
    reserved.insert_merged(pages(kernel.start, kernel.len()))?;
    reserved.insert_merged(pages(start_info, size_of::<StartInfo>() as u64))?;
    reserved.insert_merged(pages(
        si.memmap_paddr,
        u64::from(si.memmap_entries) * size_of::<MemmapEntry>() as u64,
    ))?;
    if si.cmdline_paddr != 0 {
        reserved.insert_merged(pages(si.cmdline_paddr, cmdline_bytes))?;
    }
    if si.nr_modules != 0 && si.modlist_paddr != 0 {
        let modlist = pages(
            si.modlist_paddr,
            u64::from(si.nr_modules) * size_of::<ModlistEntry>() as u64,
        );
        reserved.insert_merged(modlist)?;
        for i in 0..u64::from(si.nr_modules) {
            // SAFETY: nr_modules entries at modlist_paddr, per the loader.
            let m: ModlistEntry =
                unsafe { read_phys(si.modlist_paddr + i * size_of::<ModlistEntry>() as u64) };
            reserved.insert_merged(pages(m.paddr, m.size))?;
        }
    }
    // The SIPI trampoline page comes from low RAM no loader structure above
    // uses (the firmware's own areas are not e820 RAM, and nothing calls it
    // after the handover); the blanket low-memory reservation then keeps it,
    // like the rest of low memory, away from the heap and the tests.
    super::smp::reserve_trampoline(&ram, &mut reserved)?;
    reserved.insert_merged(LOW_MEMORY)?;

    Ok(BootInfo {
        entry: "pvh",
        cpu_mode: "long-mode",
        ram,
        reserved,
        kernel,
        cmdline,
        phys_offset: 0,
        console: super::serial::CONSOLE,
        cpus: CpuList::EMPTY,
        unaccepted: 0,
    })
}

/// The NUL-terminated command line, trimmed ("" when the loader gave none),
/// and the bytes it occupies including the NUL.
fn read_cmdline(paddr: u64) -> Result<(&'static str, u64), PvhError> {
    if paddr == 0 {
        return Ok(("", 0));
    }
    // SAFETY: the loader placed the command line at `paddr` in identity-mapped
    // low RAM; we read at most CMDLINE_MAX bytes and stop at the first NUL.
    let window = unsafe { core::slice::from_raw_parts(paddr as *const u8, CMDLINE_MAX) };
    let len = window
        .iter()
        .position(|&b| b == 0)
        .ok_or(PvhError::CmdlineUnterminated { paddr })?;
    let text = core::str::from_utf8(&window[..len]).map_err(|e| PvhError::CmdlineNotUtf8 {
        paddr,
        valid_up_to: e.valid_up_to(),
    })?;
    Ok((text.trim(), len as u64 + 1))
}
