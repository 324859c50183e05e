//! Debian's TDVF (`OVMF.inteltdx.ms.fd`) is one image, code and variable
//! store together, with Secure Boot on and Microsoft's keys enrolled: it
//! refuses convtest's unsigned UEFI image ("Access Denied -- rejected
//! probably by Secure Boot", measured under TCG). Deleting the platform key
//! (PK) puts the firmware in setup mode, where nothing is verified; with it
//! deleted the same firmware boots the image (measured under TCG, docs/tee.md).
//!
//! The store is edk2's authenticated variable store at the start of the
//! image (edk2 `MdeModulePkg/Include/Guid/VariableFormat.h`,
//! `PiFirmwareVolume.h`): a firmware volume header (`_FVH` at byte 40, its
//! length at byte 48), the variable store header (28 bytes, the
//! authenticated-variable GUID first), then variables, each a 60-byte
//! header (StartId 0x55AA, State, …, NameSize, DataSize, VendorGuid), the
//! UTF-16 name and the data, 4-byte aligned. Deleting a variable is what the
//! firmware does itself: clear the State bit VAR_DELETED (State & 0xFD).

use std::fmt;

const FVH_SIGNATURE: &[u8; 4] = b"_FVH";
/// gEfiAuthenticatedVariableGuid AAF32C78-947B-439A-A180-2E144EC37792, as stored.
const AUTH_VARIABLE_GUID: [u8; 16] = [
    0x78, 0x2c, 0xf3, 0xaa, 0x7b, 0x94, 0x9a, 0x43, 0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92,
];
/// EFI_GLOBAL_VARIABLE 8BE4DF61-93CA-11D2-AA0D-00E098032B8C, as stored.
const GLOBAL_VARIABLE_GUID: [u8; 16] = [
    0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c,
];
const STORE_HEADER: usize = 28;
const VAR_HEADER: usize = 60;
const START_ID: u16 = 0x55aa;
/// A live variable: VAR_ADDED (0x3F) with VAR_DELETED (bit 1) still set.
const VAR_ADDED: u8 = 0x3f;
const VAR_DELETED_BIT: u8 = 0x02;

#[derive(Debug, PartialEq, Eq)]
pub enum VarstoreError {
    /// No firmware volume / authenticated variable store where edk2 puts it.
    NoStore(&'static str),
    /// A variable header runs past the store.
    Truncated { at: usize },
}

impl fmt::Display for VarstoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarstoreError::NoStore(why) => write!(f, "no edk2 variable store: {why}"),
            VarstoreError::Truncated { at } => {
                write!(
                    f,
                    "edk2 variable store: variable at {at:#x} runs past the store"
                )
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One live variable of the store: where its header is, its name, its GUID.
#[derive(Debug, PartialEq, Eq)]
pub struct Variable {
    pub offset: usize,
    pub name: String,
    pub guid: [u8; 16],
}

/// The variable store's (start, end) in `image`.
fn store(image: &[u8]) -> Result<(usize, usize), VarstoreError> {
    if image.get(40..44) != Some(&FVH_SIGNATURE[..]) {
        return Err(VarstoreError::NoStore("no _FVH signature at byte 40"));
    }
    let fv_header = usize::from(u16_at(image, 48).ok_or(VarstoreError::NoStore("short image"))?);
    let start = fv_header;
    if image.get(start..start + 16) != Some(&AUTH_VARIABLE_GUID[..]) {
        return Err(VarstoreError::NoStore(
            "the store after the volume header is not an authenticated variable store",
        ));
    }
    let size = u32_at(image, start + 16).ok_or(VarstoreError::NoStore("short image"))? as usize;
    let end = start.saturating_add(size).min(image.len());
    Ok((start + STORE_HEADER, end))
}

/// The live variables, in store order.
pub fn variables(image: &[u8]) -> Result<Vec<Variable>, VarstoreError> {
    let (mut at, end) = store(image)?;
    let mut out = Vec::new();
    while at + VAR_HEADER <= end && u16_at(image, at) == Some(START_ID) {
        let state = image[at + 2];
        let name_size = u32_at(image, at + 36).ok_or(VarstoreError::Truncated { at })? as usize;
        let data_size = u32_at(image, at + 40).ok_or(VarstoreError::Truncated { at })? as usize;
        let next = at
            .checked_add(VAR_HEADER + name_size)
            .and_then(|n| n.checked_add(data_size))
            .filter(|&n| n <= end)
            .ok_or(VarstoreError::Truncated { at })?;
        if state == VAR_ADDED || state == VAR_ADDED & 0xfe {
            let name_bytes = &image[at + VAR_HEADER..at + VAR_HEADER + name_size];
            let units: Vec<u16> = name_bytes
                .as_chunks::<2>()
                .0
                .iter()
                .map(|&c| u16::from_le_bytes(c))
                .take_while(|&u| u != 0)
                .collect();
            let mut guid = [0u8; 16];
            guid.copy_from_slice(&image[at + 44..at + 60]);
            out.push(Variable {
                offset: at,
                name: String::from_utf16_lossy(&units),
                guid,
            });
        }
        at = next.next_multiple_of(4);
    }
    Ok(out)
}

/// Marks every live `PK` (EFI global variable) deleted; returns how many.
pub fn delete_pk(image: &mut [u8]) -> Result<usize, VarstoreError> {
    let pks: Vec<usize> = variables(image)?
        .into_iter()
        .filter(|v| v.name == "PK" && v.guid == GLOBAL_VARIABLE_GUID)
        .map(|v| v.offset)
        .collect();
    for &at in &pks {
        image[at + 2] &= !VAR_DELETED_BIT;
    }
    Ok(pks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with `vars` (name, guid, data), laid out as edk2 does.
    fn image(vars: &[(&str, [u8; 16], &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; 0x48];
        b[40..44].copy_from_slice(FVH_SIGNATURE);
        b[48..50].copy_from_slice(&0x48u16.to_le_bytes());
        b.extend_from_slice(&AUTH_VARIABLE_GUID);
        b.extend_from_slice(&0x4000u32.to_le_bytes());
        b.extend_from_slice(&[0x5a, 0xfe, 0, 0, 0, 0, 0, 0]);
        for (name, guid, data) in vars {
            let name: Vec<u8> = name
                .encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect();
            let mut h = vec![0u8; VAR_HEADER];
            h[0..2].copy_from_slice(&START_ID.to_le_bytes());
            h[2] = VAR_ADDED;
            h[36..40].copy_from_slice(&(name.len() as u32).to_le_bytes());
            h[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
            h[44..60].copy_from_slice(guid);
            b.extend_from_slice(&h);
            b.extend_from_slice(&name);
            b.extend_from_slice(data);
            while !b.len().is_multiple_of(4) {
                b.push(0xff);
            }
        }
        b.resize(0x48 + 0x4000, 0xff);
        b
    }

    #[test]
    fn deletes_the_platform_key_only() {
        let other_guid = [7u8; 16];
        let mut img = image(&[
            ("KEK", GLOBAL_VARIABLE_GUID, b"kek"),
            ("PK", GLOBAL_VARIABLE_GUID, b"a key of odd len"),
            ("PK", other_guid, b"x"),
            ("db", [9u8; 16], b"db"),
        ]);
        let names = |img: &[u8]| -> Vec<String> {
            variables(img)
                .expect("store")
                .into_iter()
                .map(|v| v.name)
                .collect()
        };
        assert_eq!(names(&img), ["KEK", "PK", "PK", "db"]);
        assert_eq!(delete_pk(&mut img), Ok(1));
        assert_eq!(
            names(&img),
            ["KEK", "PK", "db"],
            "the other vendor's PK stays"
        );
        assert_eq!(delete_pk(&mut img), Ok(0), "idempotent");
    }

    #[test]
    fn refuses_what_is_not_a_store() {
        assert!(matches!(
            variables(&[0u8; 128]),
            Err(VarstoreError::NoStore(_))
        ));
        let mut img = image(&[("PK", GLOBAL_VARIABLE_GUID, b"k")]);
        // DataSize beyond the store.
        let at = 0x48 + STORE_HEADER;
        img[at + 40..at + 44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(variables(&img), Err(VarstoreError::Truncated { at }));
    }

    /// Debian's real TDVF, when a run has fetched it into the cache.
    #[test]
    fn debian_tdvf_has_one_pk_to_delete() {
        let Some(path) = super::super::firmware::cached(super::super::Tee::Tdx) else {
            return;
        };
        let mut img = std::fs::read(&path).expect("read the cached TDVF");
        let names: Vec<String> = variables(&img)
            .expect("store")
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert!(names.iter().any(|n| n == "PK"), "{names:?}");
        assert_eq!(delete_pk(&mut img), Ok(1));
    }
}
