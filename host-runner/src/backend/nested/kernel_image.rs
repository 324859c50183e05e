//! `--l1-kernel` checked before anything is built or booted. QEMU's
//! `-kernel` takes files it cannot boot without a word (an empty file gave
//! a silent console until the whole timeout), so the file must look like
//! what the L1's arch boots: x86_64 a bzImage (boot protocol header), arm64
//! an Image (its header magic), or what QEMU's arm64 loader unpacks itself
//! (a gzip'd Image, an EFI zboot image). Only the first bytes are read.

use crate::error::Error;
use convtest_proto::arch::Arch;
use std::io::Read;
use std::path::Path;

/// Bytes read from the start: the x86 setup header and the version string
/// it points at lie well inside this.
const HEAD_BYTES: u64 = 64 * 1024;

/// Larger than this cannot be a kernel that fits the L1's 2 GiB next to
/// its initramfs.
const MAX_KERNEL_BYTES: u64 = 1 << 30;

// x86 boot protocol (Documentation/arch/x86/boot.rst), offsets in the file.
const SETUP_SECTS: usize = 0x1f1;
const SYSSIZE: usize = 0x1f4;
const BOOT_FLAG: usize = 0x1fe;
const HDRS: usize = 0x202;
const PROTOCOL: usize = 0x206;
const KERNEL_VERSION: usize = 0x20e;
const LOADFLAGS: usize = 0x211;
/// End of the header fields read here.
const X86_HEADER_END: usize = 0x212;
/// loadflags bit 0: the protected-mode code loads high, i.e. a bzImage.
const LOADED_HIGH: u8 = 0x1;

// arm64 Image header (Documentation/arch/arm64/booting.rst).
const ARM64_MAGIC_AT: usize = 56;
const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";
const ARM64_HEADER_END: usize = 64;

/// What a file's first bytes say it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Empty,
    /// A bzImage; `version` is the string its header points at
    /// (`6.1.0-57-amd64 (debian-kernel@…) #1 SMP …`), first word only.
    BzImage {
        protocol: u16,
        version: Option<String>,
    },
    /// The x86 header is there but the file is shorter than it says.
    TruncatedBzImage {
        expected: u64,
    },
    /// An x86 boot sector that is no bzImage (zImage, or protocol < 2.00).
    OldX86Image,
    Arm64Image,
    /// gzip data: QEMU's arm64 loader inflates it and checks the Image.
    Gzip,
    /// EFI zboot (`MZ` … `zimg`): QEMU's arm64 loader unpacks it.
    Zboot,
    /// An ELF file (a vmlinux, or convtest's guest).
    Elf,
    Unknown,
}

impl Found {
    /// Whether QEMU's `-kernel` boots this for `arch`.
    fn boots_on(&self, arch: Arch) -> bool {
        match arch {
            Arch::X86_64 => matches!(self, Found::BzImage { .. }),
            Arch::Aarch64 => matches!(self, Found::Arm64Image | Found::Gzip | Found::Zboot),
        }
    }

    fn describe(&self) -> String {
        match self {
            Found::Empty => "an empty file".into(),
            Found::BzImage { protocol, version } => format!(
                "an x86 bzImage (boot protocol {}.{:02}{})",
                protocol >> 8,
                protocol & 0xff,
                version
                    .as_deref()
                    .map(|v| format!(", version {v}"))
                    .unwrap_or_default()
            ),
            Found::TruncatedBzImage { expected } => {
                format!("a truncated x86 bzImage (its header says at least {expected} bytes)")
            }
            Found::OldX86Image => {
                "an x86 boot image that is no bzImage (zImage or boot protocol < 2.00)".into()
            }
            Found::Arm64Image => "an arm64 Image".into(),
            Found::Gzip => "gzip data".into(),
            Found::Zboot => "an arm64 EFI zboot image".into(),
            Found::Elf => "an ELF file (a vmlinux?)".into(),
            Found::Unknown => "no kernel format convtest knows".into(),
        }
    }
}

fn expected(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => {
            "--arch x86_64 boots a bzImage (boot sector 55 aa at 0x1fe, \"HdrS\" at 0x202, \
             loadflags LOADED_HIGH), e.g. /boot/vmlinuz-*"
        }
        Arch::Aarch64 => {
            "--arch aarch64 boots an arm64 Image (\"ARM\\x64\" at offset 56), a gzip'd Image or \
             an EFI zboot image, e.g. /boot/vmlinuz-* of an arm64 distribution kernel"
        }
    }
}

/// Reads a little-endian integer of `N` bytes at `at`, if the head has it.
fn le<const N: usize>(head: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; N] = head.get(at..at + N)?.try_into().ok()?;
    Some(
        bytes
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    )
}

/// What `head` (the file's first bytes) and the file's `size` say it is.
pub fn identify(head: &[u8], size: u64) -> Found {
    if size == 0 || head.is_empty() {
        return Found::Empty;
    }
    if head.starts_with(b"\x7fELF") {
        return Found::Elf;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Found::Gzip;
    }
    if head.get(ARM64_MAGIC_AT..ARM64_HEADER_END - 4) == Some(&ARM64_MAGIC[..]) {
        return Found::Arm64Image;
    }
    if head.starts_with(b"MZ") && head.get(4..8) == Some(b"zimg") {
        return Found::Zboot;
    }
    if head.len() >= X86_HEADER_END && head.get(BOOT_FLAG..BOOT_FLAG + 2) == Some(&[0x55, 0xaa]) {
        return identify_x86(head, size);
    }
    Found::Unknown
}

fn identify_x86(head: &[u8], size: u64) -> Found {
    if head.get(HDRS..HDRS + 4) != Some(b"HdrS") {
        return Found::OldX86Image;
    }
    let protocol = le::<2>(head, PROTOCOL).unwrap_or(0) as u16;
    let loadflags = head.get(LOADFLAGS).copied().unwrap_or(0);
    if protocol < 0x200 || loadflags & LOADED_HIGH == 0 {
        return Found::OldX86Image;
    }
    // 0 setup sectors means 4 (boot.rst); the boot sector comes first.
    let sects = match head.get(SETUP_SECTS).copied().unwrap_or(0) {
        0 => 4,
        n => u64::from(n),
    };
    let sys_paragraphs = le::<4>(head, SYSSIZE).unwrap_or(0);
    let expected = (sects + 1) * 512 + sys_paragraphs * 16;
    if size < expected || sys_paragraphs == 0 {
        return Found::TruncatedBzImage { expected };
    }
    Found::BzImage {
        protocol,
        version: x86_version(head),
    }
}

/// The first word of the version string the header points at (offset
/// +0x200), if it lies inside `head`.
fn x86_version(head: &[u8]) -> Option<String> {
    let ptr = le::<2>(head, KERNEL_VERSION)?;
    if ptr == 0 {
        return None;
    }
    let start = usize::try_from(ptr).ok()?.checked_add(0x200)?;
    let rest = head.get(start..)?;
    let text = &rest[..rest.iter().position(|&b| b == 0)?.min(256)];
    let word = std::str::from_utf8(text).ok()?.split_whitespace().next()?;
    Some(word.to_string())
}

/// `--l1-kernel` as the L1 of `arch` boots it; a usage error says what
/// the file is (size, first bytes, what they look like) and what was wanted.
pub fn check(path: &Path, arch: Arch) -> Result<Found, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("--l1-kernel", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("--l1-kernel", path, e))?;
    if !meta.is_file() {
        return Err(Error::Usage(format!(
            "--l1-kernel {}: not a regular file; {}",
            path.display(),
            expected(arch)
        )));
    }
    let mut head = Vec::new();
    file.take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| Error::io("reading --l1-kernel", path, e))?;
    let size = meta.len();
    let found = identify(&head, size);
    if found.boots_on(arch) && size <= MAX_KERNEL_BYTES {
        return Ok(found);
    }
    let what = if size > MAX_KERNEL_BYTES {
        format!("{}, too large for the L1's RAM", found.describe())
    } else {
        found.describe()
    };
    Err(Error::Usage(format!(
        "--l1-kernel {}: found {what}, {size} bytes{}; {}",
        path.display(),
        first_bytes(&head),
        expected(arch)
    )))
}

fn first_bytes(head: &[u8]) -> String {
    if head.is_empty() {
        return String::new();
    }
    let hex: Vec<String> = head.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(" starting {}", hex.join(" "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal bzImage: boot sector + setup header + `payload` bytes of
    /// protected-mode code, with a version string in the setup area.
    pub(crate) fn bzimage(version: &str, payload: usize) -> Vec<u8> {
        let sects = 1u8;
        let mut img = vec![0u8; (usize::from(sects) + 1) * 512 + payload];
        img[SETUP_SECTS] = sects;
        let paragraphs = (payload / 16) as u32;
        img[SYSSIZE..SYSSIZE + 4].copy_from_slice(&paragraphs.to_le_bytes());
        img[BOOT_FLAG..BOOT_FLAG + 2].copy_from_slice(&[0x55, 0xaa]);
        img[HDRS..HDRS + 4].copy_from_slice(b"HdrS");
        img[PROTOCOL..PROTOCOL + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        img[LOADFLAGS] = LOADED_HIGH;
        // The string lives at 0x300 in the setup sector: pointer 0x100.
        img[KERNEL_VERSION..KERNEL_VERSION + 2].copy_from_slice(&0x100u16.to_le_bytes());
        let text = format!("{version} (builder@host) #1 SMP\0");
        img[0x300..0x300 + text.len()].copy_from_slice(text.as_bytes());
        img
    }

    fn arm64_image() -> Vec<u8> {
        let mut img = b"MZ\x40\xfa".to_vec();
        img.resize(4096, 0);
        img[ARM64_MAGIC_AT..ARM64_MAGIC_AT + 4].copy_from_slice(ARM64_MAGIC);
        img
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    #[test]
    fn bzimage_with_its_version() {
        let img = bzimage("6.1.0-57-amd64", 4096);
        assert_eq!(
            identify(&img, img.len() as u64),
            Found::BzImage {
                protocol: 0x020f,
                version: Some("6.1.0-57-amd64".into())
            }
        );
    }

    #[test]
    fn truncated_and_old_x86_images() {
        let img = bzimage("x", 4096);
        assert_eq!(
            identify(&img[..2000], 2000),
            Found::TruncatedBzImage {
                expected: 1024 + 4096
            }
        );
        let mut zimage = img.clone();
        zimage[LOADFLAGS] = 0;
        assert_eq!(identify(&zimage, zimage.len() as u64), Found::OldX86Image);
        let mut no_hdrs = img.clone();
        no_hdrs[HDRS] = b'X';
        assert_eq!(identify(&no_hdrs, no_hdrs.len() as u64), Found::OldX86Image);
        // A version pointer off the end is no version, not a panic.
        let mut wild = img;
        wild[KERNEL_VERSION..KERNEL_VERSION + 2].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(matches!(
            identify(&wild, wild.len() as u64),
            Found::BzImage { version: None, .. }
        ));
    }

    #[test]
    fn arm64_formats() {
        let img = arm64_image();
        assert_eq!(identify(&img, 4096), Found::Arm64Image);
        assert_eq!(identify(&[0x1f, 0x8b, 8, 0], 4), Found::Gzip);
        let mut zboot = b"MZ\0\0zimg".to_vec();
        zboot.resize(512, 0);
        assert_eq!(identify(&zboot, 512), Found::Zboot);
        assert_eq!(identify(b"\x7fELF\x02\x01", 6), Found::Elf);
        assert_eq!(identify(b"hello", 5), Found::Unknown);
        assert_eq!(identify(b"", 0), Found::Empty);
        // Short files are read as far as they go.
        assert_eq!(identify(&img[..60], 60), Found::Arm64Image);
        assert_eq!(identify(&img[..59], 59), Found::Unknown);
    }

    #[test]
    fn empty_file_is_a_usage_error_naming_what_was_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let empty = write(tmp.path(), "empty", b"");
        let err = check(&empty, Arch::X86_64).expect_err("empty");
        let msg = err.to_string();
        assert!(matches!(err, Error::Usage(_)));
        assert!(msg.contains(&empty.display().to_string()), "{msg}");
        assert!(msg.contains("found an empty file, 0 bytes;"), "{msg}");
        assert!(msg.contains("bzImage") && msg.contains("HdrS"), "{msg}");
        let arm = check(&empty, Arch::Aarch64).expect_err("empty").to_string();
        assert!(arm.contains("ARM\\x64"), "{arm}");
    }

    #[test]
    fn each_arch_takes_its_own_format() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bz = write(tmp.path(), "bz", &bzimage("6.12.117+deb12-amd64", 8192));
        let arm = write(tmp.path(), "Image", &arm64_image());
        assert!(matches!(
            check(&bz, Arch::X86_64),
            Ok(Found::BzImage { .. })
        ));
        assert_eq!(check(&arm, Arch::Aarch64).ok(), Some(Found::Arm64Image));
        let msg = check(&arm, Arch::X86_64)
            .expect_err("arm on x86")
            .to_string();
        assert!(
            msg.contains("found an arm64 Image, 4096 bytes starting 4d 5a 40 fa 00"),
            "{msg}"
        );
        let msg = check(&bz, Arch::Aarch64)
            .expect_err("bz on arm")
            .to_string();
        assert!(msg.contains("an x86 bzImage"), "{msg}");
        let garbage = write(tmp.path(), "junk", b"#!/bin/sh\necho hi\n");
        let msg = check(&garbage, Arch::X86_64).expect_err("junk").to_string();
        assert!(
            msg.contains("23 21 2f 62") && msg.contains("no kernel format"),
            "{msg}"
        );
    }

    #[test]
    fn missing_path_and_directory_are_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            check(&tmp.path().join("nope"), Arch::X86_64),
            Err(Error::Io { .. })
        ));
        let msg = check(tmp.path(), Arch::X86_64)
            .expect_err("dir")
            .to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
    }
}
