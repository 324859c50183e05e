//! Removes FDT_NOP tokens from the blob's structure block, in place.
//!
//! Loaders delete nodes and properties by overwriting them with NOPs (QEMU
//! does so to the /memory nodes of a `-dtb` it patches; U-Boot's fixups do
//! too). The `fdt` 0.1 crate stops at a NOP between sibling nodes or
//! properties, so everything after one (e.g. /chosen) would look missing.

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

#[derive(Clone, Copy, Debug)]
pub enum NopError {
    NotADtb,
    /// Older than v17: no `size_dt_struct` to rewrite; left as it is.
    Version(u32),
    /// A token or its payload runs past the structure block.
    Truncated {
        offset: usize,
    },
    UnknownToken {
        offset: usize,
        token: u32,
    },
}

impl core::fmt::Display for NopError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NopError::NotADtb => f.write_str("no FDT magic"),
            NopError::Version(v) => write!(f, "FDT version {v} < 17"),
            NopError::Truncated { offset } => {
                write!(f, "structure block truncated at offset {offset:#x}")
            }
            NopError::UnknownToken { offset, token } => {
                write!(
                    f,
                    "unknown structure token {token:#x} at offset {offset:#x}"
                )
            }
        }
    }
}

/// Compacts the structure block at `addr`; returns how many bytes it shrank.
///
/// # Safety
/// `addr` must point at a readable and writable DTB that nothing else uses
/// while this runs.
pub unsafe fn remove(addr: u64) -> Result<usize, NopError> {
    let base = addr as *mut u8;
    let be32 = |off: usize| {
        // SAFETY: the header is 40 bytes at `addr` (caller's contract).
        u32::from_be_bytes(unsafe { base.add(off).cast::<[u8; 4]>().read_unaligned() })
    };
    if be32(0) != FDT_MAGIC {
        return Err(NopError::NotADtb);
    }
    let total = be32(4) as usize;
    let version = be32(20);
    if version < 17 {
        return Err(NopError::Version(version));
    }
    let start = be32(8) as usize;
    let end = start.saturating_add(be32(36) as usize).min(total);
    // Check the whole block before moving anything, so a malformed blob is
    // reported as it came rather than half rewritten.
    // SAFETY: `base` and the block bounds as the caller guarantees.
    unsafe { walk(base, start, end, false) }?;
    // SAFETY: as above; the walk succeeded, so every token fits.
    let kept = unsafe { walk(base, start, end, true) }?;
    let removed = end - start - kept;
    if removed > 0 {
        // SAFETY: header field `size_dt_struct` at offset 36 (v17+).
        unsafe {
            base.add(36)
                .cast::<[u8; 4]>()
                .write_unaligned((kept as u32).to_be_bytes())
        };
    }
    Ok(removed)
}

/// Steps through the tokens in `[start, end)`; with `compact`, moves every
/// non-NOP token down over the NOPs before it. Returns the bytes kept.
///
/// # Safety
/// `[start, end)` must be readable (and writable with `compact`) at `base`.
unsafe fn walk(base: *mut u8, start: usize, end: usize, compact: bool) -> Result<usize, NopError> {
    let be32 = |off: usize| {
        // SAFETY: callers read only offsets below `end`, inside the block.
        u32::from_be_bytes(unsafe { base.add(off).cast::<[u8; 4]>().read_unaligned() })
    };
    let (mut r, mut w) = (start, start);
    while r + 4 <= end {
        let token = be32(r);
        let len = match token {
            FDT_BEGIN_NODE => {
                let mut n = r + 4;
                // SAFETY: `n < end` keeps every read inside the block.
                while n < end && unsafe { base.add(n).read() } != 0 {
                    n += 1;
                }
                align4(n + 1 - r)
            }
            FDT_PROP if r + 12 <= end => 12 + align4(be32(r + 4) as usize),
            FDT_PROP => return Err(NopError::Truncated { offset: r }),
            FDT_END_NODE | FDT_NOP | FDT_END => 4,
            other => {
                return Err(NopError::UnknownToken {
                    offset: r,
                    token: other,
                });
            }
        };
        if r + len > end {
            return Err(NopError::Truncated { offset: r });
        }
        if token != FDT_NOP {
            if compact && w != r {
                // SAFETY: both ranges lie in the block; `w < r`, and `copy`
                // handles the overlap.
                unsafe { core::ptr::copy(base.add(r), base.add(w), len) };
            }
            w += len;
        }
        r += len;
        if token == FDT_END {
            return Ok(w - start);
        }
    }
    Err(NopError::Truncated { offset: r })
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}
