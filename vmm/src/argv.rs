//! A [`VmmConfig`] as command-line words and back: how the runner hands a
//! run to the VMM process (`convtest vmm …` on the host, the L1's run list
//! inside the nested lane). The words are the runner's own `convtest vmm`
//! flags, so one argv works for both; the L1's /init reads it here without a
//! command-line crate (it is copied through TCG at every L1 boot).

use crate::config::{
    ConsoleKind, Layout, MEMORY_MIB, MemoryKind, VCPUS, VmType, VmmConfig, VmmFault, VmmOptions,
};
use convtest_proto::arch::Arch;
use convtest_proto::keyword::Keyword;
use convtest_proto::plan::{Content, ResetPolicy};
use std::ffi::OsString;
use std::path::PathBuf;

/// Why an argv is not a VMM run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("{flag} needs a value")]
    MissingValue { flag: &'static str },
    #[error("{flag} {value:?}: {why}")]
    BadValue {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("--kernel is required")]
    NoKernel,
    #[error(transparent)]
    Faults(#[from] crate::config::ConflictingFaults),
}

impl VmmConfig {
    /// The words, every option spelled out (defaults included), so a run's
    /// argv file says everything it was asked. The kernel path stays as the
    /// OS gave it.
    pub fn to_argv(&self) -> Vec<OsString> {
        let o = &self.options;
        let mut a = Vec::new();
        if let Some(arch) = self.arch {
            a.extend(["--arch".into(), arch.as_str().into()]);
        }
        a.extend([
            "--kernel".into(),
            self.kernel.clone().into_os_string(),
            "--cmdline".into(),
            self.cmdline.as_str().into(),
            "--memory".into(),
            self.memory_mib.to_string().into(),
            "--vcpus".into(),
            self.vcpus.to_string().into(),
        ]);
        if let Some(c) = o.content {
            a.extend(["--content".into(), c.as_str().into()]);
        }
        a.extend([
            "--vmm-memory".into(),
            o.memory.as_str().into(),
            "--vm-type".into(),
            o.vm_type.as_str().into(),
            "--vcpu-watchdog".into(),
            o.vcpu_watchdog_s.to_string().into(),
            "--reset-policy".into(),
            o.reset_policy.as_str().into(),
            "--layout".into(),
            o.layout.as_str().into(),
            "--vmm-console".into(),
            o.console.as_str().into(),
        ]);
        if !o.faults.is_empty() {
            let kinds: Vec<&str> = o.faults.iter().map(|f| f.as_str()).collect();
            a.extend(["--vmm-fault".into(), kinds.join(",").into()]);
        }
        a
    }

    /// Reads what [`VmmConfig::to_argv`] writes (and `--flag=value`).
    pub fn from_argv<S: AsRef<str>>(argv: &[S]) -> Result<VmmConfig, ArgvError> {
        let mut cfg = VmmConfig {
            arch: None,
            kernel: PathBuf::new(),
            cmdline: String::new(),
            memory_mib: 256,
            vcpus: 1,
            options: VmmOptions::default(),
        };
        let mut kernel = None;
        let mut words = argv.iter().map(AsRef::as_ref);
        while let Some(word) = words.next() {
            let (name, inline) = match word.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v)),
                _ => (word, None),
            };
            let flag = FLAGS
                .iter()
                .copied()
                .find(|f| *f == name)
                .ok_or_else(|| ArgvError::Unknown(word.to_string()))?;
            let value = match inline {
                Some(v) => v,
                None => words.next().ok_or(ArgvError::MissingValue { flag })?,
            };
            let bad = |why: &str| ArgvError::BadValue {
                flag,
                value: value.to_string(),
                why: why.to_string(),
            };
            let o = &mut cfg.options;
            match flag {
                "--arch" => cfg.arch = Some(keyword(value).ok_or_else(|| bad(&names::<Arch>()))?),
                "--kernel" => kernel = Some(PathBuf::from(value)),
                "--cmdline" => cfg.cmdline = value.to_string(),
                "--memory" => cfg.memory_mib = number(value, MEMORY_MIB).map_err(|w| bad(&w))?,
                "--vcpus" => cfg.vcpus = number(value, VCPUS).map_err(|w| bad(&w))?,
                "--content" => {
                    o.content =
                        Some(keyword::<Content>(value).ok_or_else(|| bad(&names::<Content>()))?)
                }
                "--vmm-memory" => {
                    o.memory = keyword(value).ok_or_else(|| bad(&names::<MemoryKind>()))?
                }
                "--vm-type" => o.vm_type = keyword(value).ok_or_else(|| bad(&names::<VmType>()))?,
                "--vcpu-watchdog" => {
                    o.vcpu_watchdog_s = number(value, 1..=u64::MAX).map_err(|w| bad(&w))?
                }
                "--reset-policy" => {
                    o.reset_policy = keyword(value).ok_or_else(|| bad(&names::<ResetPolicy>()))?
                }
                "--layout" => o.layout = keyword(value).ok_or_else(|| bad(&names::<Layout>()))?,
                "--vmm-console" => {
                    o.console = keyword(value).ok_or_else(|| bad(&names::<ConsoleKind>()))?
                }
                "--vmm-fault" => {
                    for kind in value.split(',') {
                        let f =
                            keyword::<VmmFault>(kind).ok_or_else(|| bad(&names::<VmmFault>()))?;
                        o.faults.push(f);
                    }
                }
                _ => return Err(ArgvError::Unknown(word.to_string())),
            }
        }
        cfg.kernel = kernel.ok_or(ArgvError::NoKernel)?;
        crate::config::check_faults(&cfg.options.faults)?;
        Ok(cfg)
    }
}

const FLAGS: [&str; 13] = [
    "--arch",
    "--kernel",
    "--cmdline",
    "--memory",
    "--vcpus",
    "--content",
    "--vmm-memory",
    "--vm-type",
    "--vcpu-watchdog",
    "--reset-policy",
    "--layout",
    "--vmm-console",
    "--vmm-fault",
];

fn keyword<K: Keyword>(word: &str) -> Option<K> {
    K::from_word(word)
}

fn names<K: Keyword>() -> String {
    let all: Vec<&str> = K::ALL.iter().map(|k| k.as_str()).collect();
    format!("one of {}", all.join(", "))
}

fn number<T>(value: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match value.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> VmmConfig {
        VmmConfig {
            arch: Some(Arch::Aarch64),
            kernel: "/payload".into(),
            cmdline: "tests=conv.* seed=7".into(),
            memory_mib: 512,
            vcpus: 2,
            options: VmmOptions {
                content: Some(Content::Zero),
                memory: MemoryKind::SwProtected,
                vm_type: VmType::Protected,
                vcpu_watchdog_s: 5,
                faults: vec![VmmFault::Leak, VmmFault::WrongContent],
                reset_policy: ResetPolicy::Recreate,
                layout: Layout::Crosvm,
                console: ConsoleKind::Uart,
            },
        }
    }

    fn words(cfg: &VmmConfig) -> Vec<String> {
        cfg.to_argv()
            .into_iter()
            .map(|w| w.into_string().expect("UTF-8"))
            .collect()
    }

    #[test]
    fn round_trips() {
        let cfg = full();
        assert_eq!(VmmConfig::from_argv(&words(&cfg)), Ok(cfg));
        let bare = VmmConfig::from_argv(&["--kernel", "/k", "--cmdline", ""]).unwrap();
        assert_eq!(bare.options, VmmOptions::default());
        assert_eq!((bare.memory_mib, bare.vcpus, bare.arch), (256, 1, None));
        assert_eq!(VmmConfig::from_argv(&words(&bare)), Ok(bare));
    }

    #[test]
    fn inline_values_and_empty_ones() {
        let cfg = VmmConfig::from_argv(&["--kernel=/k", "--cmdline=", "--vcpus=3"]).unwrap();
        assert_eq!((cfg.cmdline.as_str(), cfg.vcpus), ("", 3));
    }

    #[test]
    fn every_bad_word_is_named() {
        let err = |argv: &[&str]| VmmConfig::from_argv(argv).unwrap_err().to_string();
        assert_eq!(
            err(&["--kernel", "/k", "--nope"]),
            "unknown argument \"--nope\""
        );
        assert_eq!(err(&["--kernel"]), "--kernel needs a value");
        assert_eq!(err(&["--cmdline", "x"]), "--kernel is required");
        assert!(err(&["--kernel", "/k", "--memory", "4"]).contains("32 to 3072"));
        assert!(err(&["--kernel", "/k", "--vcpus", "0"]).contains("1 to 64"));
        assert!(err(&["--kernel", "/k", "--vcpu-watchdog", "0"]).contains("from 1"));
        assert!(err(&["--kernel", "/k", "--arch", "mips"]).contains("x86_64, aarch64"));
        assert!(err(&["--kernel", "/k", "--vmm-fault", "leak,nope"]).contains("no-reset"));
        assert!(err(&["--kernel", "/k", "--vmm-fault", "ignore,deny"]).contains("at most one"));
        assert!(err(&["--kernel", "/k", "--layout", "qemu"]).contains("convtest, crosvm"));
        assert!(err(&["--kernel", "/k", "positional"]).contains("unknown argument"));
    }
}
