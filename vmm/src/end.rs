//! How a guest's run ended, and the process exit status that says it, in
//! QEMU's terms so the runner judges every backend alike.

/// Exit status when the VMM's own watchdog caught a vCPU that never left
/// KVM_RUN (QEMU never uses 3).
pub const EXIT_HANG: i32 = 3;
/// Exit status for VMM errors, as QEMU's.
pub const EXIT_ERROR: i32 = 1;

/// How the guest ended, in QEMU's exit-code terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestEnd {
    /// x86 isa-debug-exit: (value << 1) | 1.
    DebugExit(i32),
    /// PSCI SYSTEM_OFF or equivalent.
    PowerOff,
    /// A reset the plan did not expect (a planned one starts the next boot
    /// inside the VMM), so the run ends.
    Reset,
    /// The watchdog fired (the message says where).
    Hang,
    /// The vCPU stopped in a way the VMM cannot serve; the closing facts'
    /// `end=` names it.
    Unserved(Unserved),
}

/// What a vCPU did that ends the run because the VMM cannot serve it.
/// Guest-caused, so never a VMM error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unserved {
    /// KVM_EXIT_MEMORY_FAULT: the guest accessed `gpa` as private or shared
    /// (`flags` bit 3 = private) while KVM has it the other way.
    MemoryFault { gpa: u64, size: u64, flags: u64 },
    /// HLT with no interrupt source to wake the vCPU.
    Halt,
    /// An MMIO access where nothing is mapped.
    Mmio { gpa: u64, write: bool },
    /// KVM_RUN itself failed with `errno` (not EINTR/EAGAIN).
    RunFailed { errno: i32 },
    /// Any other exit: the KVM_EXIT_* number and its first detail word.
    Exit { reason: u32, detail: u64 },
}

/// KVM_MEMORY_EXIT_FLAG_PRIVATE.
const MEMORY_EXIT_FLAG_PRIVATE: u64 = 1 << 3;

impl std::fmt::Display for Unserved {
    /// One word for the `end=` fact (no spaces).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Unserved::MemoryFault { gpa, size, flags } => {
                let access = if flags & MEMORY_EXIT_FLAG_PRIVATE != 0 {
                    "private"
                } else {
                    "shared"
                };
                write!(
                    f,
                    "memory_fault(gpa:{gpa:#x},size:{size:#x},flags:{flags:#x},access:{access})"
                )
            }
            Unserved::Halt => write!(f, "halt"),
            Unserved::Mmio { gpa, write } => {
                let dir = if write { "write" } else { "read" };
                write!(f, "mmio_{dir}(gpa:{gpa:#x})")
            }
            Unserved::RunFailed { errno } => write!(f, "kvm_run_failed(errno:{errno})"),
            Unserved::Exit { reason, detail } => {
                write!(f, "exit(reason:{reason},detail:{detail:#x})")
            }
        }
    }
}

impl std::fmt::Display for GuestEnd {
    /// The `end=` fact.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestEnd::DebugExit(c) => write!(f, "debug_exit({c})"),
            GuestEnd::PowerOff => write!(f, "power_off"),
            GuestEnd::Reset => write!(f, "reset"),
            GuestEnd::Hang => write!(f, "hang"),
            GuestEnd::Unserved(u) => u.fmt(f),
        }
    }
}

impl GuestEnd {
    /// The process exit status, in QEMU's terms (the runner's exit hint):
    /// 1 stays "the VMM failed before or around the guest" (a setup error),
    /// 3 "hang", 0x7f "the guest's run ended some other way than power-off".
    pub fn exit_code(self) -> i32 {
        match self {
            GuestEnd::DebugExit(c) => c,
            GuestEnd::PowerOff => 0,
            // What QEMU -no-reboot does on a reset: a plain exit 0 would read as a
            // power-off; 0x7f is "unexpected" for the verdict's exit hint.
            GuestEnd::Reset => 0x7f,
            GuestEnd::Hang => EXIT_HANG,
            // A halted vCPU with nothing to wake it is a hang, caught at once.
            GuestEnd::Unserved(Unserved::Halt) => EXIT_HANG,
            // The guest ran and did something the VMM cannot serve: an
            // unexpected end, like a reset, not a VMM error (1).
            GuestEnd::Unserved(_) => EXIT_UNSERVED,
        }
    }
}

/// Exit status for a guest exit the VMM cannot serve (as for a reset).
pub const EXIT_UNSERVED: i32 = 0x7f;
