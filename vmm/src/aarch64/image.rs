//! The arm64 Image (Documentation/arch/arm64/booting.rst): linux-loader's PE
//! loader copies it to `base + text_offset`; the header's `image_size` (which
//! includes bss and the guest's boot stack, unlike the file) says how much
//! RAM it needs from there, which linux-loader does not check.

use super::memory::GuestRam;
use crate::error::VmmError;
use linux_loader::loader::{KernelLoader, pe::PE};
use std::path::Path;
use vm_memory::GuestAddress;

/// Header offsets (all little-endian).
const TEXT_OFFSET: usize = 8;
const IMAGE_SIZE: usize = 16;
const MAGIC: usize = 56;
const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Where the Image starts in guest memory: the entry point.
    pub entry: u64,
    /// First byte past what the running Image may use (image_size).
    pub end: u64,
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// (text_offset, image_size) from the header; image_size 0 means a pre-3.17
/// kernel: text_offset 0x80000 and an unknown size (the file's).
pub fn header(image: &[u8]) -> Result<(u64, u64), String> {
    if image.get(MAGIC..MAGIC + 4) != Some(ARM64_MAGIC.as_slice()) {
        return Err("no arm64 Image magic (\"ARM\\x64\" at offset 56)".into());
    }
    let text = le64(image, TEXT_OFFSET).ok_or("header truncated")?;
    let size = le64(image, IMAGE_SIZE).ok_or("header truncated")?;
    Ok(if size == 0 {
        (0x80000, image.len() as u64)
    } else {
        (text, size.max(image.len() as u64))
    })
}

/// Loads the Image at `base` (2 MiB aligned) + text_offset; it must end
/// below `limit`.
pub fn load(
    path: &Path,
    image: &[u8],
    ram: &GuestRam,
    base: u64,
    limit: u64,
) -> Result<Loaded, VmmError> {
    let err = |detail: String| VmmError::Load {
        path: path.to_path_buf(),
        detail,
    };
    let (text_offset, size) = header(image).map_err(err)?;
    let entry = base + text_offset;
    let end = entry
        .checked_add(size)
        .ok_or_else(|| err(format!("image_size {size:#x} overflows")))?;
    if end > limit {
        return Err(VmmError::Config(format!(
            "the Image needs {entry:#x}..{end:#x} but RAM for it ends at {limit:#x}: give the guest more memory"
        )));
    }
    let mut reader = std::io::Cursor::new(image);
    let loaded = PE::load(&ram.mem, Some(GuestAddress(base)), &mut reader, None)
        .map_err(|e| err(e.to_string()))?;
    if loaded.kernel_load.0 != entry {
        return Err(err(format!(
            "linux-loader put the Image at {:#x}, the header says {entry:#x}",
            loaded.kernel_load.0
        )));
    }
    Ok(Loaded { entry, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(text: u64, size: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        v[TEXT_OFFSET..TEXT_OFFSET + 8].copy_from_slice(&text.to_le_bytes());
        v[IMAGE_SIZE..IMAGE_SIZE + 8].copy_from_slice(&size.to_le_bytes());
        v[MAGIC..MAGIC + 4].copy_from_slice(ARM64_MAGIC);
        v
    }

    #[test]
    fn header_fields_and_the_old_kernel_default() {
        assert_eq!(header(&img(0, 0x9a000, 0x1000)), Ok((0, 0x9a000)));
        assert_eq!(header(&img(0x1234, 0, 0x1000)), Ok((0x80000, 0x1000)));
        assert!(header(&[0u8; 64]).is_err());
        assert!(header(&[0u8; 8]).is_err());
    }
}
