//! The Debian kernels `--l1` can boot, pinned in one table: which suite has
//! them, which packages carry the kernel and the KVM modules, what the L1's
//! `uname -r` prints. Names, packages and sizes were read with `apt-cache`
//! against the private apt state (apt.rs). The pin is the default; when
//! Debian moves a kernel on (bookworm-security keeps only its newest
//! build) and the cache does not have it either, the newest build of the
//! same series is taken instead, loudly (build.rs, series.rs).

use clap::ValueEnum;
use convtest_proto::arch::Arch;

/// A Debian kernel the nested L1 can boot (`--l1`); what each one is
/// (suite, packages, release) is [`KNOWN_L1`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ValueEnum)]
pub enum L1Name {
    /// 7.3.4+deb13 (trixie-backports; amd64 ~121 MB): guest_memfd; arm64
    /// protected VMs; the only one with --l1-swprot.
    #[default]
    #[value(name = "debian-7.3")]
    Debian73,
    /// 6.12.117+deb12 (bookworm-security; amd64 ~107 MB): no guest_memfd on a
    /// default VM; arm64 runs pKVM but has no protected VM type.
    #[value(name = "debian-6.12")]
    Debian612,
    /// 6.1.0-57, Debian 12's own (bookworm-security; amd64 ~71 MB): no guest_memfd
    /// and no KVM_SET_USER_MEMORY_REGION2.
    #[value(name = "debian-6.1")]
    Debian61,
    /// 7.3.4+deb13 built with 16 KiB pages (trixie-backports' `arm64-16k`
    /// flavour; arm64 only, ~12 MB): pKVM with a 16 KiB granule.
    #[value(name = "debian-7.3-16k")]
    Debian73_16k,
}

impl L1Name {
    pub const ALL: [L1Name; 4] = [
        L1Name::Debian73,
        L1Name::Debian612,
        L1Name::Debian61,
        L1Name::Debian73_16k,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            L1Name::Debian73 => "debian-7.3",
            L1Name::Debian612 => "debian-6.12",
            L1Name::Debian61 => "debian-6.1",
            L1Name::Debian73_16k => "debian-7.3-16k",
        }
    }
}

/// A Debian suite the private sources list reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub name: &'static str,
    pub url: &'static str,
}

pub const TRIXIE_BACKPORTS: Suite = Suite {
    name: "trixie-backports",
    url: "http://deb.debian.org/debian",
};
pub const BOOKWORM_SECURITY: Suite = Suite {
    name: "bookworm-security",
    url: "http://deb.debian.org/debian-security",
};

/// How Debian packages a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 7.x: `linux-image-<rel>` is a meta package; `linux-binary-<rel>` has
    /// `usr/lib/modules/<rel>/vmlinuz`, `linux-modules-<rel>` the modules
    /// under `usr/lib/modules/<rel>/kernel/`.
    Split,
    /// 6.x: one `linux-image-<rel>-unsigned` with `boot/vmlinuz-<rel>` and
    /// `lib/modules/<rel>/kernel/` (the signed `linux-image-<rel>` has the
    /// same files, signed).
    Classic,
}

/// The modules x86 /dev/kvm needs under TCG's emulated AMD CPU, without
/// the `.ko` / `.ko.xz` suffix (6.1 ships plain .ko, later ones .ko.xz).
/// Their `depends=` close over this set in all three kernels (irqbypass ←
/// kvm; kvm, ccp ← kvm-amd); `hw_random` is built in, so ccp needs no
/// rng-core. The fetch checks the closure again.
pub const AMD64_KVM_MODULES: [&str; 4] = [
    "kernel/virt/lib/irqbypass",
    "kernel/arch/x86/kvm/kvm",
    "kernel/drivers/crypto/ccp/ccp",
    "kernel/arch/x86/kvm/kvm-amd",
];

/// The builds of one kernel series, by ABI name: `<prefix><n><suffix>`
/// with `n` a number (7.3.4+deb13: `7.3.` 4 `+deb13`; 6.1.0-57: `6.1.0-`
/// 57). A later build has a larger `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    pub prefix: &'static str,
    pub suffix: &'static str,
}

impl Series {
    /// The build number of `abi`, if `abi` is a build of this series.
    pub fn number(&self, abi: &str) -> Option<u64> {
        let n = abi.strip_prefix(self.prefix)?.strip_suffix(self.suffix)?;
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.parse().ok())
            .flatten()
    }

    /// `7.3.<n>+deb13`: how a person reads the pattern.
    pub fn pattern(&self) -> String {
        format!("{}<n>{}", self.prefix, self.suffix)
    }
}

/// One arch of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchBuild {
    pub arch: Arch,
    /// What the first fetch downloads, in MB (the .debs, for the message).
    pub download_mb: u32,
    /// Modules to load, in the kernel's tree (arm64 builds KVM in).
    pub modules: &'static [&'static str],
}

/// A Debian kernel the L1 can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownL1 {
    pub name: L1Name,
    /// Debian's kernel ABI name of the pinned build; the release is
    /// `<abi>-<debian arch>`.
    pub abi: &'static str,
    /// The builds that may stand in for the pin (same upstream series).
    pub series: Series,
    pub suite: Suite,
    pub layout: Layout,
    pub arches: &'static [ArchBuild],
    /// `--l1-swprot` has a kvm.ko rebuild recipe for this kernel.
    pub swprot: bool,
    /// Debian's flavour suffix after the arch (`-16k`), or empty.
    pub flavour: &'static str,
}

/// Every kernel `--l1` names, the default first. Package versions when
/// pinned: 7.3.4-1~bpo13+1, 6.12.117-1~deb12u1, 6.1.192-3.
pub const KNOWN_L1: [KnownL1; 4] = [
    KnownL1 {
        name: L1Name::Debian73,
        abi: "7.3.4+deb13",
        series: Series {
            prefix: "7.3.",
            suffix: "+deb13",
        },
        suite: TRIXIE_BACKPORTS,
        layout: Layout::Split,
        arches: &[
            // linux-binary 14.1 MB + linux-modules 106.9 MB.
            ArchBuild {
                arch: Arch::X86_64,
                download_mb: 121,
                modules: &AMD64_KVM_MODULES,
            },
            // linux-binary only (12.2 MB).
            ArchBuild {
                arch: Arch::Aarch64,
                download_mb: 12,
                modules: &[],
            },
        ],
        swprot: true,
        flavour: "",
    },
    KnownL1 {
        name: L1Name::Debian612,
        abi: "6.12.117+deb12",
        series: Series {
            prefix: "6.12.",
            suffix: "+deb12",
        },
        suite: BOOKWORM_SECURITY,
        layout: Layout::Classic,
        arches: &[
            ArchBuild {
                arch: Arch::X86_64,
                download_mb: 107,
                modules: &AMD64_KVM_MODULES,
            },
            ArchBuild {
                arch: Arch::Aarch64,
                download_mb: 93,
                modules: &[],
            },
        ],
        swprot: false,
        flavour: "",
    },
    KnownL1 {
        name: L1Name::Debian61,
        abi: "6.1.0-57",
        series: Series {
            prefix: "6.1.0-",
            suffix: "",
        },
        suite: BOOKWORM_SECURITY,
        layout: Layout::Classic,
        arches: &[
            ArchBuild {
                arch: Arch::X86_64,
                download_mb: 71,
                modules: &AMD64_KVM_MODULES,
            },
            ArchBuild {
                arch: Arch::Aarch64,
                download_mb: 60,
                modules: &[],
            },
        ],
        swprot: false,
        flavour: "",
    },
    KnownL1 {
        name: L1Name::Debian73_16k,
        abi: "7.3.4+deb13",
        series: Series {
            prefix: "7.3.",
            suffix: "+deb13",
        },
        suite: TRIXIE_BACKPORTS,
        layout: Layout::Split,
        // linux-binary only (12.2 MB): KVM is built in.
        arches: &[ArchBuild {
            arch: Arch::Aarch64,
            download_mb: 12,
            modules: &[],
        }],
        swprot: false,
        flavour: "-16k",
    },
];

/// The table entry of `name` (every name has one: a test pins it).
pub fn known(name: L1Name) -> &'static KnownL1 {
    KNOWN_L1
        .iter()
        .find(|k| k.name == name)
        .unwrap_or(&KNOWN_L1[0])
}

pub fn deb_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Aarch64 => "arm64",
    }
}

/// One .deb to fetch and the files to take out of it (tar patterns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebPart {
    /// `name:arch`, as `apt-get download` takes it.
    pub package: String,
    pub members: Vec<String>,
}

impl KnownL1 {
    /// This kernel on `arch`, if Debian builds it there.
    pub fn build(&self, arch: Arch) -> Option<&'static ArchBuild> {
        self.arches.iter().find(|b| b.arch == arch)
    }

    pub fn supports(&self, arch: Arch) -> bool {
        self.build(arch).is_some()
    }

    /// `6.12.117+deb12-amd64`, `7.3.4+deb13-arm64-16k`: what `uname -r` prints in the L1 (of the
    /// pinned build), the package name suffix and the cache directory's name.
    pub fn release(&self, arch: Arch) -> String {
        self.release_of(self.abi, arch)
    }

    /// The release of build `abi`.
    pub fn release_of(&self, abi: &str, arch: Arch) -> String {
        format!("{abi}-{}{}", deb_arch(arch), self.flavour)
    }

    /// Where the kernel of build `abi` is inside the unpacked packages.
    pub fn kernel_path(&self, abi: &str, arch: Arch) -> String {
        let rel = self.release_of(abi, arch);
        match self.layout {
            Layout::Split => format!("usr/lib/modules/{rel}/vmlinuz"),
            Layout::Classic => format!("boot/vmlinuz-{rel}"),
        }
    }

    /// The module tree of build `abi` inside the unpacked packages.
    pub fn modules_root(&self, abi: &str, arch: Arch) -> String {
        let rel = self.release_of(abi, arch);
        match self.layout {
            Layout::Split => format!("usr/lib/modules/{rel}"),
            Layout::Classic => format!("lib/modules/{rel}"),
        }
    }

    /// The build number in a package name of `arch` that carries the
    /// kernel (`linux-binary-7.3.5+deb13-amd64` → 5), if it is one of
    /// this series' in this entry's flavour (other flavours, such as
    /// `-cloud-` or another entry's `-16k`, are not).
    pub fn kernel_package_build(&self, name: &str, arch: Arch) -> Option<(u64, String)> {
        let (head, tail) = match self.layout {
            Layout::Split => ("linux-binary-", String::new()),
            Layout::Classic => ("linux-image-", "-unsigned".to_string()),
        };
        let abi = name
            .strip_prefix(head)?
            .strip_suffix(tail.as_str())?
            .strip_suffix(self.flavour)?
            .strip_suffix(deb_arch(arch))?
            .strip_suffix('-')?;
        Some((self.series.number(abi)?, abi.to_string()))
    }

    /// The .debs of build `abi` for `arch` and what to extract from each.
    pub fn debs(&self, abi: &str, arch: Arch) -> Vec<DebPart> {
        let rel = self.release_of(abi, arch);
        let darch = deb_arch(arch);
        // Debian's data.tar names every member `./…`.
        let kernel = vec![format!("./{}", self.kernel_path(abi, arch))];
        let root = self.modules_root(abi, arch);
        let modules: Vec<String> = self
            .build(arch)
            .map(|b| b.modules)
            .unwrap_or_default()
            .iter()
            .map(|m| format!("./{root}/{m}.ko*"))
            .collect();
        match self.layout {
            Layout::Split => {
                let mut parts = vec![DebPart {
                    package: format!("linux-binary-{rel}:{darch}"),
                    members: kernel,
                }];
                if !modules.is_empty() {
                    parts.push(DebPart {
                        package: format!("linux-modules-{rel}:{darch}"),
                        members: modules,
                    });
                }
                parts
            }
            Layout::Classic => vec![DebPart {
                package: format!("linux-image-{rel}-unsigned:{darch}"),
                members: kernel.into_iter().chain(modules).collect(),
            }],
        }
    }
}

/// The suites the private sources list reads: every one the table names.
pub fn suites() -> Vec<Suite> {
    let mut out: Vec<Suite> = Vec::new();
    for k in &KNOWN_L1 {
        if !out.contains(&k.suite) {
            out.push(k.suite);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_name_has_one_entry_named_like_the_cli() {
        assert_eq!(KNOWN_L1.len(), L1Name::ALL.len());
        for name in L1Name::ALL {
            assert_eq!(KNOWN_L1.iter().filter(|k| k.name == name).count(), 1);
            assert_eq!(known(name).name, name);
            let clap_name = name.to_possible_value().expect("visible");
            assert_eq!(clap_name.get_name(), name.as_str());
        }
        assert_eq!(known(L1Name::default()).name, L1Name::Debian73);
        assert_eq!(KNOWN_L1[0].name, L1Name::default(), "default first");
    }

    #[test]
    fn releases_are_what_uname_prints() {
        let rel = |n, a| known(n).release(a);
        assert_eq!(rel(L1Name::Debian73, Arch::X86_64), "7.3.4+deb13-amd64");
        assert_eq!(rel(L1Name::Debian73, Arch::Aarch64), "7.3.4+deb13-arm64");
        assert_eq!(rel(L1Name::Debian612, Arch::X86_64), "6.12.117+deb12-amd64");
        assert_eq!(rel(L1Name::Debian61, Arch::Aarch64), "6.1.0-57-arm64");
    }

    #[test]
    fn every_kernel_runs_on_both_arches_and_only_7_3_has_swprot() {
        for k in KNOWN_L1.iter().filter(|k| k.flavour.is_empty()) {
            assert!(k.supports(Arch::X86_64) && k.supports(Arch::Aarch64));
            let x86 = k.build(Arch::X86_64).expect("x86");
            assert_eq!(x86.modules, AMD64_KVM_MODULES, "{:?}", k.name);
            assert!(k.build(Arch::Aarch64).expect("arm").modules.is_empty());
            assert_eq!(k.swprot, k.name == L1Name::Debian73);
        }
    }

    #[test]
    fn the_16k_flavour_is_arm64_only_and_named_like_debian() {
        let k = known(L1Name::Debian73_16k);
        assert!(!k.supports(Arch::X86_64) && !k.swprot);
        assert_eq!(k.release(Arch::Aarch64), "7.3.4+deb13-arm64-16k");
        assert_eq!(
            k.debs(k.abi, Arch::Aarch64),
            [DebPart {
                package: "linux-binary-7.3.4+deb13-arm64-16k:arm64".into(),
                members: vec!["./usr/lib/modules/7.3.4+deb13-arm64-16k/vmlinuz".into()],
            }]
        );
    }

    #[test]
    fn split_layout_takes_two_debs() {
        let k = known(L1Name::Debian73);
        let parts = k.debs(k.abi, Arch::X86_64);
        assert_eq!(
            parts[0],
            DebPart {
                package: "linux-binary-7.3.4+deb13-amd64:amd64".into(),
                members: vec!["./usr/lib/modules/7.3.4+deb13-amd64/vmlinuz".into()],
            }
        );
        assert_eq!(parts[1].package, "linux-modules-7.3.4+deb13-amd64:amd64");
        assert_eq!(
            parts[1].members[1],
            "./usr/lib/modules/7.3.4+deb13-amd64/kernel/arch/x86/kvm/kvm.ko*"
        );
        assert_eq!(parts.len(), 2);
        // arm64: KVM is built in, the binary deb is all.
        let arm = k.debs(k.abi, Arch::Aarch64);
        assert_eq!(arm.len(), 1);
        assert_eq!(arm[0].package, "linux-binary-7.3.4+deb13-arm64:arm64");
    }

    #[test]
    fn classic_layout_takes_one_deb() {
        let k = known(L1Name::Debian612);
        let parts = k.debs(k.abi, Arch::X86_64);
        assert_eq!(parts.len(), 1);
        assert_eq!(
            parts[0].package,
            "linux-image-6.12.117+deb12-amd64-unsigned:amd64"
        );
        assert_eq!(
            parts[0].members,
            [
                "./boot/vmlinuz-6.12.117+deb12-amd64",
                "./lib/modules/6.12.117+deb12-amd64/kernel/virt/lib/irqbypass.ko*",
                "./lib/modules/6.12.117+deb12-amd64/kernel/arch/x86/kvm/kvm.ko*",
                "./lib/modules/6.12.117+deb12-amd64/kernel/drivers/crypto/ccp/ccp.ko*",
                "./lib/modules/6.12.117+deb12-amd64/kernel/arch/x86/kvm/kvm-amd.ko*",
            ]
        );
        let k61 = known(L1Name::Debian61);
        let arm = k61.debs(k61.abi, Arch::Aarch64);
        assert_eq!(
            arm,
            [DebPart {
                package: "linux-image-6.1.0-57-arm64-unsigned:arm64".into(),
                members: vec!["./boot/vmlinuz-6.1.0-57-arm64".into()],
            }]
        );
        assert_eq!(
            k.modules_root(k.abi, Arch::X86_64),
            "lib/modules/6.12.117+deb12-amd64"
        );
    }

    #[test]
    fn every_pin_is_a_build_of_its_series_and_flavours_are_not() {
        for k in &KNOWN_L1 {
            assert!(k.series.number(k.abi).is_some(), "{:?}", k.name);
        }
        let k73 = known(L1Name::Debian73);
        assert_eq!(k73.series.number("7.3.12+deb13"), Some(12));
        for other in ["7.4.1+deb13", "7.3.4+deb12", "7.3.+deb13", "7.3.4a+deb13"] {
            assert_eq!(k73.series.number(other), None, "{other}");
        }
        assert_eq!(
            k73.kernel_package_build("linux-binary-7.3.5+deb13-amd64", Arch::X86_64),
            Some((5, "7.3.5+deb13".into()))
        );
        for not in [
            "linux-binary-7.3.5+deb13-cloud-amd64",
            "linux-binary-7.3.5+deb13-amd64",
            "linux-modules-7.3.5+deb13-arm64",
        ] {
            assert_eq!(k73.kernel_package_build(not, Arch::Aarch64), None, "{not}");
        }
        let k61 = known(L1Name::Debian61);
        assert_eq!(
            k61.kernel_package_build("linux-image-6.1.0-58-arm64-unsigned", Arch::Aarch64),
            Some((58, "6.1.0-58".into()))
        );
        assert_eq!(
            k61.kernel_package_build("linux-image-6.1.0-58-rt-arm64-unsigned", Arch::Aarch64),
            None
        );
        assert_eq!(k73.series.pattern(), "7.3.<n>+deb13");
    }

    #[test]
    fn suites_are_the_tables_once_each() {
        assert_eq!(suites(), [TRIXIE_BACKPORTS, BOOKWORM_SECURITY]);
    }
}
