//! Which build of a table kernel the L1 boots: the pin (kernels.rs) while
//! the cache or the archive has it, a build the user pins (`--l1
//! debian-7.3=7.3.5+deb13`), or — when neither the cache nor the archive has
//! the pin — the newest build of the same series the archive offers whose
//! packages are all there (the kernel, its modules, and for `--l1-swprot`
//! the headers and a `linux-source` of the same upstream version). What the
//! archive offers is read from the private apt state as `apt-cache madison`
//! prints it; the choice itself is a plain function over that text, tested
//! against a recorded index.

use super::kernels::{KnownL1, deb_arch};
use convtest_proto::arch::Arch;

/// The archive's packages and versions, as `apt-cache madison` lists them
/// (`name[:arch] | version | url suite/component arch Packages`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// (package name without `:arch`, version); madison pads the version.
    entries: Vec<(String, String)>,
}

impl Index {
    pub fn parse_madison(text: &str) -> Index {
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut cols = l.split('|').map(str::trim);
                let name = cols.next()?;
                let version = cols.next()?;
                let name = name.split_once(':').map_or(name, |(n, _)| n);
                (!name.is_empty() && !version.is_empty())
                    .then(|| (name.to_string(), version.to_string()))
            })
            .collect();
        Index { entries }
    }

    pub fn has(&self, package: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == package)
    }

    /// The versions of `package` the archive offers.
    pub fn versions<'a>(&'a self, package: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == package)
            .map(|(_, v)| v.as_str())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The source a `--l1-swprot` kvm.ko is built from: `linux-source-<x.y>`,
/// of the kernel build's upstream version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceNeed {
    pub package: String,
    /// `7.3.4` for build `7.3.4+deb13`.
    pub upstream: String,
}

/// Every package one build needs from the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    pub packages: Vec<String>,
    pub source: Option<SourceNeed>,
}

impl Needs {
    /// What build `abi` of `known` needs on `arch`; with `swprot`, what the
    /// kvm.ko rebuild needs too.
    pub fn of(known: &KnownL1, abi: &str, arch: Arch, swprot: bool) -> Needs {
        let mut packages: Vec<String> = known
            .debs(abi, arch)
            .into_iter()
            .map(|p| {
                p.package
                    .split_once(':')
                    .map_or(p.package.clone(), |(n, _)| n.to_string())
            })
            .collect();
        let source = swprot.then(|| {
            packages.push(format!("linux-headers-{}", known.release_of(abi, arch)));
            let upstream = abi
                .strip_suffix(known.series.suffix)
                .unwrap_or(abi)
                .to_string();
            let series: Vec<&str> = upstream.split('.').take(2).collect();
            SourceNeed {
                package: format!("linux-source-{}", series.join(".")),
                upstream,
            }
        });
        Needs { packages, source }
    }

    /// The source version to fetch, when every package is in `index`
    /// (`Some(None)`: all there, no source needed; `None`: something is
    /// missing).
    pub fn met(&self, index: &Index) -> Option<Option<String>> {
        if !self.packages.iter().all(|p| index.has(p)) {
            return None;
        }
        match &self.source {
            None => Some(None),
            Some(s) => index
                .versions(&s.package)
                .find(|v| v.split('-').next() == Some(s.upstream.as_str()))
                .map(|v| Some(v.to_string())),
        }
    }

    /// `linux-binary-7.3.<n>+deb13-amd64, …`: what was looked for, with the
    /// build number as `<n>`.
    pub fn describe(known: &KnownL1, arch: Arch, swprot: bool) -> String {
        let n = "\u{0}";
        let abi = format!("{}{n}{}", known.series.prefix, known.series.suffix);
        let needs = Needs::of(known, &abi, arch, swprot);
        let mut words: Vec<String> = needs.packages.iter().map(|p| p.replace(n, "<n>")).collect();
        if let Some(s) = needs.source {
            words.push(format!(
                "{} of version {}",
                s.package,
                s.upstream.replace(n, "<n>")
            ));
        }
        words.join(", ")
    }
}

/// How the build was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// The table's pin.
    Pinned,
    /// The user's `--l1 <name>=<abi>`.
    Explicit,
    /// The pin is in neither the cache nor the archive: the newest build of
    /// the series the archive has whole.
    NewestOfSeries { pinned: &'static str },
}

impl How {
    /// The L1 fact word (`l1_build=`).
    pub fn as_str(&self) -> &'static str {
        match self {
            How::Pinned => "pinned",
            How::Explicit => "explicit",
            How::NewestOfSeries { .. } => "newest-of-series",
        }
    }
}

/// A build of a table kernel, and how it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub abi: String,
    pub how: How,
    /// The exact `linux-source` version to fetch (`--l1-swprot`, when the
    /// archive was asked).
    pub source_version: Option<String>,
}

impl Chosen {
    /// The build that was asked for: `explicit` (`--l1 NAME=ABI`) or the pin.
    pub fn asked(abi: &str, explicit: bool, source_version: Option<String>) -> Chosen {
        Chosen {
            abi: abi.to_string(),
            how: if explicit { How::Explicit } else { How::Pinned },
            source_version,
        }
    }
}

/// The newest build of `known`'s series on `arch` whose packages are all in
/// `index`; `None` when the archive has none whole.
pub fn newest(known: &KnownL1, arch: Arch, swprot: bool, index: &Index) -> Option<Chosen> {
    let mut builds: Vec<(u64, String)> = index
        .names()
        .filter_map(|n| known.kernel_package_build(n, arch))
        .collect();
    builds.sort();
    builds.dedup();
    builds.into_iter().rev().find_map(|(_, abi)| {
        let source = Needs::of(known, &abi, arch, swprot).met(index)?;
        Some(Chosen {
            how: if abi == known.abi {
                How::Pinned
            } else {
                How::NewestOfSeries { pinned: known.abi }
            },
            abi,
            source_version: source,
        })
    })
}

/// The build to boot when the cache has none of the asked one, from what
/// the archive offers: the asked build (the pin, or `explicit`) if it is
/// whole there; else, for the pin only, the newest whole build of the
/// series. `Err` says what was looked for.
pub fn from_archive(
    known: &KnownL1,
    arch: Arch,
    swprot: bool,
    explicit: Option<&str>,
    index: &Index,
) -> Result<Chosen, String> {
    let asked = explicit.unwrap_or(known.abi);
    if let Some(source) = Needs::of(known, asked, arch, swprot).met(index) {
        return Ok(Chosen::asked(asked, explicit.is_some(), source));
    }
    let wanted = Needs::of(known, asked, arch, swprot);
    let mut listed = wanted.packages.clone();
    if let Some(s) = &wanted.source {
        listed.push(format!("{} of version {}", s.package, s.upstream));
    }
    if explicit.is_some() {
        return Err(format!(
            "the build {asked} is in neither the cache nor {}: it needs {}",
            known.suite.name,
            listed.join(", ")
        ));
    }
    newest(known, arch, swprot, index).ok_or_else(|| {
        format!(
            "the pinned build {asked} is in neither the cache nor {} ({}), and {} has no other \
             build of the series {} with all of {}",
            known.suite.name,
            listed.join(", "),
            known.suite.name,
            known.series.pattern(),
            Needs::describe(known, arch, swprot)
        )
    })
}

/// The `l1_build` / `l1_pinned` facts the L1 prints (JSON `l1{}`).
pub fn facts(chosen: &Chosen, known: &KnownL1) -> Vec<(String, String)> {
    vec![
        ("l1_build".into(), chosen.how.as_str().into()),
        ("l1_abi".into(), chosen.abi.clone()),
        ("l1_pinned".into(), known.abi.into()),
    ]
}

/// The loud line for a build that is not the pin.
pub fn warning(chosen: &Chosen, known: &KnownL1, arch: Arch) -> Option<String> {
    match chosen.how {
        How::NewestOfSeries { pinned } => Some(format!(
            "convtest: WARNING: --l1 {name}: the pinned build {pinned} is in neither the cache nor \
             {suite}; booting the newest build of the series there instead, {abi} ({rel}). Results \
             are not comparable with runs on the pin; pin this one with --l1 {name}={abi}",
            name = known.name.as_str(),
            suite = known.suite.name,
            abi = chosen.abi,
            rel = known.release_of(&chosen.abi, arch),
        )),
        How::Pinned | How::Explicit => None,
    }
}

/// The apt-cache `pkgnames` prefixes whose packages the index needs.
pub fn prefixes(known: &KnownL1, arch: Arch, swprot: bool) -> Vec<String> {
    let _ = deb_arch(arch);
    let mut v: Vec<String> = Needs::of(known, "\u{0}", arch, swprot)
        .packages
        .iter()
        .filter_map(|p| p.split_once('\u{0}').map(|(head, _)| head.to_string()))
        .map(|head| format!("{head}{}", known.series.prefix))
        .collect();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nested::kernels::{L1Name, known};

    /// `apt-cache madison` of every linux-binary/-modules/-headers-7.3*,
    /// linux-image-6.12*/6.1.0*-unsigned and linux-source-* package of the
    /// private apt state (trixie-backports + bookworm-security), recorded
    /// on 2026-12-07 (host-runner/tests/fixtures/debian-index.madison).
    const RECORDED: &str = include_str!("../../../tests/fixtures/debian-index.madison");

    /// The recorded index without any package of `abi`: the archive after
    /// Debian dropped that build.
    fn without(abi: &str) -> Index {
        let text: String = RECORDED
            .lines()
            .filter(|l| !l.contains(abi))
            .map(|l| format!("{l}\n"))
            .collect();
        Index::parse_madison(&text)
    }

    fn index() -> Index {
        Index::parse_madison(RECORDED)
    }

    #[test]
    fn the_recorded_index_has_every_pin() {
        for k in crate::backend::nested::kernels::KNOWN_L1 {
            for arch in [Arch::X86_64, Arch::Aarch64]
                .into_iter()
                .filter(|&a| k.supports(a))
            {
                let c = from_archive(&k, arch, false, None, &index()).expect("pinned");
                assert_eq!(
                    (c.abi.as_str(), &c.how),
                    (k.abi, &How::Pinned),
                    "{:?}",
                    k.name
                );
            }
        }
        let c = from_archive(known(L1Name::Debian73), Arch::X86_64, true, None, &index())
            .expect("swprot");
        assert_eq!(c.source_version.as_deref(), Some("7.3.4-1~bpo13+1"));
    }

    #[test]
    fn a_missing_pin_takes_the_newest_build_of_the_series() {
        let k = known(L1Name::Debian612);
        let idx = without(k.abi);
        let c = from_archive(k, Arch::X86_64, false, None, &idx).expect("newest");
        assert_eq!(c.abi, "6.12.118+deb12");
        assert_eq!(c.how, How::NewestOfSeries { pinned: k.abi });
        let w = warning(&c, k, Arch::X86_64).expect("loud");
        assert!(
            w.contains(
                "the pinned build 6.12.117+deb12 is in neither the cache nor bookworm-security"
            ) && w.contains("6.12.118+deb12 (6.12.118+deb12-amd64)")
                && w.contains("--l1 debian-6.12=6.12.118+deb12"),
            "{w}"
        );
        let k61 = known(L1Name::Debian61);
        let c = from_archive(k61, Arch::Aarch64, false, None, &without(k61.abi)).expect("6.1");
        assert_eq!(c.abi, "6.1.0-56", "the newest of what remains");
        assert_eq!(
            facts(&c, k61),
            [
                ("l1_build".to_string(), "newest-of-series".to_string()),
                ("l1_abi".into(), "6.1.0-56".into()),
                ("l1_pinned".into(), "6.1.0-57".into())
            ]
        );
    }

    #[test]
    fn kernel_modules_headers_and_source_come_from_one_build() {
        let k = known(L1Name::Debian73);
        // A later build whose source is not (yet) there, and one whole.
        let text = format!(
            "{}\
             linux-binary-7.3.9+deb13-amd64 | 7.3.9-1~bpo13+1 | u trixie-backports/main amd64 Packages\n\
             linux-modules-7.3.9+deb13-amd64 | 7.3.9-1~bpo13+1 | u trixie-backports/main amd64 Packages\n\
             linux-headers-7.3.9+deb13-amd64 | 7.3.9-1~bpo13+1 | u trixie-backports/main amd64 Packages\n\
             linux-binary-7.3.7+deb13-amd64 | 7.3.7-1~bpo13+1 | u trixie-backports/main amd64 Packages\n\
             linux-modules-7.3.7+deb13-amd64 | 7.3.7-1~bpo13+1 | u trixie-backports/main amd64 Packages\n\
             linux-headers-7.3.7+deb13-amd64 | 7.3.7-1~bpo13+1 | u trixie-backports/main amd64 Packages\n\
             linux-source-7.3 | 7.3.7-1~bpo13+1 | u trixie-backports/main amd64 Packages\n",
            RECORDED
                .lines()
                .filter(|l| !l.contains("7.3.4"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
        let idx = Index::parse_madison(&text);
        let plain = from_archive(k, Arch::X86_64, false, None, &idx).expect("kernel only");
        assert_eq!(plain.abi, "7.3.9+deb13");
        let swprot = from_archive(k, Arch::X86_64, true, None, &idx).expect("with source");
        assert_eq!(swprot.abi, "7.3.7+deb13");
        assert_eq!(swprot.source_version.as_deref(), Some("7.3.7-1~bpo13+1"));
    }

    #[test]
    fn no_build_of_the_series_names_what_was_looked_for() {
        let k = known(L1Name::Debian73);
        let why = from_archive(k, Arch::X86_64, true, None, &without("7.3.4"))
            .expect_err("nothing of 7.3 left");
        assert!(
            why.contains(
                "the pinned build 7.3.4+deb13 is in neither the cache nor trixie-backports"
            ) && why.contains("no other build of the series 7.3.<n>+deb13")
                && why.contains("linux-binary-7.3.<n>+deb13-amd64")
                && why.contains("linux-modules-7.3.<n>+deb13-amd64")
                && why.contains("linux-headers-7.3.<n>+deb13-amd64")
                && why.contains("linux-source-7.3 of version 7.3.<n>"),
            "{why}"
        );
    }

    #[test]
    fn an_explicit_pin_never_falls_back() {
        let k = known(L1Name::Debian612);
        let c = from_archive(k, Arch::X86_64, false, Some("6.12.115+deb12"), &index())
            .expect("older build still there");
        assert_eq!((c.abi.as_str(), c.how), ("6.12.115+deb12", How::Explicit));
        let why = from_archive(k, Arch::X86_64, false, Some("6.12.999+deb12"), &index())
            .expect_err("not there");
        assert!(
            why.contains("6.12.999+deb12 is in neither the cache nor bookworm-security")
                && why.contains("linux-image-6.12.999+deb12-amd64-unsigned"),
            "{why}"
        );
    }

    #[test]
    fn prefixes_are_what_apt_cache_pkgnames_is_asked() {
        assert_eq!(
            prefixes(known(L1Name::Debian73), Arch::X86_64, true),
            [
                "linux-binary-7.3.",
                "linux-modules-7.3.",
                "linux-headers-7.3."
            ]
        );
        assert_eq!(
            prefixes(known(L1Name::Debian61), Arch::Aarch64, false),
            ["linux-image-6.1.0-"]
        );
    }
}
