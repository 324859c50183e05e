//! The L1's KVM modules: decompressed on the host (finit_module of a .ko.xz
//! costs ~1 s more per module under TCG) and put in dependency order, read
//! from each module's own `depends=` (Debian ships no modules.dep).

use crate::error::Error;
use std::path::{Path, PathBuf};

/// Load order when dependencies leave a choice (and the order Debian's
/// amd64 modules need: kvm-amd depends on kvm and ccp, kvm on irqbypass).
pub const PREFERRED: [&str; 5] = ["irqbypass", "kvm", "ccp", "kvm-amd", "kvm-intel"];

/// One module file ready for the initramfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// `kvm-amd`, from the file name (Debian names files like the module).
    pub name: String,
    /// An uncompressed .ko.
    pub path: PathBuf,
}

/// The module name of `kvm-amd.ko.xz` / `kvm.ko`; None for other files.
pub fn name_of(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".ko.xz")
        .or_else(|| name.strip_suffix(".ko"))?;
    Some(stem.to_string())
}

/// Writes the plain .ko of `src` (a .ko or .ko.xz) to `dest`.
pub fn decompress_to(src: &Path, dest: &Path) -> Result<(), Error> {
    if src.to_string_lossy().ends_with(".xz") {
        let file = std::fs::File::open(src).map_err(|e| Error::io("opening", src, e))?;
        let mut input = std::io::BufReader::new(file);
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut input, &mut out).map_err(|e| {
            Error::io(
                "decompressing",
                src,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            )
        })?;
        std::fs::write(dest, out).map_err(|e| Error::io("writing", dest, e))
    } else {
        std::fs::copy(src, dest)
            .map(drop)
            .map_err(|e| Error::io("copying", src, e))
    }
}

/// One `key=value` of a module's .modinfo (a NUL-separated string table).
fn modinfo<'a>(ko: &'a [u8], key: &str) -> Option<&'a [u8]> {
    ko.split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(key.as_bytes())?.strip_prefix(b"="))
}

/// The kernel release a module was built for: the first word of its
/// `vermagic=` (`6.1.0-57-amd64 SMP preempt mod_unload modversions`).
pub fn release(ko: &[u8]) -> Option<String> {
    let magic = String::from_utf8_lossy(modinfo(ko, "vermagic")?).into_owned();
    magic.split_whitespace().next().map(str::to_string)
}

/// The `depends=` list in a module's .modinfo.
pub fn depends(ko: &[u8]) -> Vec<String> {
    modinfo(ko, "depends")
        .map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                // modinfo spells kvm_amd what the file calls kvm-amd.
                .map(|d| d.replace('_', "-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Orders modules so each comes after the ones it depends on (dependencies
/// not in the set are assumed built in); ties follow [`PREFERRED`], then the
/// name. A cycle is an error naming the modules left.
pub fn order(mut mods: Vec<(Module, Vec<String>)>) -> Result<Vec<Module>, Error> {
    let rank = |name: &str| {
        PREFERRED
            .iter()
            .position(|p| *p == name)
            .unwrap_or(PREFERRED.len())
    };
    mods.sort_by(|(a, _), (b, _)| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    let names: Vec<String> = mods.iter().map(|(m, _)| m.name.clone()).collect();
    let mut done: Vec<Module> = Vec::new();
    while !mods.is_empty() {
        let ready = mods.iter().position(|(_, deps)| {
            deps.iter()
                .all(|d| !names.contains(d) || done.iter().any(|m| &m.name == d))
        });
        match ready {
            Some(i) => done.push(mods.remove(i).0),
            None => {
                let left: Vec<&str> = mods.iter().map(|(m, _)| m.name.as_str()).collect();
                return Err(Error::UnusableModules {
                    what: format!(
                        "kernel modules depend on each other in a cycle: {}",
                        left.join(", ")
                    ),
                });
            }
        }
    }
    Ok(done)
}

/// Decompresses every module file in `files` into `into` and orders them.
pub fn prepare(files: &[PathBuf], into: &Path) -> Result<Vec<Module>, Error> {
    let mut mods = Vec::new();
    for src in files {
        let Some(name) = name_of(src) else { continue };
        let dest = into.join(format!("{name}.ko"));
        decompress_to(src, &dest)?;
        mods.push(read(&dest)?);
    }
    order(mods)
}

/// Checks that the modules, as a set, load into the kernel `release`
/// (when known): each was built for it (the kernel refuses others with
/// ENOEXEC, after a whole L1 boot) and, with `closed`, each depends only on
/// modules of the set (a distribution kernel's table must list them all).
pub fn verify(mods: &[Module], release: Option<&str>, closed: bool) -> Result<(), Error> {
    for m in mods {
        let bytes = std::fs::read(&m.path).map_err(|e| Error::io("reading", &m.path, e))?;
        let built_for = self::release(&bytes);
        if let Some(want) = release
            && built_for.as_deref() != Some(want)
        {
            return Err(Error::UnusableModules {
                what: format!(
                    "module {} was built for kernel {} but the L1 kernel is {want} ({})",
                    m.name,
                    built_for.as_deref().unwrap_or("(no vermagic)"),
                    m.path.display()
                ),
            });
        }
        if !closed {
            continue;
        }
        if let Some(dep) = depends(&bytes)
            .into_iter()
            .find(|d| !mods.iter().any(|o| &o.name == d))
        {
            return Err(Error::UnusableModules {
                what: format!(
                    "module {} depends on {dep}, which is not among the modules fetched ({}); \
                 add it to the kernel's entry in backend/nested/kernels.rs",
                    m.name,
                    mods.iter()
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// A plain .ko in place, with its dependencies.
pub fn read(ko: &Path) -> Result<(Module, Vec<String>), Error> {
    let name = name_of(ko).ok_or_else(|| Error::NotAKernel {
        path: ko.to_path_buf(),
        image_ok: false,
    })?;
    let bytes = std::fs::read(ko).map_err(|e| Error::io("reading", ko, e))?;
    Ok((
        Module {
            name,
            path: ko.to_path_buf(),
        },
        depends(&bytes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, deps: &[&str]) -> (Module, Vec<String>) {
        (
            Module {
                name: name.into(),
                path: PathBuf::from(format!("/m/{name}.ko")),
            },
            deps.iter().map(|d| d.to_string()).collect(),
        )
    }

    fn names(mods: &[Module]) -> Vec<&str> {
        mods.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn debian_amd64_order() {
        let got = order(vec![
            m("kvm-amd", &["kvm", "ccp"]),
            m("ccp", &[]),
            m("kvm", &["irqbypass"]),
            m("irqbypass", &[]),
        ])
        .expect("orders");
        assert_eq!(names(&got), ["irqbypass", "kvm", "ccp", "kvm-amd"]);
    }

    #[test]
    fn dependencies_beat_preference_and_missing_ones_are_built_in() {
        let got = order(vec![
            m("irqbypass", &["zz"]),
            m("kvm", &["irqbypass", "builtin"]),
            m("zz", &[]),
        ])
        .expect("orders");
        assert_eq!(names(&got), ["zz", "irqbypass", "kvm"]);
    }

    #[test]
    fn cycles_are_errors() {
        let err = order(vec![m("a", &["b"]), m("b", &["a"])]).expect_err("cycle");
        assert!(err.to_string().contains("a, b"), "{err}");
    }

    #[test]
    fn depends_from_modinfo() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=kvm,ccp\0vermagic=7.3.4 SMP\0";
        assert_eq!(depends(ko), ["kvm", "ccp"]);
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"no modinfo").is_empty());
        assert_eq!(depends(b"\0depends=kvm_amd\0"), ["kvm-amd"]);
    }

    #[test]
    fn release_from_vermagic() {
        let ko = b"\0name=kvm\0vermagic=6.1.0-57-amd64 SMP preempt mod_unload modversions \0";
        assert_eq!(release(ko).as_deref(), Some("6.1.0-57-amd64"));
        assert_eq!(release(b"\0vermagic=\0"), None);
        assert_eq!(release(b"no modinfo"), None);
        // A key that only starts like another is not it.
        assert!(depends(b"\0dependsx=kvm\0").is_empty());
    }

    #[test]
    fn verify_checks_release_and_closure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let module = |name: &str, info: &str| {
            let path = dir.path().join(format!("{name}.ko"));
            std::fs::write(&path, format!("\0{info}\0")).expect("write");
            Module {
                name: name.into(),
                path,
            }
        };
        let irq = module("irqbypass", "depends=\0vermagic=6.12.117+deb12-amd64 SMP");
        let kvm = module(
            "kvm",
            "depends=irqbypass\0vermagic=6.12.117+deb12-amd64 SMP",
        );
        let set = [irq.clone(), kvm.clone()];
        assert!(verify(&set, Some("6.12.117+deb12-amd64"), true).is_ok());
        let e = verify(&set, Some("6.1.0-57-amd64"), true).expect_err("release");
        assert!(
            e.to_string()
                .contains("irqbypass was built for kernel 6.12.117+deb12-amd64 but the L1 kernel is 6.1.0-57-amd64"),
            "{e}"
        );
        let e = verify(std::slice::from_ref(&kvm), None, true).expect_err("open set");
        assert!(e.to_string().contains("kvm depends on irqbypass"), "{e}");
        assert!(
            verify(&[kvm], None, false).is_ok(),
            "user sets may rely on built-ins"
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(
            name_of(Path::new("/x/kvm-amd.ko.xz")).as_deref(),
            Some("kvm-amd")
        );
        assert_eq!(name_of(Path::new("kvm.ko")).as_deref(), Some("kvm"));
        assert_eq!(name_of(Path::new("kvm.ko.zst")), None);
        assert_eq!(name_of(Path::new("README")), None);
    }

    #[test]
    fn xz_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("irqbypass.ko.xz");
        let mut packed = Vec::new();
        lzma_rs::xz_compress(&mut &b"\0depends=\0payload"[..], &mut packed).expect("xz");
        std::fs::write(&src, packed).expect("write");
        let mods = prepare(&[src], dir.path()).expect("prepare");
        assert_eq!(names(&mods), ["irqbypass"]);
        assert_eq!(
            std::fs::read(&mods[0].path).expect("read"),
            b"\0depends=\0payload"
        );
    }
}
