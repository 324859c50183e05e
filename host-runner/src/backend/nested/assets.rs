//! The L1 kernel and its KVM modules: one of the Debian kernels of the
//! table (kernels.rs; the build series.rs picks, fetched once, the few files
//! needed unpacked into `<cache>/l1/<release>`), or the user's
//! `--l1-kernel` / `--l1-modules`.
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
use super::series::{self, Chosen, How, Index};
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
pub fn unpacked_dir(cache: &Cache, known: &KnownL1, abi: &str, arch: Arch) -> PathBuf {
    cache.root().join("l1").join(known.release_of(abi, arch))
}

/// Which build of `known` to boot: the asked one (`explicit`, else the pin)
/// when the cache has it (and, with `swprot`, its rebuilt kvm.ko); else what
/// the archive offers (series.rs), its lists refreshed once before a pin is
/// given up. With `announce`, a build that is not the pin is announced on
/// stderr whatever `--quiet` says.
pub fn choose_build(
    cache: &Cache,
    apt: &Apt<'_>,
    known: &KnownL1,
    arch: Arch,
    swprot: bool,
    explicit: Option<&str>,
    announce: bool,
) -> Result<Chosen, Error> {
    let prefixes = series::prefixes(known, arch, swprot);
    let exact: Vec<String> = if swprot {
        vec![super::swprot::source_package()]
    } else {
        Vec::new()
    };
    let chosen = choose_with(cache, known, arch, swprot, explicit, &mut |refresh| {
        apt.index(&prefixes, &exact, refresh)
    })?;
    if let Some(w) = series::warning(&chosen, known, arch).filter(|_| announce) {
        eprintln!("{w}");
    }
    Ok(chosen)
}

/// [`choose_build`] with the archive's index from `index(refresh)`.
fn choose_with(
    cache: &Cache,
    known: &KnownL1,
    arch: Arch,
    swprot: bool,
    explicit: Option<&str>,
    index: &mut dyn FnMut(bool) -> Result<Index, Error>,
) -> Result<Chosen, Error> {
    let asked = explicit.unwrap_or(known.abi);
    let cached = unpacked_dir(cache, known, asked, arch).is_dir()
        && (!swprot || super::swprot::cached_build(cache, asked).is_some());
    if cached {
        return Ok(Chosen::asked(asked, explicit.is_some(), None));
    }
    let first = series::from_archive(known, arch, swprot, explicit, &index(false)?);
    match first {
        Ok(c) if c.how != (How::NewestOfSeries { pinned: known.abi }) => Ok(c),
        // The lists may be older than the archive: ask again, fresh.
        _ => series::from_archive(known, arch, swprot, explicit, &index(true)?),
    }
    .map_err(|why| Error::Unavailable {
        what: format!(
            "--l1 {}{} on {}: {why}; pin a build the archive has with --l1 {}=<abi>, or boot \
             your own with --l1-kernel",
            known.name.as_str(),
            explicit.map_or(String::new(), |a| format!("={a}")),
            arch.as_str(),
            known.name.as_str()
        ),
    })
}

/// A Debian kernel (and its amd64 modules) of build `abi`: from the cache,
/// or downloaded and unpacked into it once.
pub fn debian(
    cache: &Cache,
    apt: &Apt<'_>,
    known: &KnownL1,
    abi: &str,
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
    let release = known.release_of(abi, arch);
    let dir = unpacked_dir(cache, known, abi, arch);
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
            fetch_debian(cache, apt, known, abi, arch, &dir, quiet)?;
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
    abi: &str,
    arch: Arch,
    dir: &Path,
    quiet: bool,
) -> Result<(), Error> {
    let release = known.release_of(abi, arch);
    let tmp = cache.temp_dir("l1-")?;
    let tree = tmp.path().join("tree");
    let stage = tmp.path().join("stage");
    let mod_stage = stage.join("modules");
    std::fs::create_dir_all(&mod_stage).map_err(|e| Error::io("creating", &mod_stage, e))?;
    for part in known.debs(abi, arch) {
        let deb = apt
            .deb(&part.package)
            .map_err(|e| moved_on(e, known, &part.package))?;
        apt::extract(&deb, &tree, &part.members, quiet)?;
    }
    let vmlinuz = tree.join(known.kernel_path(abi, arch));
    let kernel = stage.join("vmlinuz");
    std::fs::rename(&vmlinuz, &kernel)
        .map_err(|e| Error::io("taking the kernel from", &vmlinuz, e))?;
    // A table entry pointing at the wrong file would otherwise boot into
    // a silent console.
    kernel_image::check(&kernel, arch)?;
    let root = tree.join(known.modules_root(abi, arch));
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

/// A download that apt refused (after refreshing its lists) although the
/// index listed the package: the mirror dropped it since, or is
/// unreachable. Other errors (no apt-get) pass unchanged.
fn moved_on(e: Error, known: &KnownL1, package: &str) -> Error {
    match e {
        Error::Command { .. } => Error::Unavailable {
            what: format!(
                "{e}\n--l1 {}: {} no longer carries {package}, or the mirror is unreachable; \
                 run again (the build is chosen afresh from the archive's lists), pin another \
                 build with --l1 {}=<abi>, or pass --l1-kernel",
                known.name.as_str(),
                known.suite.name,
                known.name.as_str()
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
        let dir = |n, a| unpacked_dir(&cache, known(n), known(n).abi, a);
        assert!(dir(L1Name::Debian73, Arch::X86_64).ends_with("l1/7.3.4+deb13-amd64"));
        assert!(dir(L1Name::Debian61, Arch::Aarch64).ends_with("l1/6.1.0-57-arm64"));
    }

    #[test]
    fn warm_cache_needs_no_network() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        let k612 = known(L1Name::Debian612);
        let dir = unpacked_dir(&cache, k612, k612.abi, Arch::X86_64);
        std::fs::create_dir_all(dir.join("modules")).expect("mkdir");
        std::fs::write(dir.join("vmlinuz"), b"kernel").expect("kernel");
        std::fs::write(dir.join("modules/kvm.ko"), b"\0depends=irqbypass\0").expect("kvm");
        std::fs::write(dir.join("modules/irqbypass.ko"), b"\0depends=\0").expect("irq");
        let mut apt = Apt::new(&cache, true);
        apt.apt_get = "/nonexistent/apt-get".into();
        let chosen = choose_build(&cache, &apt, k612, Arch::X86_64, false, None, false)
            .expect("the cached pin needs no index");
        assert_eq!((chosen.abi.as_str(), chosen.how), (k612.abi, How::Pinned));
        let l1 =
            debian(&cache, &apt, k612, k612.abi, Arch::X86_64, true).expect("from the cache alone");
        assert_eq!(l1.kernel, dir.join("vmlinuz"));
        assert_eq!(l1.release.as_deref(), Some("6.12.117+deb12-amd64"));
        let names: Vec<&str> = l1.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["irqbypass", "kvm"]);
        // The other arch, and another kernel, are not cached: they must try
        // apt (and fail here).
        assert!(debian(&cache, &apt, k612, k612.abi, Arch::Aarch64, true).is_err());
        let k61 = known(L1Name::Debian61);
        assert!(debian(&cache, &apt, k61, k61.abi, Arch::X86_64, true).is_err());
        assert!(choose_build(&cache, &apt, k61, Arch::X86_64, false, None, false).is_err());
    }

    /// The recorded archive index (series.rs) without the builds of `abi`.
    fn index_without(abi: &str) -> Index {
        let text: String = include_str!("../../../tests/fixtures/debian-index.madison")
            .lines()
            .filter(|l| !l.contains(abi))
            .map(|l| format!("{l}\n"))
            .collect();
        Index::parse_madison(&text)
    }

    #[test]
    fn an_empty_cache_and_an_archive_without_the_pin_boot_the_newest_of_the_series() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        let k = known(L1Name::Debian612);
        let mut asked = Vec::new();
        let c = choose_with(&cache, k, Arch::X86_64, false, None, &mut |refresh| {
            asked.push(refresh);
            Ok(index_without(k.abi))
        })
        .expect("the newest build");
        assert_eq!(c.abi, "6.12.118+deb12");
        assert_eq!(c.how, How::NewestOfSeries { pinned: k.abi });
        assert_eq!(
            asked,
            [false, true],
            "the lists are refreshed before the pin is given up"
        );
        assert!(series::warning(&c, k, Arch::X86_64).is_some());
        // With the pin in the cache, the archive is not asked.
        std::fs::create_dir_all(unpacked_dir(&cache, k, k.abi, Arch::X86_64)).expect("mkdir");
        let c = choose_with(&cache, k, Arch::X86_64, false, None, &mut |_| {
            panic!("no index for a cached pin")
        })
        .expect("cached");
        assert_eq!((c.abi.as_str(), c.how), (k.abi, How::Pinned));
    }

    #[test]
    fn no_build_of_the_series_anywhere_is_unavailable_naming_what_was_looked_for() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        let k = known(L1Name::Debian73);
        let err = choose_with(&cache, k, Arch::X86_64, true, None, &mut |_| {
            Ok(index_without("7.3.4"))
        })
        .expect_err("nothing of 7.3");
        let msg = err.to_string();
        assert!(matches!(err, Error::Unavailable { .. }), "{msg}");
        assert!(
            msg.starts_with("--l1 debian-7.3 on x86_64: the pinned build 7.3.4+deb13")
                && msg.contains("linux-binary-7.3.<n>+deb13-amd64")
                && msg.contains("--l1 debian-7.3=<abi>"),
            "{msg}"
        );
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
                && msg.contains("--l1 debian-6.1=<abi>"),
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
