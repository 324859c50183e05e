//! The x86 L1 kernel unpacked for PVH boot. A Debian bzImage carries its
//! vmlinux compressed (7.3 and 6.12: zstd; 6.1: xz); booted as a bzImage,
//! the kernel's own decompressor runs it under TCG first — about 1.2 s
//! for 7.3's 14 MB payload (measured: first guest line 4.3 s instead of
//! 5.6 s). Debian builds with CONFIG_PVH, so the vmlinux inside has the
//! Xen PVH entry note and QEMU's `-kernel` loads the ELF directly. The host
//! unpacks it once into the cache, next to the bzImage; a bzImage whose
//! payload or ELF is anything else boots as before.

use super::cache::{self, Cache};
use crate::error::Error;
use object::Endianness;
use object::read::elf::{ElfFile64, ProgramHeader};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The unpacked kernel's file name, beside `vmlinuz`.
pub const FILE: &str = "vmlinux.pvh";

// x86 boot protocol (Documentation/arch/x86/boot.rst), offsets in the file.
const SETUP_SECTS: usize = 0x1f1;
const HDRS: usize = 0x202;
const PROTOCOL: usize = 0x206;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
/// payload_offset/length exist from boot protocol 2.08.
const PROTOCOL_WITH_PAYLOAD: u16 = 0x208;

const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
/// XEN_ELFNOTE_PHYS32_ENTRY (include/xen/interface/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// e_machine of x86-64 (the ELF spec's EM_X86_64).
const EM_X86_64: u16 = 62;

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// The compressed vmlinux a bzImage carries (its boot header says where).
pub fn payload(bz: &[u8]) -> Option<&[u8]> {
    if bz.get(HDRS..HDRS + 4) != Some(b"HdrS") || u16_at(bz, PROTOCOL)? < PROTOCOL_WITH_PAYLOAD {
        return None;
    }
    let sects = match *bz.get(SETUP_SECTS)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (sects + 1) * 512 + u32_at(bz, PAYLOAD_OFFSET)? as usize;
    let len = u32_at(bz, PAYLOAD_LENGTH)? as usize;
    bz.get(start..start.checked_add(len)?)
}

/// The payload decompressed, when it is zstd or xz.
pub fn decompress(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    if payload.starts_with(ZSTD_MAGIC) {
        // The kernel appends the size after the frame; the decoder stops
        // at the frame's end.
        let mut dec = ruzstd::decoding::StreamingDecoder::new(payload).ok()?;
        dec.read_to_end(&mut out).ok()?;
    } else if payload.starts_with(XZ_MAGIC) {
        lzma_rs::xz_decompress(&mut std::io::Cursor::new(payload), &mut out).ok()?;
    } else {
        return None;
    }
    Some(out)
}

/// Whether `elf` is an x86-64 ELF with a PVH entry point note.
pub fn has_pvh_entry(elf: &[u8]) -> bool {
    let Ok(file) = ElfFile64::<Endianness>::parse(elf) else {
        return false;
    };
    let e = file.endian();
    if file.elf_header().e_machine.get(e).0 != EM_X86_64 {
        return false;
    }
    file.elf_program_headers().iter().any(|ph| {
        let Ok(Some(mut notes)) = ph.notes(e, elf) else {
            return false;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" && note.n_type(e).0 == XEN_ELFNOTE_PHYS32_ENTRY {
                return true;
            }
        }
        false
    })
}

/// The kernel QEMU should boot for the bzImage `vmlinuz` kept in `dir`:
/// the unpacked PVH ELF (made once, under the cache lock `lock`), or the
/// bzImage itself when it has none.
pub fn kernel_for(
    cache: &Cache,
    lock: &str,
    dir: &Path,
    vmlinuz: &Path,
    quiet: bool,
) -> Result<PathBuf, Error> {
    let pvh = dir.join(FILE);
    if pvh.is_file() {
        return Ok(pvh);
    }
    let _lock = cache.lock(lock)?;
    if pvh.is_file() {
        return Ok(pvh);
    }
    let bz = std::fs::read(vmlinuz).map_err(|e| Error::io("reading", vmlinuz, e))?;
    let Some(elf) = payload(&bz)
        .and_then(decompress)
        .filter(|e| has_pvh_entry(e))
    else {
        return Ok(vmlinuz.to_path_buf());
    };
    if !quiet {
        eprintln!(
            "convtest: unpacked the L1 kernel for PVH boot (once) into {}",
            pvh.display()
        );
    }
    let tmp = cache.temp_dir("pvh-")?;
    let staged = tmp.path().join(FILE);
    std::fs::write(&staged, &elf).map_err(|e| Error::io("writing", &staged, e))?;
    cache::publish(&staged, &pvh)?;
    Ok(pvh)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EM_AARCH64: u16 = 183;
    const PT_NOTE: u32 = 4;

    /// A bzImage header around `payload`: setup_sects 1 (two sectors
    /// before the protected-mode part), protocol 2.15.
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[SETUP_SECTS] = 1;
        b[HDRS..HDRS + 4].copy_from_slice(b"HdrS");
        b[PROTOCOL..PROTOCOL + 2].copy_from_slice(&0x20fu16.to_le_bytes());
        b[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&16u32.to_le_bytes());
        b[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0xaa; 16]);
        b.extend_from_slice(payload);
        b.extend_from_slice(b"trailing setup data");
        b
    }

    #[test]
    fn the_payload_is_where_the_header_says() {
        let b = bzimage(b"\x28\xb5\x2f\xfdframe");
        assert_eq!(payload(&b), Some(&b"\x28\xb5\x2f\xfdframe"[..]));
        let mut old = b.clone();
        old[PROTOCOL..PROTOCOL + 2].copy_from_slice(&0x206u16.to_le_bytes());
        assert_eq!(payload(&old), None, "no payload fields before 2.08");
        assert_eq!(payload(b"not a kernel"), None);
        let mut cut = b.clone();
        cut.truncate(1040);
        assert_eq!(payload(&cut), None, "truncated");
    }

    #[test]
    fn xz_payloads_unpack_and_others_are_left_alone() {
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &b"vmlinux bytes"[..], &mut xz).unwrap();
        assert_eq!(decompress(&xz).as_deref(), Some(&b"vmlinux bytes"[..]));
        assert_eq!(
            decompress(b"\x1f\x8b\x08gzip"),
            None,
            "gzip: boot the bzImage"
        );
        assert_eq!(decompress(b"\x28\xb5\x2f\xfd broken"), None);
    }

    /// A minimal ELF64 x86-64 with one PT_NOTE holding `note` ("Xen", type).
    fn elf_with_note(machine: u16, name: &[u8], n_type: u32) -> Vec<u8> {
        let mut desc = Vec::new();
        desc.extend_from_slice(&((name.len() + 1) as u32).to_le_bytes());
        desc.extend_from_slice(&8u32.to_le_bytes());
        desc.extend_from_slice(&n_type.to_le_bytes());
        desc.extend_from_slice(name);
        desc.push(0);
        while desc.len() % 4 != 0 {
            desc.push(0);
        }
        desc.extend_from_slice(&0x0100_0000u64.to_le_bytes());
        let mut e = vec![0u8; 64 + 56];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2; // 64-bit
        e[5] = 1; // little-endian
        e[6] = 1;
        e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        e[18..20].copy_from_slice(&machine.to_le_bytes());
        e[20..24].copy_from_slice(&1u32.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        e[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        e[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        e[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        e[ph..ph + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        e[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        e[ph + 32..ph + 40].copy_from_slice(&(desc.len() as u64).to_le_bytes()); // p_filesz
        e[ph + 48..ph + 56].copy_from_slice(&4u64.to_le_bytes()); // p_align
        e.extend_from_slice(&desc);
        e
    }

    #[test]
    fn only_an_x86_elf_with_the_pvh_note_boots_as_pvh() {
        assert!(has_pvh_entry(&elf_with_note(EM_X86_64, b"Xen", 18)));
        assert!(!has_pvh_entry(&elf_with_note(EM_X86_64, b"Xen", 17)));
        assert!(!has_pvh_entry(&elf_with_note(EM_X86_64, b"Linux", 18)));
        assert!(!has_pvh_entry(&elf_with_note(EM_AARCH64, b"Xen", 18)));
        assert!(!has_pvh_entry(b"\x7fELF too short"));
    }
}
