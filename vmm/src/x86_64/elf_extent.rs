//! How far the guest ELF reaches in guest-physical memory, .bss included.
//! Needed before guest RAM exists (the sw-protected boot slot ends there);
//! linux-loader reports the end only after loading, and skips segments with
//! no file bytes (a .bss-only segment), so the program headers are read here.

const PT_LOAD: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Lowest and highest physical address of the PT_LOAD segments.
pub fn pvh_extent(elf: &[u8]) -> Result<Extent, String> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a little-endian ELF64 file".into());
    }
    let short = || "truncated ELF header".to_string();
    let phoff = u64_at(elf, 0x20).ok_or_else(short)? as usize;
    let phentsize = usize::from(u16_at(elf, 0x36).ok_or_else(short)?);
    let phnum = usize::from(u16_at(elf, 0x38).ok_or_else(short)?);
    let mut extent: Option<Extent> = None;
    for i in 0..phnum {
        let o = phoff
            .checked_add(i.checked_mul(phentsize).ok_or_else(short)?)
            .ok_or_else(short)?;
        let bad = || format!("program header {i} is truncated");
        if u32_at(elf, o).ok_or_else(bad)? != PT_LOAD {
            continue;
        }
        let paddr = u64_at(elf, o + 0x18).ok_or_else(bad)?;
        let memsz = u64_at(elf, o + 0x28).ok_or_else(bad)?;
        let end = paddr
            .checked_add(memsz)
            .ok_or_else(|| format!("segment {i} wraps: {paddr:#x}+{memsz:#x}"))?;
        extent = Some(match extent {
            None => Extent { start: paddr, end },
            Some(e) => Extent {
                start: e.start.min(paddr),
                end: e.end.max(end),
            },
        });
    }
    extent.ok_or_else(|| "no PT_LOAD segment".into())
}

/// The bytes of each PT_LOAD segment past its file bytes (`.bss`), as
/// `(paddr, len)`: linux-loader writes only `p_filesz`, so a reload into
/// memory a previous boot used must zero these itself (a fresh VM's RAM
/// is zero already). Headers `pvh_extent` accepted; anything odd is skipped.
pub fn bss(elf: &[u8]) -> Vec<(u64, u64)> {
    load_segments(elf)
        .filter_map(|s| {
            let start = s.paddr.checked_add(s.filesz)?;
            (s.memsz > s.filesz).then_some((start, s.memsz - s.filesz))
        })
        .collect()
}

/// Where the file byte at `offset` lands in guest-physical memory (None:
/// no PT_LOAD segment's file bytes hold it).
pub fn paddr_of(elf: &[u8], offset: u64) -> Option<u64> {
    load_segments(elf).find_map(|s| {
        let into = offset.checked_sub(s.offset)?;
        (into < s.filesz)
            .then(|| s.paddr.checked_add(into))
            .flatten()
    })
}

/// One PT_LOAD program header's fields.
struct Segment {
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

/// The PT_LOAD headers that parse; anything odd is skipped.
fn load_segments(elf: &[u8]) -> impl Iterator<Item = Segment> + '_ {
    let (phoff, phentsize, phnum) = match (u64_at(elf, 0x20), u16_at(elf, 0x36), u16_at(elf, 0x38))
    {
        (Some(o), Some(e), Some(n)) => (o as usize, usize::from(e), usize::from(n)),
        _ => (0, 0, 0),
    };
    (0..phnum).filter_map(move |i| {
        let o = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(elf, o)? != PT_LOAD {
            return None;
        }
        Some(Segment {
            offset: u64_at(elf, o + 0x08)?,
            paddr: u64_at(elf, o + 0x18)?,
            filesz: u64_at(elf, o + 0x20)?,
            memsz: u64_at(elf, o + 0x28)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(segments: &[(u32, u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * segments.len()];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, &(ty, paddr, memsz)) in segments.iter().enumerate() {
            let o = 64 + 56 * i;
            b[o..o + 4].copy_from_slice(&ty.to_le_bytes());
            b[o + 0x18..o + 0x20].copy_from_slice(&paddr.to_le_bytes());
            b[o + 0x28..o + 0x30].copy_from_slice(&memsz.to_le_bytes());
        }
        b
    }

    #[test]
    fn spans_every_load_segment_including_bss() {
        let e = elf(&[
            (1, 0x10_0000, 0x5000),
            (4, 0, 0x1000_0000),
            (1, 0x10_6000, 0x90_0000),
        ]);
        assert_eq!(
            pvh_extent(&e),
            Ok(Extent {
                start: 0x10_0000,
                end: 0xa0_6000
            })
        );
    }

    #[test]
    fn bss_is_what_the_file_does_not_hold() {
        let mut e = elf(&[(1, 0x10_0000, 0x5000), (1, 0x10_6000, 0x2000), (4, 0, 9)]);
        // First segment: 0x1000 file bytes; second: all file bytes.
        e[64 + 0x20..64 + 0x28].copy_from_slice(&0x1000u64.to_le_bytes());
        e[120 + 0x20..120 + 0x28].copy_from_slice(&0x2000u64.to_le_bytes());
        assert_eq!(bss(&e), [(0x10_1000, 0x4000)]);
        assert!(bss(b"MZ").is_empty());
    }

    #[test]
    fn a_file_offset_maps_into_its_segment_only() {
        let mut e = elf(&[(1, 0x10_0000, 0x3000), (1, 0x20_0000, 0x1000)]);
        // First segment: file bytes [0x1000, 0x3000); second: [0x4000, 0x4800).
        for (i, off, filesz) in [(0, 0x1000u64, 0x2000u64), (1, 0x4000, 0x800)] {
            let o = 64 + 56 * i;
            e[o + 0x08..o + 0x10].copy_from_slice(&off.to_le_bytes());
            e[o + 0x20..o + 0x28].copy_from_slice(&filesz.to_le_bytes());
        }
        assert_eq!(paddr_of(&e, 0x1010), Some(0x10_0010));
        assert_eq!(paddr_of(&e, 0x4100), Some(0x20_0100));
        assert_eq!(paddr_of(&e, 0x3000), None);
        assert_eq!(paddr_of(&e, 0x4800), None);
        assert_eq!(paddr_of(b"MZ", 0), None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(pvh_extent(b"MZ").is_err());
        assert!(pvh_extent(&elf(&[])).is_err());
        let mut t = elf(&[(1, 0x10_0000, 0x5000)]);
        t.truncate(80);
        assert!(pvh_extent(&t).unwrap_err().contains("truncated"));
        assert!(
            pvh_extent(&elf(&[(1, u64::MAX, 2)]))
                .unwrap_err()
                .contains("wraps")
        );
    }
}
