//! `--l1-swprot`: Debian's 7.3 kvm.ko (the pinned 7.3.4 build, or the build
//! series.rs chose) rebuilt with
//! `CONFIG_KVM_SW_PROTECTED_VM=y`, so the L1 offers `KVM_X86_SW_PROTECTED_VM`
//! (VM type 1: guest_memfd + memory attributes = real private memory).
//!
//! The headers package has no KVM sources and its kbuild tools need a newer
//! libc than bookworm's, so the module is built from `linux-source-7.3` with
//! the `.config` and `Module.symvers` of `linux-headers-<rel>`. The option
//! only changes code inside kvm.ko, so the stock kvm-amd.ko loads with it.
//! pahole (dwarves) is required: without it `olddefconfig` drops
//! DEBUG_INFO_BTF and SCHED_CLASS_EXT, which change `struct module` and
//! `task_struct`, and the module would corrupt the kernel it loads into.
//! Built once (~5 min on 2 cores) and cached by release + recipe version;
//! the 2 GB tree is deleted afterwards.

use super::apt::Apt;
use super::cache::{self, Cache};
use super::kernels::{KnownL1, L1Name, known};
use crate::error::Error;
use crate::step;
use convtest_proto::arch::Arch;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the recipe changes: cached modules from older recipes are ignored.
pub const RECIPE_VERSION: u32 = 1;

/// Options that must be `y` after `olddefconfig` whenever Debian's config
/// has them: they change structures shared with the running kernel.
pub const ABI_OPTIONS: [&str; 3] = [
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_DEBUG_INFO_BTF_MODULES",
    "CONFIG_SCHED_CLASS_EXT",
];

/// Host tools the build needs, with the bookworm package that has them.
const TOOLS: [(&str, &str); 8] = [
    ("gcc", "gcc"),
    ("make", "make"),
    ("bison", "bison"),
    ("flex", "flex"),
    ("bc", "bc"),
    ("pahole", "dwarves"),
    ("strip", "binutils"),
    ("xz", "xz-utils"),
];
const HEADERS: [(&str, &str); 2] = [
    ("/usr/include/gelf.h", "libelf-dev"),
    ("/usr/include/openssl/opensslv.h", "libssl-dev"),
];

/// Unpacks the source, installs Debian's config and applies the option.
const PREPARE: &str = r#"set -euo pipefail
cd "$WORK"
mkdir hdr
dpkg-deb -x "$HDR_DEB" hdr
dpkg-deb --fsys-tarfile "$SRC_DEB" | tar -xO "./usr/src/linux-source-$SRCVER.tar.xz" | tar -xJ
cd "linux-source-$SRCVER"
cp "../hdr/usr/src/linux-headers-$REL/.config" .config
cp "../hdr/usr/src/linux-headers-$REL/Module.symvers" Module.symvers
scripts/config --enable KVM_SW_PROTECTED_VM --disable MODULE_SIG_ALL \
    --set-str MODULE_SIG_KEY "" --set-str SYSTEM_TRUSTED_KEYS ""
make -s olddefconfig
"#;

/// Builds arch/x86/kvm against the prepared tree; keeps kvm.ko only.
const BUILD: &str = r#"set -euo pipefail
cd "$WORK/linux-source-$SRCVER"
make -s -j"$JOBS" KERNELRELEASE="$REL" modules_prepare
make -s -j"$JOBS" KERNELRELEASE="$REL" M=arch/x86/kvm modules
strip --strip-debug -o "$OUT" arch/x86/kvm/kvm.ko
"#;

/// The one kernel this recipe is for (kernels.rs marks it `swprot`).
/// Whether this host can give the x86 nested lane KVM-enforced private
/// memory (the swprot kvm.ko), for `--backend auto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swprot {
    /// Built before: no cost.
    Cached,
    /// Not built yet, but every build tool is here.
    Buildable,
    /// These packages are missing.
    Missing(Vec<&'static str>),
}

/// Asks the cache and PATH, nothing else.
pub fn readiness() -> Swprot {
    if Cache::locate().is_ok_and(|c| cached(&c).is_some()) {
        return Swprot::Cached;
    }
    match missing_tools() {
        m if m.is_empty() => Swprot::Buildable,
        m => Swprot::Missing(m),
    }
}

fn kernel() -> &'static KnownL1 {
    known(L1Name::Debian73)
}

/// `7.3` of `7.3.4+deb13`: the linux-source package's version.
fn source_version() -> String {
    kernel()
        .abi
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// The linux-source package the recipe builds from.
pub fn source_package() -> String {
    format!("linux-source-{}", source_version())
}

fn cached_path(cache: &Cache, abi: &str) -> PathBuf {
    cache
        .root()
        .join("swprot")
        .join(format!(
            "{}-r{RECIPE_VERSION}",
            kernel().release_of(abi, Arch::X86_64)
        ))
        .join("kvm.ko")
}

/// The swprot kvm.ko of the pinned build, if already built.
pub fn cached(cache: &Cache) -> Option<PathBuf> {
    cached_build(cache, kernel().abi)
}

/// The swprot kvm.ko of build `abi`, if already built.
pub fn cached_build(cache: &Cache, abi: &str) -> Option<PathBuf> {
    Some(cached_path(cache, abi)).filter(|p| p.is_file())
}

/// What is missing on this host to build it (empty: nothing).
pub fn missing_tools() -> Vec<&'static str> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(bin, _)| crate::backend::qemu::find_in_path(bin).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.extend(
        HEADERS
            .iter()
            .filter(|(h, _)| !Path::new(h).is_file())
            .map(|(_, pkg)| *pkg),
    );
    missing
}

/// The cached swprot kvm.ko of build `abi`, building it first if needed
/// from `linux-source` of `source` (the exact package version series.rs
/// found; `None`: whatever the archive's candidate is, checked below).
pub fn kvm_ko(
    cache: &Cache,
    apt: &Apt<'_>,
    abi: &str,
    source: Option<&str>,
    quiet: bool,
) -> Result<PathBuf, Error> {
    if let Some(ko) = cached_build(cache, abi) {
        return Ok(ko);
    }
    if std::env::consts::ARCH != "x86_64" {
        return Err(Error::Unsupported {
            what: "--l1-swprot builds an x86 kvm.ko and needs an x86_64 host".into(),
        });
    }
    let missing = missing_tools();
    if !missing.is_empty() {
        let tools = missing.join(", ");
        return Err(Error::MissingTool {
            problem: format!(
                "--l1-swprot rebuilds kvm.ko once and needs {tools} (pahole comes from dwarves);"
            ),
            tool: tools,
            install: "run `scripts/install-deps.sh` as root".into(),
        });
    }
    let _lock = cache.lock("swprot")?;
    if let Some(ko) = cached_build(cache, abi) {
        return Ok(ko);
    }
    let release = kernel().release_of(abi, Arch::X86_64);
    let src = match source {
        Some(v) => apt.deb_version(&source_package(), v)?,
        None => apt.deb(&source_package())?,
    };
    check_source(&src, abi)?;
    let hdr = apt.deb(&format!("linux-headers-{release}:amd64"))?;
    clear_stale_trees(cache)?;
    let work = cache.temp_dir("swprot-")?;
    let out = work.path().join("kvm.ko");
    let env: Vec<(&str, OsString)> = vec![
        ("WORK", work.path().into()),
        ("SRC_DEB", src.into()),
        ("HDR_DEB", hdr.into()),
        ("REL", release.clone().into()),
        ("SRCVER", source_version().into()),
        ("JOBS", jobs().into()),
        ("OUT", out.clone().into()),
    ];
    script(
        PREPARE,
        &env,
        "swprot kvm.ko: unpacking linux-source and configuring (once)",
        quiet,
    )?;
    let tree = work
        .path()
        .join(format!("linux-source-{}", source_version()));
    let debian_config = work
        .path()
        .join(format!("hdr/usr/src/linux-headers-{release}/.config"));
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io("reading", p, e));
    if let Err(why) = check_config(&read(&debian_config)?, &read(&tree.join(".config"))?) {
        return Err(Error::UnusableBuild {
            what: format!(
                "--l1-swprot: the rebuilt kernel config {why}; this happens when pahole is missing \
                 or too old (package dwarves; run `scripts/install-deps.sh` as root)"
            ),
        });
    }
    script(
        BUILD,
        &env,
        "swprot kvm.ko: building arch/x86/kvm with KVM_SW_PROTECTED_VM=y (once, ~5 min)",
        quiet,
    )?;
    let bytes = std::fs::read(&out).map_err(|e| Error::io("reading", &out, e))?;
    let vermagic = format!("vermagic={release} ");
    if !contains(&bytes, vermagic.as_bytes()) {
        return Err(Error::UnusableBuild {
            what: format!(
                "--l1-swprot: the rebuilt {} lacks `{vermagic}` and would not load",
                out.display()
            ),
        });
    }
    let dest = cached_path(cache, abi);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    }
    // Same filesystem (the work dir is in the cache): an atomic rename.
    cache::publish(&out, &dest)?;
    remove_tree(work, quiet);
    Ok(dest)
}

/// Deleting ~70k files takes a minute on a busy machine: say so. A failure
/// leaves a `swprot-*` dir that the next build clears.
fn remove_tree(work: tempfile::TempDir, quiet: bool) {
    let path = work.keep();
    let mut cmd = Command::new("rm");
    cmd.arg("-rf").arg(&path);
    let call = format!("rm -rf {}", path.display());
    let _ = step::run(
        cmd,
        &call,
        "swprot kvm.ko: removing the 2 GB build tree",
        quiet,
    );
}

/// The source must be of the kernel build's own upstream version: kvm.ko
/// from other sources would load (KERNELRELEASE is forced) and run code
/// the kernel was not built with.
fn check_source(deb: &Path, abi: &str) -> Result<(), Error> {
    let call = format!("dpkg-deb -f {} Version", deb.display());
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg("Version")
        .output()
        .map_err(|source| Error::Spawn {
            call: call.clone(),
            source,
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let upstream = abi.strip_suffix(kernel().series.suffix).unwrap_or(abi);
    if version.split('-').next() == Some(upstream) {
        return Ok(());
    }
    Err(Error::UnusableBuild {
        what: format!(
            "--l1-swprot: {} is version {version:?}, not of the kernel build {abi} ({upstream}); \
             kernel, modules and linux-source must be of one version",
            deb.display()
        ),
    })
}

/// Why the rebuilt config is unsafe, if it is.
pub fn check_config(debian: &str, rebuilt: &str) -> Result<(), String> {
    let is_y = |cfg: &str, opt: &str| cfg.lines().any(|l| l.trim() == format!("{opt}=y"));
    for opt in ABI_OPTIONS {
        if is_y(debian, opt) && !is_y(rebuilt, opt) {
            return Err(format!("lost {opt}=y"));
        }
    }
    if !is_y(rebuilt, "CONFIG_KVM_SW_PROTECTED_VM") {
        return Err("does not enable CONFIG_KVM_SW_PROTECTED_VM (needs EXPERT=y)".into());
    }
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn jobs() -> String {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .to_string()
}

fn script(text: &str, env: &[(&str, OsString)], label: &str, quiet: bool) -> Result<(), Error> {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(text);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let vars: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_string_lossy()))
        .collect();
    let call = format!("{} bash -c '{}'", vars.join(" "), text.trim());
    step::run(cmd, &call, label, quiet).map(drop)
}

/// Source trees of builds that were killed (the lock says none is running).
fn clear_stale_trees(cache: &Cache) -> Result<(), Error> {
    let tmp = cache.dir("tmp")?;
    for entry in std::fs::read_dir(&tmp)
        .map_err(|e| Error::io("reading", &tmp, e))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("swprot-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "CONFIG_EXPERT=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\n\
                          CONFIG_SCHED_CLASS_EXT=y\n# CONFIG_KVM_SW_PROTECTED_VM is not set\n";

    #[test]
    fn config_keeps_abi_options() {
        let good = DEBIAN.replace(
            "# CONFIG_KVM_SW_PROTECTED_VM is not set",
            "CONFIG_KVM_SW_PROTECTED_VM=y",
        );
        assert_eq!(check_config(DEBIAN, &good), Ok(()));
        let no_btf = good.replace("CONFIG_DEBUG_INFO_BTF=y\n", "");
        assert_eq!(
            check_config(DEBIAN, &no_btf),
            Err("lost CONFIG_DEBUG_INFO_BTF=y".into())
        );
        let no_scx = good.replace(
            "CONFIG_SCHED_CLASS_EXT=y",
            "# CONFIG_SCHED_CLASS_EXT is not set",
        );
        assert!(check_config(DEBIAN, &no_scx).is_err());
        assert!(check_config(DEBIAN, DEBIAN).is_err(), "option not enabled");
    }

    #[test]
    fn names() {
        assert_eq!(source_version(), "7.3");
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        assert!(cached(&cache).is_none());
        let p = cached_path(&cache, "7.3.4+deb13");
        assert!(p.ends_with("swprot/7.3.4+deb13-amd64-r1/kvm.ko"), "{p:?}");
        assert_eq!(source_package(), "linux-source-7.3");
    }
}
