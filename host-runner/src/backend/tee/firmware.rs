//! The firmware a confidential guest boots from: Debian's `ovmf-inteltdx`
//! (TDVF) and `ovmf-amdsev` (OVMF-AmdSev), architecture `all`, from sid —
//! the only suite that has them. Fetched with `apt-get download` through a
//! private apt state in the cache (never the system's sources) and unpacked
//! with `dpkg-deb`, never installed. The TDVF gets a copy with its platform
//! key deleted (varstore.rs) so that it boots convtest's unsigned image.

use super::Tee;
use super::varstore;
use crate::backend::nested::Suite;
use crate::backend::nested::apt::{self, Apt};
use crate::backend::nested::cache::{self, Cache};
use crate::error::Error;
use std::path::{Path, PathBuf};

pub const SID: Suite = Suite {
    name: "sid",
    url: "http://deb.debian.org/debian",
};

/// The Debian package and the file in it.
pub fn package(tee: Tee) -> (&'static str, &'static str) {
    match tee {
        Tee::Tdx => ("ovmf-inteltdx", "usr/share/ovmf/OVMF.inteltdx.ms.fd"),
        Tee::Snp => ("ovmf-amdsev", "usr/share/ovmf/OVMF.amdsev.fd"),
    }
}

/// The TDVF copy without a platform key.
const TDVF_NO_PK: &str = "OVMF.inteltdx.nopk.fd";

fn unpacked(cache: &Cache, tee: Tee) -> Result<PathBuf, Error> {
    Ok(cache.dir("tee-firmware")?.join(package(tee).0))
}

/// The file as Debian ships it, when a run already unpacked it.
pub fn cached(tee: Tee) -> Option<PathBuf> {
    let cache = Cache::locate().ok()?;
    let file = unpacked(&cache, tee).ok()?.join(package(tee).1);
    file.is_file().then_some(file)
}

/// The firmware `-bios` loads for `tee`, fetched and prepared once.
pub fn ensure(tee: Tee, quiet: bool) -> Result<PathBuf, Error> {
    let cache = Cache::locate()?;
    let dir = unpacked(&cache, tee)?;
    let (name, member) = package(tee);
    let original = dir.join(member);
    if !original.is_file() {
        let _lock = cache.lock("tee-firmware")?;
        if !original.is_file() {
            let apt = Apt::for_suites(&cache, quiet, vec![SID], &["amd64"]);
            let deb = apt.deb(name)?;
            let tmp = cache.temp_dir("tee-firmware-")?;
            apt::extract(&deb, tmp.path(), &[format!("./{member}")], quiet)?;
            cache::publish(tmp.path(), &dir)?;
        }
    }
    match tee {
        Tee::Snp => Ok(original),
        Tee::Tdx => without_pk(&cache, &original, &dir.join(TDVF_NO_PK)),
    }
}

/// `to`: `from` with its platform key deleted (made once).
fn without_pk(cache: &Cache, from: &Path, to: &Path) -> Result<PathBuf, Error> {
    if to.is_file() {
        return Ok(to.to_path_buf());
    }
    let mut image = std::fs::read(from).map_err(|e| Error::io("reading", from, e))?;
    match varstore::delete_pk(&mut image) {
        Ok(0) => {
            return Err(Error::UnusableBuild {
                what: format!(
                    "{}: no platform key (PK) in its variable store; expected Debian's Secure Boot TDVF",
                    from.display()
                ),
            });
        }
        Ok(_) => {}
        Err(e) => {
            return Err(Error::UnusableBuild {
                what: format!("{}: {e}", from.display()),
            });
        }
    }
    let tmp = cache.temp_dir("tdvf-")?;
    let file = tmp.path().join(TDVF_NO_PK);
    std::fs::write(&file, &image).map_err(|e| Error::io("writing", &file, e))?;
    cache::publish(&file, to)?;
    Ok(to.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_and_suite() {
        assert_eq!(package(Tee::Tdx).0, "ovmf-inteltdx");
        assert_eq!(package(Tee::Snp).1, "usr/share/ovmf/OVMF.amdsev.fd");
        assert_eq!(SID.name, "sid");
    }

    /// The real download, once, into the cache: both packages unpack, and
    /// the TDVF copy has lost its platform key.
    #[test]
    #[ignore = "downloads Debian sid's package lists and two firmware packages"]
    fn fetches_debian_firmware() {
        for tee in [Tee::Tdx, Tee::Snp] {
            let f = ensure(tee, false).expect("fetched");
            assert!(f.is_file(), "{}", f.display());
            let img = std::fs::read(&f).expect("read");
            assert_eq!(img.len(), 4 << 20, "{}", f.display());
            if tee == Tee::Tdx {
                let names: Vec<String> = varstore::variables(&img)
                    .expect("store")
                    .into_iter()
                    .map(|v| v.name)
                    .collect();
                assert!(!names.iter().any(|n| n == "PK"), "{names:?}");
                assert!(names.iter().any(|n| n == "KEK"), "{names:?}");
            }
        }
    }

    #[test]
    fn a_firmware_without_pk_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().join("c")).expect("cache");
        let from = tmp.path().join("not-a-tdvf.fd");
        std::fs::write(&from, vec![0u8; 4096]).expect("write");
        let e = without_pk(&cache, &from, &tmp.path().join("out.fd")).expect_err("no store");
        assert!(e.to_string().contains("no edk2 variable store"), "{e}");
    }
}
