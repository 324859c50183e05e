//! Line prefixes of what the host side adds to a guest's console: the own
//! VMM's facts, the nested L1's facts and relayed stderr, and the VMM's copy
//! of each host-check answer. The VMM and the L1 write them; the runner's
//! KTAP reader sorts lines by them. No guest line ever starts with one:
//! the relay between guest and runner (relay.rs) sees to that.

/// Facts of convtest's own VMM (`key=value` words).
pub const VMM_PREFIX: &str = "# convtest-vmm: ";
/// Facts and run markers of the nested lane's L1 `/init`.
pub const L1_PREFIX: &str = "# convtest-l1: ";
/// Each line an inner VMM wrote on its stderr, relayed by the L1 `/init`.
pub const L1_STDERR_PREFIX: &str = "# convtest-l1-stderr: ";
/// The VMM's copy of each host-check answer it typed into the guest,
/// after the kind of request it answered
/// (`# convtest-host: verify convtest-ack <id> ok|fail <evidence> …`).
pub const HOST_PREFIX: &str = "# convtest-host: ";
/// A guest line that would have read as a host layer's, passed on behind
/// this by the relay between guest and runner: the runner names it.
pub const FORGED_PREFIX: &str = "# convtest-forged: ";
/// The rest of a line the L1's /init cut to put one of its own lines in
/// (it cannot tell whose the rest is, so it is nobody's line start).
pub const CUT_PREFIX: &str = "# convtest-cut: ";

/// Every prefix only a host layer may start a line with.
pub const HOST_LAYER_PREFIXES: [&str; 6] = [
    VMM_PREFIX,
    L1_PREFIX,
    L1_STDERR_PREFIX,
    HOST_PREFIX,
    FORGED_PREFIX,
    CUT_PREFIX,
];

/// Key prefix of the VMM's per-capability facts
/// (`cap.<NAME>=<number>:<value>@<fd>`, written by the VMM's facts.rs).
pub const CAP_PREFIX: &str = "cap.";

/// The VMM's fact key that opens each boot of a reboot series
/// (`reset_boot=<n>`, with the reset's other facts on the same line).
pub const BOOT_KEY: &str = "reset_boot";

/// Which fd a capability was asked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskedOn {
    /// /dev/kvm: what the kernel supports for some VM.
    Kvm,
    /// The VM fd: what this VM (of its type) gets.
    Vm,
}

impl AskedOn {
    pub fn as_str(self) -> &'static str {
        match self {
            AskedOn::Kvm => "kvm",
            AskedOn::Vm => "vm",
        }
    }
}

/// One `cap.<NAME>=<number>:<value>@<fd>` fact read back, for the runner's
/// `{number, name, value}` objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapFact<'a> {
    pub number: u32,
    pub name: &'a str,
    pub value: i64,
    pub on: AskedOn,
}

impl<'a> CapFact<'a> {
    /// None when `key` is not a capability fact or `value` is malformed.
    pub fn parse(key: &'a str, value: &str) -> Option<Self> {
        let name = key.strip_prefix(CAP_PREFIX).filter(|n| !n.is_empty())?;
        let (number, rest) = value.split_once(':')?;
        let (v, fd) = rest.split_once('@')?;
        let (negative, hex) = match v.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, v),
        };
        let magnitude = i64::from_str_radix(hex.strip_prefix("0x")?, 16).ok()?;
        Some(CapFact {
            number: number.parse().ok()?,
            name,
            value: if negative { -magnitude } else { magnitude },
            on: match fd {
                "kvm" => AskedOn::Kvm,
                "vm" => AskedOn::Vm,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_facts_read_back() {
        assert_eq!(
            CapFact::parse("cap.KVM_CAP_VM_TYPES", "235:-0x19@kvm"),
            Some(CapFact {
                number: 235,
                name: "KVM_CAP_VM_TYPES",
                value: -0x19,
                on: AskedOn::Kvm
            })
        );
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
}
