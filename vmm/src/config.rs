//! What one VMM run is asked to do: plain values, no command-line syntax.
//! The runner's CLI fills them from its flags; the L1's /init reads them
//! from an argv file (argv.rs); both name every choice by its [`Keyword`].

use convtest_proto::arch::Arch;
use convtest_proto::keyword::Keyword;
use convtest_proto::plan::{Content, ResetPolicy};
use std::path::PathBuf;

/// One guest, booted once or through a planned reboot series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmmConfig {
    /// The guest's architecture; None: this host's.
    pub arch: Option<Arch>,
    /// x86_64 PVH ELF or arm64 Image.
    pub kernel: PathBuf,
    /// The guest's command line (its plan).
    pub cmdline: String,
    /// Guest RAM in MiB ([`MEMORY_MIB`]).
    pub memory_mib: u32,
    /// vCPUs ([`VCPUS`]), one thread each.
    pub vcpus: u32,
    pub options: VmmOptions,
}

/// The accepted range of [`VmmConfig::memory_mib`].
pub const MEMORY_MIB: std::ops::RangeInclusive<u32> = 32..=3072;
/// The accepted range of [`VmmConfig::vcpus`].
pub const VCPUS: std::ops::RangeInclusive<u32> = 1..=64;

/// The choices a run makes about the VMM itself, the same for every guest
/// of a run (a mutants lane varies only `faults`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmmOptions {
    /// What a conversion does to a page's bytes where the memory mode lets
    /// the VMM choose; None: the mode's own default.
    pub content: Option<Content>,
    /// x86: which memory the VM gets.
    pub memory: MemoryKind,
    /// arm64: which VM type.
    pub vm_type: VmType,
    /// A single KVM_RUN lasting this many seconds (≥ 1) is a hang.
    pub vcpu_watchdog_s: u64,
    /// Deliberate VMM bugs ([`check_faults`] says which combine).
    pub faults: Vec<VmmFault>,
    /// What the VMM does to guest memory on a planned reset.
    pub reset_policy: ResetPolicy,
    /// arm64: whose machine the guest sees.
    pub layout: Layout,
    /// arm64: whether the word console is served or refused.
    pub console: ConsoleKind,
}

impl Default for VmmOptions {
    fn default() -> Self {
        VmmOptions {
            content: None,
            memory: MemoryKind::Auto,
            vm_type: VmType::Auto,
            vcpu_watchdog_s: 60,
            faults: Vec::new(),
            reset_policy: ResetPolicy::Keep,
            layout: Layout::Convtest,
            console: ConsoleKind::Word,
        }
    }
}

/// arm64: the memory map and device tree the guest boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The own VMM's: a 16550 at 0x0900_0000, only the nodes it backs
    /// (aarch64/fdt.rs).
    Convtest,
    /// crosvm's, as on an Android board (crosvm_layout.rs).
    Crosvm,
}

impl Keyword for Layout {
    const ALL: &'static [Self] = &[Layout::Convtest, Layout::Crosvm];
    fn as_str(self) -> &'static str {
        match self {
            Layout::Convtest => "convtest",
            Layout::Crosvm => "crosvm",
        }
    }
}

/// arm64: the console the VMM serves the guest. Both are in the device
/// tree; the guest takes the word console when the VMM answers its ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleKind {
    /// The word console (up to eight bytes per MMIO access), the 16550 beside it.
    Word,
    /// The word console refuses (its ID reads 0): the guest falls back to the 16550.
    Uart,
}

impl Keyword for ConsoleKind {
    const ALL: &'static [Self] = &[ConsoleKind::Word, ConsoleKind::Uart];
    fn as_str(self) -> &'static str {
        match self {
            ConsoleKind::Word => "word",
            ConsoleKind::Uart => "uart",
        }
    }
}

/// x86 guest memory as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// sw-protected when the host offers it, else emulated-private.
    Auto,
    /// guest_memfd + KVM_SET_MEMORY_ATTRIBUTES (KVM_X86_SW_PROTECTED_VM).
    SwProtected,
    /// A default VM whose VMM tracks private pages and refuses to touch them.
    EmulatedPrivate,
}

impl Keyword for MemoryKind {
    const ALL: &'static [Self] = &[
        MemoryKind::Auto,
        MemoryKind::SwProtected,
        MemoryKind::EmulatedPrivate,
    ];
    fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Auto => "auto",
            MemoryKind::SwProtected => "sw-protected",
            MemoryKind::EmulatedPrivate => "emulated-private",
        }
    }
}

/// arm64 VM type as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmType {
    /// Protected when the host runs pKVM, else normal.
    Auto,
    /// KVM_VM_TYPE_ARM_PROTECTED (pKVM).
    Protected,
    Normal,
}

impl Keyword for VmType {
    const ALL: &'static [Self] = &[VmType::Auto, VmType::Protected, VmType::Normal];
    fn as_str(self) -> &'static str {
        match self {
            VmType::Auto => "auto",
            VmType::Protected => "protected",
            VmType::Normal => "normal",
        }
    }
}

/// A deliberate VMM bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmmFault {
    Ignore,
    Deny,
    Partial,
    Leak,
    WrongContent,
    Garbage,
    NoReset,
}

impl Keyword for VmmFault {
    const ALL: &'static [Self] = &[
        VmmFault::Ignore,
        VmmFault::Deny,
        VmmFault::Partial,
        VmmFault::Leak,
        VmmFault::WrongContent,
        VmmFault::Garbage,
        VmmFault::NoReset,
    ];

    fn as_str(self) -> &'static str {
        match self {
            VmmFault::Ignore => "ignore",
            VmmFault::Deny => "deny",
            VmmFault::Partial => "partial",
            VmmFault::Leak => "leak",
            VmmFault::WrongContent => "wrong-content",
            VmmFault::Garbage => "garbage",
            VmmFault::NoReset => "no-reset",
        }
    }

    fn help(self) -> &'static str {
        match self {
            VmmFault::Ignore => "Answer 0 and change nothing",
            VmmFault::Deny => "Answer an error (-EPERM) and change nothing",
            VmmFault::Partial => {
                "Convert the first half of the pages that would flip, answer an error (-EAGAIN)"
            }
            VmmFault::Leak => {
                "Answer 0 to a to-private request but leave the pages shared (host-visible)"
            }
            VmmFault::WrongContent => {
                "Zero the pages that flip where preserve was promised, keep them where zero was"
            }
            VmmFault::Garbage => {
                "Answer a value that is no errno (0x1_0000_0000) and change nothing"
            }
            VmmFault::NoReset => {
                "On a guest reset, claim the --reset-policy (the guest is told it) but do nothing: \
                 memory stays as the last boot left it"
            }
        }
    }
}

impl VmmFault {
    /// Faults that decide the answer to a request (at most one at a time).
    pub fn decides_answer(self) -> bool {
        !matches!(self, VmmFault::WrongContent | VmmFault::NoReset)
    }

    /// Faults that act on conversion requests (the rest act on resets).
    pub fn on_requests(self) -> bool {
        !matches!(self, VmmFault::NoReset)
    }
}

/// Two faults that would each decide the answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--vmm-fault {}: each of these decides the answer to a request; give at most one \
     (wrong-content combines with any)",
    .0.join(",")
)]
pub struct ConflictingFaults(pub Vec<&'static str>);

/// Rejects fault sets that contradict themselves.
pub fn check_faults(faults: &[VmmFault]) -> Result<(), ConflictingFaults> {
    let answers: Vec<&'static str> = faults
        .iter()
        .filter(|f| f.decides_answer())
        .map(|f| f.as_str())
        .collect();
    if answers.len() > 1 {
        return Err(ConflictingFaults(answers));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_fault_decides_an_answer() {
        let e = check_faults(&[VmmFault::Ignore, VmmFault::Deny]).unwrap_err();
        assert!(e.to_string().contains("ignore,deny"), "{e}");
        assert!(check_faults(&[VmmFault::Leak, VmmFault::WrongContent, VmmFault::NoReset]).is_ok());
        for f in VmmFault::ALL {
            assert_eq!(VmmFault::from_word(f.as_str()), Some(*f));
            assert!(!f.help().is_empty());
        }
    }
}
