//! The L1 kernel and its KVM modules: one of the Debian kernels of the
//! table (kernels.rs; fetched once, the few files needed unpacked into
//! `<cache>/l1/<release>`), or the user's `--l1-kernel` / `--l1-modules`.
//!
//! Both Debian layouts end up the same in the cache: `vmlinuz` (amd64: a
//! bzImage; arm64: a plain Image) and `modules/*.ko`, decompressed (arm64
//! builds KVM in: none). amd64 boots `vmlinux.pvh` beside it, the bzImage's
//! own vmlinux unpacked once (pvh_kernel.rs).

use super::apt::{self, Apt};
use super::cache::{self, Cache};
use super::kernel_image::{self, Found};
use super::kernels::KnownL1;
use super::modules::{self, Module};
use crate::error::Error;
use convtest_proto::arch::Arch;
use std::path::{Path, PathBuf};

pub struct L1Kernel {
    pub kernel: PathBuf,
    /// In load order.
    pub modules: Vec<Module>,
    /// What `uname -r` will print in the L1, when known.
    pub release: Option<String>,
}

/// Where one release's kernel and modules are kept unpacked.
pub fn unpacked_dir(cache: &Cache, known: &KnownL1, arch: Arch) -> PathBuf {
    cache.root().join("l1").join(known.release(arch))
}

/// A Debian kernel (and its amd64 modules): from the cache, or downloaded
/// and unpacked into it once.
pub fn debian(
    cache: &Cache,
    apt: &Apt<'_>,
    known: &KnownL1,
    arch: Arch,
    quiet: bool,
) -> Result<L1Kernel, Error> {
    let build = known.build(arch).ok_or_else(|| {
        Error::Usage(format!(
            "--l1 {}: Debian builds no {} kernel of it",
            known.name.as_str(),
            arch.as_str()
        ))
    })?;
    let release = known.release(arch);
    let dir = unpacked_dir(cache, known, arch);
    if !dir.is_dir() {
        let _lock = cache.lock(&format!("l1-{release}"))?;
        if !dir.is_dir() {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("creating cache dir", parent, e))?;
            }
            if !quiet {
                let what = if build.modules.is_empty() {
                    "kernel (KVM is built in)"
                } else {
                    "kernel and KVM modules"
                };
                eprintln!(
                    "convtest: first nested run of --l1 {} for {}: downloading Debian's {release} \
                     {what} from {} (~{} MB, about a minute) into {}; later runs use the cache",
                    known.name.as_str(),
                    arch.as_str(),
                    known.suite.name,
                    build.download_mb,
                    cache.root().display()
                );
            }
            fetch_debian(cache, apt, known, arch, &dir, quiet)?;
        }
    }
    let mut kernel = dir.join("vmlinuz");
    if !kernel.is_file() {
        return Err(Error::MissingOutput { path: kernel });
    }
    if arch == Arch::X86_64 {
        kernel =
            super::pvh_kernel::kernel_for(cache, &format!("l1-{release}"), &dir, &kernel, quiet)?;
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
        release: Some(release),
    })
}

/// Downloads and extracts into a temp dir, checks what came out, then
/// renames it to `dir`.
fn fetch_debian(
    cache: &Cache,
    apt: &Apt<'_>,
    known: &KnownL1,
    arch: Arch,
    dir: &Path,
    quiet: bool,
) -> Result<(), Error> {
    let release = known.release(arch);
    let tmp = cache.temp_dir("l1-")?;
    let tree = tmp.path().join("tree");
    let stage = tmp.path().join("stage");
    let mod_stage = stage.join("modules");
    std::fs::create_dir_all(&mod_stage).map_err(|e| Error::io("creating", &mod_stage, e))?;
    for part in known.debs(arch) {
        let deb = apt
            .deb(&part.package)
            .map_err(|e| moved_on(e, known, &part.package))?;
        apt::extract(&deb, &tree, &part.members, quiet)?;
    }
    let vmlinuz = tree.join(known.kernel_path(arch));
    let kernel = stage.join("vmlinuz");
    std::fs::rename(&vmlinuz, &kernel)
        .map_err(|e| Error::io("taking the kernel from", &vmlinuz, e))?;
    // A table entry pointing at the wrong file would otherwise boot into
    // a silent console.
    kernel_image::check(&kernel, arch)?;
    let root = tree.join(known.modules_root(arch));
    let mut files = Vec::new();
    for stem in known.build(arch).map(|b| b.modules).unwrap_or_default() {
        // 6.1 ships plain .ko, later kernels .ko.xz.
        let file = [".ko.xz", ".ko"]
            .iter()
            .map(|ext| root.join(format!("{stem}{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::MissingOutput {
                path: root.join(format!("{stem}.ko.xz")),
            })?;
        files.push(file);
    }
    let mods = modules::prepare(&files, &mod_stage)?;
    modules::verify(&mods, Some(&release), true)?;
    cache::publish(&stage, dir)
}

/// A download that apt refused (after refreshing its lists) most likely
/// means Debian replaced the pinned build: say where the pin is. Other
/// errors (no apt-get, no network to spawn) pass unchanged.
fn moved_on(e: Error, known: &KnownL1, package: &str) -> Error {
    match e {
        Error::Command { .. } => Error::Unavailable {
            what: format!(
                "{e}\n--l1 {}: {} no longer carries {package}, or the mirror is unreachable; \
                 `apt-cache search linux-image-` against the private apt state in the cache names \
                 the current build, which goes into backend/nested/kernels.rs (or pass --l1-kernel)",
                known.name.as_str(),
                known.suite.name
            ),
        },
        other => other,
    }
}

/// `--l1-kernel` (checked to be a kernel `arch` boots) and, optionally,
/// `--l1-modules` (every *.ko / *.ko.xz in the directory, decompressed into
/// `work`; when the kernel says its version, the modules must match it).
pub fn user(
    kernel: &Path,
    modules_dir: Option<&Path>,
    arch: Arch,
    work: &Path,
) -> Result<L1Kernel, Error> {
    let release = match kernel_image::check(kernel, arch)? {
        Found::BzImage { version, .. } => version,
        _ => None,
    };
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
    let mods = modules::prepare(&files, &into)?;
    // Dependencies outside the directory may be built into the kernel.
    modules::verify(&mods, release.as_deref(), false).map_err(|e| Error::UnusableModules {
        what: format!(
            "--l1-modules {}: {e}",
            modules_dir.unwrap_or(work).display()
        ),
    })?;
    Ok(L1Kernel {
        kernel: kernel.to_path_buf(),
        modules: mods,
        release,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nested::kernel_image::tests::bzimage;
    use crate::backend::nested::kernels::L1Name;
    use crate::backend::nested::kernels::known;

    #[test]
    fn cache_dirs_are_per_release() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        let dir = |n, a| unpacked_dir(&cache, known(n), a);
        assert!(dir(L1Name::Debian73, Arch::X86_64).ends_with("l1/7.3.4+deb13-amd64"));
        assert!(dir(L1Name::Debian61, Arch::Aarch64).ends_with("l1/6.1.0-57-arm64"));
    }

    #[test]
    fn warm_cache_needs_no_network() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        let k612 = known(L1Name::Debian612);
        let dir = unpacked_dir(&cache, k612, Arch::X86_64);
        std::fs::create_dir_all(dir.join("modules")).expect("mkdir");
        std::fs::write(dir.join("vmlinuz"), b"kernel").expect("kernel");
        std::fs::write(dir.join("modules/kvm.ko"), b"\0depends=irqbypass\0").expect("kvm");
        std::fs::write(dir.join("modules/irqbypass.ko"), b"\0depends=\0").expect("irq");
        let mut apt = Apt::new(&cache, true);
        apt.apt_get = "/nonexistent/apt-get".into();
        let l1 = debian(&cache, &apt, k612, Arch::X86_64, true).expect("from the cache alone");
        assert_eq!(l1.kernel, dir.join("vmlinuz"));
        assert_eq!(l1.release.as_deref(), Some("6.12.117+deb12-amd64"));
        let names: Vec<&str> = l1.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["irqbypass", "kvm"]);
        // The other arch, and another kernel, are not cached: they must try
        // apt (and fail here).
        assert!(debian(&cache, &apt, k612, Arch::Aarch64, true).is_err());
        assert!(debian(&cache, &apt, known(L1Name::Debian61), Arch::X86_64, true).is_err());
    }

    #[test]
    fn a_refused_download_points_at_the_table() {
        let k = known(L1Name::Debian61);
        let refused = Error::Command {
            call: "apt-get download x".into(),
            code: Some(100),
            stderr: "E: Unable to locate package x".into(),
        };
        let msg = moved_on(refused, k, "x").to_string();
        assert!(
            msg.contains("exit status 100")
                && msg.contains("Unable to locate package x")
                && msg.contains("bookworm-security no longer carries x")
                && msg.contains("kernels.rs"),
            "{msg}"
        );
        let other = Error::Usage("u".into());
        assert_eq!(moved_on(other, k, "x").to_string(), "u");
    }

    #[test]
    fn user_kernel_is_checked_and_modules_must_match_its_version() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let k = tmp.path().join("bzImage");
        std::fs::write(&k, bzimage("6.1.0-57-amd64", 4096)).expect("k");
        let mods = tmp.path().join("mods");
        std::fs::create_dir(&mods).expect("mkdir");
        std::fs::write(
            mods.join("kvm.ko"),
            b"\0depends=\0vermagic=6.12.117+deb12-amd64 SMP\0",
        )
        .expect("ko");
        let err = user(&k, Some(&mods), Arch::X86_64, tmp.path())
            .err()
            .expect("mismatch");
        assert!(
            err.to_string()
                .contains("built for kernel 6.12.117+deb12-amd64"),
            "{err}"
        );
        std::fs::write(
            mods.join("kvm.ko"),
            b"\0depends=\0vermagic=6.1.0-57-amd64 SMP\0",
        )
        .expect("ko");
        let l1 = user(&k, Some(&mods), Arch::X86_64, tmp.path()).expect("matches");
        assert_eq!(l1.release.as_deref(), Some("6.1.0-57-amd64"));
        let empty = tmp.path().join("empty");
        std::fs::write(&empty, b"").expect("empty");
        let err = user(&empty, None, Arch::X86_64, tmp.path())
            .err()
            .expect("empty kernel");
        assert!(matches!(err, Error::Usage(_)), "{err}");
    }

    #[test]
    fn user_modules_reject_unknown_compression() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let k = tmp.path().join("bzImage");
        std::fs::write(&k, bzimage("7.3.4+deb13-amd64", 4096)).expect("k");
        let mods = tmp.path().join("mods");
        std::fs::create_dir(&mods).expect("mkdir");
        std::fs::write(mods.join("kvm.ko.zst"), b"z").expect("zst");
        let err = user(&k, Some(&mods), Arch::X86_64, tmp.path())
            .err()
            .expect("zst refused");
        assert!(err.to_string().contains("kvm.ko.zst"), "{err}");
        std::fs::remove_file(mods.join("kvm.ko.zst")).expect("rm");
        std::fs::write(
            mods.join("kvm.ko"),
            b"\0depends=\0vermagic=7.3.4+deb13-amd64 SMP\0",
        )
        .expect("ko");
        let l1 = user(&k, Some(&mods), Arch::X86_64, tmp.path()).expect("plain ko");
        assert_eq!(l1.modules.len(), 1);
    }
}
