//! The L1 kernel and its KVM modules: Debian's 7.3.4 from trixie-backports
//! (fetched once, unpacked into the cache), or the user's `--l1-kernel` /
//! `--l1-modules`.
//!
//! Debian 7.3.4 packages are split: `linux-binary-<rel>` has
//! `usr/lib/modules/<rel>/vmlinuz` (amd64: bzImage; arm64: a plain Image),
//! `linux-modules-<rel>` the `.ko.xz` files. arm64 builds KVM in.

use super::apt::{self, Apt};
use super::cache::{self, Cache};
use super::modules::{self, Module};
use crate::cli::Arch;
use crate::error::Error;
use std::path::{Path, PathBuf};

/// Debian's kernel ABI name; the release is `<ABI>-<debian arch>`.
pub const DEBIAN_ABI: &str = "7.3.4+deb13";

/// amd64 modules /dev/kvm needs under TCG's emulated AMD CPU.
const AMD64_MODULES: [&str; 4] = [
    "kernel/virt/lib/irqbypass.ko.xz",
    "kernel/arch/x86/kvm/kvm.ko.xz",
    "kernel/drivers/crypto/ccp/ccp.ko.xz",
    "kernel/arch/x86/kvm/kvm-amd.ko.xz",
];

pub struct L1Kernel {
    pub kernel: PathBuf,
    /// In load order.
    pub modules: Vec<Module>,
}

pub fn deb_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// `7.3.4+deb13-amd64`: package name suffix and `uname -r` in the L1.
pub fn debian_release(arch: Arch) -> String {
    format!("{DEBIAN_ABI}-{}", deb_arch(arch))
}

/// Where one release's kernel and modules are kept unpacked.
pub fn unpacked_dir(cache: &Cache, arch: Arch) -> PathBuf {
    cache.root().join("l1").join(debian_release(arch))
}

/// Debian's kernel (and amd64 modules): from the cache, or downloaded and
/// unpacked into it once.
pub fn debian(cache: &Cache, apt: &Apt<'_>, arch: Arch, quiet: bool) -> Result<L1Kernel, Error> {
    let dir = unpacked_dir(cache, arch);
    if !dir.is_dir() {
        let release = debian_release(arch);
        let _lock = cache.lock(&format!("l1-{release}"))?;
        if !dir.is_dir() {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("creating cache dir", parent, e))?;
            }
            if !quiet {
                // Sizes of the 7.3.4 debs (linux-binary + linux-modules for
                // amd64; the arm64 kernel is built in, its binary deb only).
                let (mb, what) = match arch {
                    Arch::X86_64 => (121, "kernel and KVM modules"),
                    Arch::Aarch64 => (12, "kernel"),
                };
                eprintln!(
                    "convtest: first nested run for {}: downloading Debian's {release} {what} \
                     (~{mb} MB, about a minute) into {}; later runs use the cache",
                    arch.as_str(),
                    cache.root().display()
                );
            }
            fetch_debian(cache, apt, arch, &dir, quiet)?;
        }
    }
    let kernel = dir.join("vmlinuz");
    if !kernel.is_file() {
        return Err(Error::MissingOutput { path: kernel });
    }
    let mut mods = Vec::new();
    let mod_dir = dir.join("modules");
    if mod_dir.is_dir() {
        for entry in std::fs::read_dir(&mod_dir).map_err(|e| Error::io("reading", &mod_dir, e))? {
            let path = entry.map_err(|e| Error::io("reading", &mod_dir, e))?.path();
            mods.push(modules::read(&path)?);
        }
    }
    Ok(L1Kernel {
        kernel,
        modules: modules::order(mods)?,
    })
}

/// Downloads and unpacks into a temp dir, then renames it to `dir`.
fn fetch_debian(
    cache: &Cache,
    apt: &Apt<'_>,
    arch: Arch,
    dir: &Path,
    quiet: bool,
) -> Result<(), Error> {
    let release = debian_release(arch);
    let darch = deb_arch(arch);
    let tmp = cache.temp_dir("l1-")?;
    let stage = tmp.path().join("stage");
    let mod_stage = stage.join("modules");
    std::fs::create_dir_all(&mod_stage).map_err(|e| Error::io("creating", &mod_stage, e))?;
    let tree = |name: &str| tmp.path().join(name).join("usr/lib/modules").join(&release);

    let binary = apt.deb(&format!("linux-binary-{release}:{darch}"))?;
    apt::unpack(&binary, &tmp.path().join("binary"), quiet)?;
    let vmlinuz = tree("binary").join("vmlinuz");
    std::fs::rename(&vmlinuz, stage.join("vmlinuz"))
        .map_err(|e| Error::io("taking the kernel from", &vmlinuz, e))?;

    if arch == Arch::X86_64 {
        let deb = apt.deb(&format!("linux-modules-{release}:{darch}"))?;
        apt::unpack(&deb, &tmp.path().join("modules"), quiet)?;
        let root = tree("modules");
        let files: Vec<PathBuf> = AMD64_MODULES.iter().map(|m| root.join(m)).collect();
        for f in &files {
            if !f.is_file() {
                return Err(Error::MissingOutput { path: f.clone() });
            }
        }
        modules::prepare(&files, &mod_stage)?;
    }
    cache::publish(&stage, dir)
}

/// `--l1-kernel` and, optionally, `--l1-modules` (every *.ko / *.ko.xz in
/// the directory, decompressed into `work`).
pub fn user(kernel: &Path, modules_dir: Option<&Path>, work: &Path) -> Result<L1Kernel, Error> {
    if !kernel.is_file() {
        return Err(Error::io(
            "--l1-kernel",
            kernel,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let mut files = Vec::new();
    if let Some(dir) = modules_dir {
        for entry in
            std::fs::read_dir(dir).map_err(|e| Error::io("reading --l1-modules", dir, e))?
        {
            let path = entry
                .map_err(|e| Error::io("reading --l1-modules", dir, e))?
                .path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if modules::name_of(&path).is_some() {
                files.push(path);
            } else if name.contains(".ko.") {
                return Err(Error::Usage(format!(
                    "--l1-modules: {} is compressed in a format convtest does not read; use .ko or .ko.xz",
                    path.display()
                )));
            }
        }
        if files.is_empty() {
            return Err(Error::Usage(format!(
                "--l1-modules {}: no *.ko or *.ko.xz files",
                dir.display()
            )));
        }
    }
    let into = work.join("modules");
    std::fs::create_dir_all(&into).map_err(|e| Error::io("creating", &into, e))?;
    Ok(L1Kernel {
        kernel: kernel.to_path_buf(),
        modules: modules::prepare(&files, &into)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        assert_eq!(debian_release(Arch::X86_64), "7.3.4+deb13-amd64");
        assert_eq!(debian_release(Arch::Aarch64), "7.3.4+deb13-arm64");
    }

    #[test]
    fn warm_cache_needs_no_network() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        let dir = unpacked_dir(&cache, Arch::X86_64);
        std::fs::create_dir_all(dir.join("modules")).expect("mkdir");
        std::fs::write(dir.join("vmlinuz"), b"kernel").expect("kernel");
        std::fs::write(dir.join("modules/kvm.ko"), b"\0depends=irqbypass\0").expect("kvm");
        std::fs::write(dir.join("modules/irqbypass.ko"), b"\0depends=\0").expect("irq");
        let mut apt = Apt::new(&cache, true);
        apt.apt_get = "/nonexistent/apt-get".into();
        let l1 = debian(&cache, &apt, Arch::X86_64, true).expect("from the cache alone");
        assert_eq!(l1.kernel, dir.join("vmlinuz"));
        let names: Vec<&str> = l1.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["irqbypass", "kvm"]);
        // The other arch is not cached: it must try apt (and fail here).
        assert!(debian(&cache, &apt, Arch::Aarch64, true).is_err());
    }

    #[test]
    fn user_modules_reject_unknown_compression() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let k = tmp.path().join("bzImage");
        std::fs::write(&k, b"k").expect("k");
        let mods = tmp.path().join("mods");
        std::fs::create_dir(&mods).expect("mkdir");
        std::fs::write(mods.join("kvm.ko.zst"), b"z").expect("zst");
        let err = user(&k, Some(&mods), tmp.path())
            .err()
            .expect("zst refused");
        assert!(err.to_string().contains("kvm.ko.zst"), "{err}");
        std::fs::remove_file(mods.join("kvm.ko.zst")).expect("rm");
        std::fs::write(mods.join("kvm.ko"), b"\0depends=\0").expect("ko");
        let l1 = user(&k, Some(&mods), tmp.path()).expect("plain ko");
        assert_eq!(l1.modules.len(), 1);
    }
}
