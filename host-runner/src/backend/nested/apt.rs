//! Debian packages through a private apt state: its own sources list, lists
//! and caches under the convtest cache, so the system's apt sources never
//! gain a suite (bookworm hosts read trixie-backports this way). Only
//! `apt-get update` and `apt-get download` run; nothing is installed.
//! A .deb already in the cache is used without any network access.

use super::cache::{self, Cache};
use super::kernels::{self, Suite};
use super::series::Index;
use crate::error::{Error, shell_line};
use crate::step;
use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The private sources list: every suite given.
fn sources_of(suites: &[Suite]) -> String {
    suites
        .iter()
        .map(|s| format!("deb {} {} main\n", s.url, s.name))
        .collect()
}

/// The state directory's name, one per set of suites: convtest builds that
/// read different suites share the cache without each `apt-get update`
/// dropping the others' lists.
fn state_name_of(suites: &[Suite]) -> String {
    let names: Vec<&str> = suites.iter().map(|s| s.name).collect();
    format!("apt-{}", names.join("+"))
}

/// The Debian architectures the kernel table needs: both kernels'.
const KERNEL_ARCHS: &[&str] = &["amd64", "arm64"];

pub struct Apt<'a> {
    cache: &'a Cache,
    /// The suites the private sources list names, and the architectures
    /// whose package lists apt reads.
    suites: Vec<Suite>,
    archs: &'static [&'static str],
    /// apt-get; tests point it at a missing binary to prove a warm cache
    /// needs no network.
    pub apt_get: OsString,
    pub quiet: bool,
    /// Packages this run had to download (empty: everything was cached).
    pub downloaded: RefCell<Vec<String>>,
}

impl<'a> Apt<'a> {
    /// The kernel table's suites, for both kernel architectures.
    pub fn new(cache: &'a Cache, quiet: bool) -> Apt<'a> {
        Apt::for_suites(cache, quiet, kernels::suites(), KERNEL_ARCHS)
    }

    /// Other suites (with their own state directory), reading `archs`'
    /// package lists (`all` packages are listed in each).
    pub fn for_suites(
        cache: &'a Cache,
        quiet: bool,
        suites: Vec<Suite>,
        archs: &'static [&'static str],
    ) -> Apt<'a> {
        Apt {
            cache,
            suites,
            archs,
            apt_get: "apt-get".into(),
            quiet,
            downloaded: RefCell::new(Vec::new()),
        }
    }

    fn state(&self) -> Result<PathBuf, Error> {
        let state = self.cache.dir(&state_name_of(&self.suites))?;
        for sub in ["lists/partial", "cache"] {
            let d = state.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("creating", &d, e))?;
        }
        let list = state.join("sources.list");
        let current = std::fs::read_to_string(&list).unwrap_or_default();
        let wanted = sources_of(&self.suites);
        if current != wanted {
            std::fs::write(&list, wanted).map_err(|e| Error::io("writing", &list, e))?;
        }
        Ok(state)
    }

    /// The `-o` options that make apt use only the private state.
    fn options(state: &Path, archs: &[&str]) -> Vec<OsString> {
        let dir = |key: &str, sub: &str| {
            let mut o = OsString::from(format!("{key}="));
            o.push(state.join(sub));
            o
        };
        let mut opts = Vec::new();
        for o in [
            dir("Dir::Etc::SourceList", "sources.list"),
            "Dir::Etc::SourceParts=/dev/null".into(),
            dir("Dir::State::Lists", "lists"),
            dir("Dir::Cache", "cache"),
            dir("Dir::Cache::Archives", "cache"),
            "Acquire::Languages=none".into(),
            // Root downloads into our own temp dir, which _apt cannot enter.
            "APT::Sandbox::User=root".into(),
        ] {
            opts.push("-o".into());
            opts.push(o);
        }
        // These architectures' packages, whatever this host's own is.
        for a in archs {
            opts.push("-o".into());
            opts.push(format!("APT::Architectures::={a}").into());
        }
        opts
    }

    /// What the archive offers of the packages whose names start with one
    /// of `prefixes`, and of the packages `exact` (`apt-cache pkgnames`,
    /// then `apt-cache madison` of what it named): the choice of an L1
    /// build reads it (series.rs). Lists never fetched are fetched first;
    /// `refresh` fetches them again (a pin missing from stale lists).
    pub fn index(
        &self,
        prefixes: &[String],
        exact: &[String],
        refresh: bool,
    ) -> Result<Index, Error> {
        let _lock = self.cache.lock("apt")?;
        let state = self.state()?;
        if refresh || !has_lists(&state.join("lists")) {
            self.update(&state)?;
        }
        let mut names: Vec<String> = Vec::new();
        for p in prefixes {
            let out = self.cache_query(&state, &["pkgnames", p])?;
            names.extend(out.lines().map(str::to_string));
        }
        names.extend(exact.iter().cloned());
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Ok(Index::default());
        }
        let mut args = vec!["madison"];
        args.extend(names.iter().map(String::as_str));
        Ok(Index::parse_madison(&self.cache_query(&state, &args)?))
    }

    /// An `apt-cache` query against the private state; its stdout.
    fn cache_query(&self, state: &Path, args: &[&str]) -> Result<String, Error> {
        let apt_cache = Path::new(&self.apt_get).with_file_name("apt-cache");
        let bin: OsString = if Path::new(&self.apt_get).components().count() > 1 {
            apt_cache.into()
        } else {
            "apt-cache".into()
        };
        let mut all = Self::options(state, self.archs);
        all.extend(args.iter().map(OsString::from));
        // madison and pkgnames exit 0 with nothing for names apt does not
        // know; any other failure is the query's.
        crate::command_output::stdout_of(bin, all)
    }

    /// The cached .deb of `package` (`name` or `name:arch`), downloaded once.
    pub fn deb(&self, package: &str) -> Result<PathBuf, Error> {
        self.deb_as(package, &package.replace(':', "_"))
    }

    /// The cached .deb of one version of `package` (`name=version`).
    pub fn deb_version(&self, package: &str, version: &str) -> Result<PathBuf, Error> {
        let file = format!("{package}_{version}").replace([':', '~', '+'], "_");
        self.deb_as(&format!("{package}={version}"), &file)
    }

    /// The cached `<file>.deb` of what `apt-get download <spec>` fetches.
    fn deb_as(&self, package: &str, file: &str) -> Result<PathBuf, Error> {
        let debs = self.cache.dir("debs")?;
        let file = debs.join(format!("{file}.deb"));
        if file.is_file() {
            return Ok(file);
        }
        let _lock = self.cache.lock("apt")?;
        // Another run may have fetched it while we waited for the lock.
        if file.is_file() {
            return Ok(file);
        }
        let state = self.state()?;
        if !has_lists(&state.join("lists")) {
            self.update(&state)?;
        }
        let tmp = self.cache.temp_dir("deb-")?;
        let fetched = match self.download(&state, package, tmp.path()) {
            Ok(f) => f,
            // Stale lists name a version the mirror no longer has: refresh once.
            Err(_) => {
                self.update(&state)?;
                self.download(&state, package, tmp.path())?
            }
        };
        cache::publish(&fetched, &file)?;
        self.downloaded.borrow_mut().push(package.to_string());
        Ok(file)
    }

    fn run(&self, state: &Path, args: &[&str], cwd: &Path, label: &str) -> Result<(), Error> {
        let mut all = Self::options(state, self.archs);
        all.extend(args.iter().map(OsString::from));
        let call = shell_line(self.apt_get.clone(), all.clone());
        let mut cmd = Command::new(&self.apt_get);
        cmd.args(&all).current_dir(cwd);
        step::run(cmd, &call, label, self.quiet).map(drop)
    }

    fn update(&self, state: &Path) -> Result<(), Error> {
        let names: Vec<&str> = self.suites.iter().map(|s| s.name).collect();
        self.run(
            state,
            &["-q", "update"],
            state,
            &format!("apt-get update (private state: {})", names.join(", ")),
        )
    }

    fn download(&self, state: &Path, package: &str, into: &Path) -> Result<PathBuf, Error> {
        self.run(
            state,
            &["-q", "download", package],
            into,
            &format!("downloading {package} (apt-get download)"),
        )?;
        let debs: Vec<PathBuf> = std::fs::read_dir(into)
            .map_err(|e| Error::io("reading", into, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        match debs.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(Error::MissingOutput {
                path: into.join(format!("{package}.deb")),
            }),
        }
    }
}

/// Whether `apt-get update` ever completed into this lists dir (apt may
/// keep the lists compressed: `…_Packages.lz4`).
fn has_lists(lists: &Path) -> bool {
    std::fs::read_dir(lists).is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    })
}

/// Pipes the .deb's file tree through tar, keeping only the members named.
const EXTRACT: &str = r#"set -euo pipefail
deb=$1 dir=$2
shift 2
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards "$@"
"#;

/// Extracts the files of `deb` matching `members` (tar patterns, `./…`)
/// into `dir`: a kernel .deb holds 100–400 MB of which a few MB are
/// wanted. A pattern that matches nothing fails the step (tar: "Not found
/// in archive").
pub fn extract(deb: &Path, dir: &Path, members: &[String], quiet: bool) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut args: Vec<OsString> = vec![
        "-c".into(),
        EXTRACT.into(),
        "convtest-extract".into(),
        deb.into(),
        dir.into(),
    ];
    args.extend(members.iter().map(OsString::from));
    let call = shell_line(OsString::from("bash"), args.clone());
    let mut cmd = Command::new("bash");
    cmd.args(&args);
    let name = deb.file_name().unwrap_or_default().to_string_lossy();
    step::run(cmd, &call, &format!("unpacking {name}"), quiet).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_deb_needs_no_apt() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().to_path_buf()).expect("cache");
        let debs = cache.dir("debs").expect("debs");
        std::fs::write(debs.join("linux-binary-x_arm64.deb"), b"!<arch>").expect("seed");
        let mut apt = Apt::new(&cache, true);
        // Any apt run would fail to spawn.
        apt.apt_get = "/nonexistent/apt-get".into();
        let deb = apt.deb("linux-binary-x:arm64").expect("from the cache");
        assert_eq!(deb, debs.join("linux-binary-x_arm64.deb"));
        assert!(matches!(apt.deb("other"), Err(Error::Spawn { .. })));
    }

    #[test]
    fn sources_name_every_suite_of_the_table() {
        assert_eq!(
            sources_of(&kernels::suites()),
            "deb http://deb.debian.org/debian trixie-backports main\n\
             deb http://deb.debian.org/debian-security bookworm-security main\n"
        );
        assert_eq!(
            state_name_of(&kernels::suites()),
            "apt-trixie-backports+bookworm-security"
        );
    }

    #[test]
    fn extract_takes_only_the_members_named() {
        if debian_tools_missing() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("boot")).expect("mkdir");
        std::fs::create_dir_all(root.join("DEBIAN")).expect("mkdir");
        std::fs::write(root.join("boot/vmlinuz-1"), b"k").expect("k");
        std::fs::write(root.join("boot/other"), b"o").expect("o");
        std::fs::write(
            root.join("DEBIAN/control"),
            "Package: t\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n",
        )
        .expect("control");
        let deb = tmp.path().join("t.deb");
        let built = Command::new("dpkg-deb")
            .args(["-Zgzip", "--build"])
            .arg(&root)
            .arg(&deb)
            .output()
            .expect("dpkg-deb");
        assert!(built.status.success(), "{built:?}");
        let out = tmp.path().join("out");
        extract(&deb, &out, &["./boot/vmlinuz-*".into()], true).expect("extract");
        assert!(out.join("boot/vmlinuz-1").is_file());
        assert!(!out.join("boot/other").exists());
        let err = extract(&deb, &out, &["./lib/none".into()], true).expect_err("missing");
        assert!(err.to_string().contains("Not found in archive"), "{err}");
    }

    /// dpkg-deb and tar are on every Debian host; elsewhere skip.
    fn debian_tools_missing() -> bool {
        ["dpkg-deb", "tar", "bash"]
            .iter()
            .any(|t| crate::backend::qemu::find_in_path(t).is_none())
    }

    #[test]
    fn private_options_point_into_the_state_dir() {
        let opts = Apt::options(Path::new("/c/apt"), KERNEL_ARCHS);
        let line = shell_line(OsString::from("apt-get"), opts);
        assert!(line.contains("-o Dir::Etc::SourceList=/c/apt/sources.list"));
        assert!(line.contains("-o Dir::Etc::SourceParts=/dev/null"));
        assert!(line.contains("-o Dir::State::Lists=/c/apt/lists"));
        assert!(line.contains("-o APT::Architectures::=amd64 -o APT::Architectures::=arm64"));
    }
}
