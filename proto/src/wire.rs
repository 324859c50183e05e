//! Line prefixes of what the host side adds to a guest's console: the own
//! VMM's facts, the nested L1's facts and relayed stderr, and the VMM's copy
//! of each host-check answer. The VMM and the L1 write them; the runner's
//! KTAP reader sorts lines by them.

/// Facts of convtest's own VMM (`key=value` words).
pub const VMM_PREFIX: &str = "# convtest-vmm: ";
/// Facts and run markers of the nested lane's L1 `/init`.
pub const L1_PREFIX: &str = "# convtest-l1: ";
/// Each line an inner VMM wrote on its stderr, relayed by the L1 `/init`.
pub const L1_STDERR_PREFIX: &str = "# convtest-l1-stderr: ";
/// The VMM's copy of each host-check answer it typed into the guest
/// (`# convtest-host: convtest-ack <id> ok|fail <evidence> …`).
pub const HOST_PREFIX: &str = "# convtest-host: ";
