//! `# convtest-vmm: key=value …` lines: what the VMM chose and what the host
//! offered, for the runner's JSON `vmm` object and for a human reading the
//! console. Values never contain spaces (they would split the pair).
//!
//! ## Capability facts
//!
//! Every KVM capability a VMM asks about is one fact of its own:
//!
//! ```text
//! cap.<NAME>=<number>:<value>@<fd>
//! cap.KVM_CAP_EXIT_HYPERCALL=201:0x1000@vm
//! cap.KVM_CAP_USER_MEMORY2=231:0x0@kvm
//! ```
//!
//! - `<NAME>` is the uapi macro (`include/uapi/linux/kvm.h`), `<number>` its
//!   value in decimal.
//! - `<value>` is what KVM_CHECK_EXTENSION returned, in hex with a sign:
//!   `0x0` for a capability the kernel does not know, `-0x19` (a negative
//!   errno) when the ioctl itself failed.
//! - `<fd>` is where it was asked: `kvm` (/dev/kvm) or `vm` (the VM fd of
//!   the VM that runs — KVM answers some capabilities per VM type, e.g.
//!   KVM_CAP_MEMORY_ATTRIBUTES is 0x8 on /dev/kvm and 0 on a default x86 VM).
//!
//! `convtest_proto::wire::CapFact` reads one such pair back for the runner.

use std::borrow::Cow;
use std::fmt::{self, Display};
use std::io::Write;

/// The runner's KTAP reader owns the line format.
pub use convtest_proto::wire::VMM_PREFIX as PREFIX;
use convtest_proto::wire::{AskedOn, CAP_PREFIX};

#[derive(Default)]
pub struct Facts {
    pairs: Vec<(Cow<'static, str>, String)>,
}

impl Facts {
    pub fn add(&mut self, key: impl Into<Cow<'static, str>>, value: impl Display) -> &mut Self {
        let v = value.to_string().replace(char::is_whitespace, "_");
        self.pairs
            .push((key.into(), if v.is_empty() { "-".into() } else { v }));
        self
    }

    /// One `cap.<NAME>=…` fact per probed capability, in the order given.
    pub fn caps(&mut self, probed: &[Probed]) -> &mut Self {
        for p in probed {
            self.add(format!("{CAP_PREFIX}{}", p.cap.name), p.fact_value());
        }
        self
    }

    pub fn line(&self) -> String {
        let mut s = PREFIX.trim_end().to_string();
        for (k, v) in &self.pairs {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s.push('\n');
        s
    }

    /// Writes the line to the console stream; the runner being gone is not
    /// the VMM's problem.
    pub fn emit(&self, out: &mut dyn Write) {
        let _ = out
            .write_all(self.line().as_bytes())
            .and_then(|()| out.flush());
    }
}

/// The host kernel release (uname -r), "unknown" when unreadable.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A KVM capability: its uapi name and number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    pub number: u32,
    pub name: &'static str,
}

/// The capabilities the VMMs probe (uapi `include/uapi/linux/kvm.h`, 7.3).
pub mod cap {
    use crate::facts::Cap;

    const fn c(number: u32, name: &'static str) -> Cap {
        Cap { number, name }
    }

    pub const ARM_VM_IPA_SIZE: Cap = c(165, "KVM_CAP_ARM_VM_IPA_SIZE");
    pub const EXIT_HYPERCALL: Cap = c(201, "KVM_CAP_EXIT_HYPERCALL");
    pub const USER_MEMORY2: Cap = c(231, "KVM_CAP_USER_MEMORY2");
    pub const MEMORY_ATTRIBUTES: Cap = c(233, "KVM_CAP_MEMORY_ATTRIBUTES");
    pub const GUEST_MEMFD: Cap = c(234, "KVM_CAP_GUEST_MEMFD");
    pub const VM_TYPES: Cap = c(235, "KVM_CAP_VM_TYPES");
    pub const GUEST_MEMFD_FLAGS: Cap = c(244, "KVM_CAP_GUEST_MEMFD_FLAGS");
}

/// A capability and what KVM_CHECK_EXTENSION said about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probed {
    pub cap: Cap,
    /// The kernel's return value; a failed ioctl as -errno.
    pub value: i32,
    pub on: AskedOn,
}

impl Probed {
    /// Has the capability, with every bit of `bits` set (0: just > 0).
    pub fn has(&self, bits: i32) -> bool {
        self.value > 0 && self.value & bits == bits
    }

    /// `<number>:<value>@<fd>`.
    pub fn fact_value(&self) -> String {
        format!(
            "{}:{}@{}",
            self.cap.number,
            SignedHex(self.value),
            self.on.as_str()
        )
    }
}

/// `0x1f`, `-0x19`: hex that keeps the sign of a negative errno.
pub struct SignedHex(pub i32);

impl Display for SignedHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = i64::from(self.0);
        if v < 0 {
            write!(f, "-{:#x}", -v)
        } else {
            write!(f, "{v:#x}")
        }
    }
}

/// What can answer KVM_CHECK_EXTENSION: /dev/kvm or a VM fd.
pub trait CapSource {
    const ON: AskedOn;
    /// The raw ioctl result (-1 with errno set when it failed).
    fn check_raw(&self, number: u32) -> i32;
}

impl CapSource for kvm_ioctls::Kvm {
    const ON: AskedOn = AskedOn::Kvm;
    fn check_raw(&self, number: u32) -> i32 {
        self.check_extension_raw(number.into())
    }
}

impl CapSource for kvm_ioctls::VmFd {
    const ON: AskedOn = AskedOn::Vm;
    fn check_raw(&self, number: u32) -> i32 {
        self.check_extension_raw(number.into())
    }
}

/// Asks `fd` about `cap`, keeping a failure's errno as the kernel's -errno.
pub fn probe<S: CapSource>(fd: &S, cap: Cap) -> Probed {
    let raw = fd.check_raw(cap.number);
    let value = if raw < 0 {
        -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        raw
    };
    Probed {
        cap,
        value,
        on: S::ON,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::wire::CapFact;

    #[test]
    fn one_line_of_pairs_without_spaces() {
        let mut f = Facts::default();
        f.add("memory", "sw-protected")
            .add("kernel", "7.3 x")
            .add("empty", "");
        assert_eq!(
            f.line(),
            "# convtest-vmm: memory=sw-protected kernel=7.3_x empty=-\n"
        );
    }

    const HC: Cap = cap::EXIT_HYPERCALL;
    const M2: Cap = cap::USER_MEMORY2;

    #[test]
    fn capability_facts_keep_number_value_sign_and_fd() {
        let probed = [
            Probed {
                cap: HC,
                value: 0x1000,
                on: AskedOn::Vm,
            },
            Probed {
                cap: M2,
                value: 0,
                on: AskedOn::Kvm,
            },
            Probed {
                cap: M2,
                value: -libc::ENOTTY,
                on: AskedOn::Vm,
            },
        ];
        let mut f = Facts::default();
        f.caps(&probed);
        assert_eq!(
            f.line(),
            "# convtest-vmm: cap.KVM_CAP_EXIT_HYPERCALL=201:0x1000@vm \
             cap.KVM_CAP_USER_MEMORY2=231:0x0@kvm cap.KVM_CAP_USER_MEMORY2=231:-0x19@vm\n"
        );
        for p in probed {
            let key = format!("{CAP_PREFIX}{}", p.cap.name);
            let back = CapFact::parse(&key, &p.fact_value()).unwrap();
            assert_eq!(
                (back.number, back.name, back.value, back.on),
                (p.cap.number, p.cap.name, i64::from(p.value), p.on)
            );
        }
        assert_eq!(SignedHex(i32::MIN).to_string(), "-0x80000000");
    }

    #[test]
    fn other_facts_and_malformed_values_are_not_capabilities() {
        for (k, v) in [
            ("caps", "201:0x1000"),
            ("cap.", "201:0x1@vm"),
            ("cap.X", "201:0x1"),
            ("cap.X", "201:1@vm"),
            ("cap.X", "x:0x1@vm"),
            ("cap.X", "201:0x1@l1"),
            ("cap.X", "201:-@vm"),
        ] {
            assert_eq!(CapFact::parse(k, v), None, "{k}={v}");
        }
    }

    #[test]
    fn has_wants_a_positive_value_with_every_bit() {
        let p = |value| Probed {
            cap: HC,
            value,
            on: AskedOn::Vm,
        };
        assert!(p(1).has(0) && p(0x3).has(0x3) && p(0x1000).has(0x1000));
        assert!(!p(0).has(0) && !p(0x1).has(0x3) && !p(-22).has(0));
    }
}
