//! The contract between the arch layer and every layer above it, checked by
//! the compiler: one zero-sized type per architecture implements
//! [`Platform`] (`x86_64::X86_64`, `aarch64::Aarch64`) and the kernel names
//! it only as [`crate::arch::Current`]. Nothing above the arch layer names an
//! instruction or a device register; a fake `Platform` could run the layers
//! above on the host.
//!
//! What the arch layer needs from the kernel (its entry after boot, its
//! crash path) goes the other way, through [`super::hooks`].

use super::hooks::{self, FatalHandler};
use super::probe::Probe;
#[cfg(target_arch = "x86_64")]
use convtest_proto::size_walk::PageSize;
#[cfg(target_arch = "aarch64")]
use convtest_proto::smccc::SmcccAnswer;
#[cfg(target_arch = "x86_64")]
use convtest_proto::tdx::abi::{AcceptStatus, VmcallStatus};
use core::fmt;

/// What a deliberate trap looked like from inside the handler.
#[derive(Clone, Copy, Debug)]
pub struct TrapReport {
    /// x86 vector number or arm64 ESR_EL1.EC.
    pub kind: u64,
    /// Human name (`#UD`, `BRK`).
    pub name: &'static str,
    /// Address of the trapping instruction.
    pub pc: u64,
}

#[derive(Clone, Copy, Debug)]
pub enum TrapError {
    /// The handler never ran: execution went straight past the instruction.
    NotTaken,
    /// A different exception than the one raised arrived.
    #[cfg_attr(
        target_arch = "x86_64",
        expect(
            dead_code,
            reason = "x86 resumes only over its own ud2; any other vector is a crash"
        )
    )]
    Unexpected { kind: u64, pc: u64 },
}

/// Why a CPU did not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The platform call refused: which call and its raw answer.
    #[cfg_attr(
        target_arch = "x86_64",
        expect(dead_code, reason = "INIT-SIPI-SIPI has no answer to refuse with")
    )]
    Refused { call: &'static str, code: i64 },
    /// The arch layer cannot start CPUs at all on this boot path.
    Unsupported(&'static str),
    /// The start request went out but the CPU never checked in.
    NoCheckIn { waited_cycles: u64 },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Refused { call, code } => write!(f, "{call} answered {code}"),
            StartError::Unsupported(why) => f.write_str(why),
            StartError::NoCheckIn { waited_cycles } => {
                write!(f, "started but never checked in ({waited_cycles} cycles)")
            }
        }
    }
}

/// Everything the kernel above asks of the machine. All associated
/// functions: the implementing types are zero-sized and hold no state.
pub trait Platform {
    /// `"x86_64"` / `"aarch64"`: the header's `arch=`.
    const NAME: &'static str;
    /// The page size the kernel maps with (and the granule when no
    /// converter names one).
    const PAGE_SIZE: u64;

    // ---- console: polled and lock-free, callable from exception context ----

    fn console_write(bytes: &[u8]);
    /// Non-blocking: `None` when no byte is waiting.
    fn console_read_byte() -> Option<u8>;

    // ---- data cache, by virtual address ----

    /// Writes back and evicts the lines of `[va, va+len)` (the bench's
    /// cold-cache runs start from memory).
    fn flush_dcache(va: u64, len: u64);
    /// Writes back the lines of `[va, va+len)` to where a boot that starts
    /// with the caches off reads them (a no-op where caches stay coherent
    /// across a reset).
    fn clean_dcache(va: u64, len: u64);

    // ---- counter ----

    fn cycles() -> u64;
    /// Counter ticks per second; the error names what the platform lacks.
    fn cycle_freq() -> Result<u64, &'static str>;

    // ---- power ----

    /// Ends the run (`success` where the platform can report it).
    fn power_off(success: bool) -> !;
    /// Resets the machine into the next boot of a reboot series.
    fn reboot() -> !;

    // ---- exceptions ----

    /// Raises #UD / BRK on purpose and returns what the handler saw after
    /// resuming.
    fn trap_roundtrip() -> Result<TrapReport, TrapError>;
    /// Touches an unmapped address (plan `inject=fault`): never returns.
    fn fatal_fault() -> !;
    /// Makes `handler` the way the arch layer ends the run when it cannot go
    /// on (an unexpected exception, a platform call that trapped). Until
    /// then it prints the crash line itself and powers off.
    fn set_fatal_handler(handler: FatalHandler) {
        hooks::set_fatal_handler(handler);
    }

    // ---- hypervisor discovery ----

    /// Runs the discovery instructions (CPUID, SMCCC); `Probe` decodes them.
    fn probe() -> Probe;

    /// What the boot path did because of the hypervisor before the kernel
    /// ran, as ` key=value` words for the header (each with its leading
    /// space); nothing by default.
    fn boot_words(_out: &mut dyn fmt::Write) -> fmt::Result {
        Ok(())
    }

    /// The MMIO pages the console lives on (what stray accesses must
    /// keep off); none by default (x86's COM1 is a port).
    fn console_pages() -> [Option<convtest_proto::range::MemRange>; 2] {
        [None, None]
    }

    /// Called with every physical range the kernel hands out (the heap,
    /// persistent pages, the tests' windows) before anything in it is
    /// touched: where the hypervisor needs memory faulted in a certain
    /// order, the arch layer does it here. Nothing by default.
    fn first_touch(_range: convtest_proto::range::MemRange) {}

    // ---- secondary CPUs (see `crate::smp`) ----

    /// Asks the platform to start CPU `cpu` (hardware id `hw_id`: x86 APIC
    /// ID, arm64 MPIDR affinity) on `stack_top`, entering `main(cpu)`.
    /// Returns once the request is made; the check-in is the caller's to
    /// wait for. Every CPU is started with the same `main`.
    fn start_cpu(
        cpu: usize,
        hw_id: u64,
        stack_top: u64,
        main: fn(usize) -> !,
    ) -> Result<(), StartError>;
    /// On a secondary CPU, before it checks in: true when [`Self::idle_wait`]
    /// may sleep until [`Self::wake_others`] wakes it; false: it spins.
    fn idle_init() -> bool;
    /// Waits for a wake-up (or returns for nothing: the caller re-checks).
    fn idle_wait();
    /// From CPU 0, after posting a job: wakes every idle secondary CPU.
    fn wake_others();

    // ---- hostile traffic (`hostile.vmm`): raw accesses aimed at the VMM ----

    /// A load of `size` bytes (1, 2, 4, 8) at `va`, which the kernel maps
    /// but no RAM is behind: an MMIO exit.
    ///
    /// # Safety
    /// `va` is mapped, aligned to `size`, and no memory of the kernel's.
    unsafe fn stray_load(va: u64, size: u8) -> u64;
    /// A store of `size` bytes there.
    ///
    /// # Safety
    /// As for [`Self::stray_load`].
    unsafe fn stray_store(va: u64, size: u8, value: u64);
    /// `in` of `size` (1, 2, 4) bytes from `port`.
    #[cfg(target_arch = "x86_64")]
    fn port_in(port: u16, size: u8) -> u32;
    /// `out` of `size` bytes to `port` (never one that ends the run or
    /// carries the console).
    #[cfg(target_arch = "x86_64")]
    fn port_out(port: u16, size: u8, value: u32);

    // ---- conversion traps: one small function per instruction, with its
    // register contract beside it in the arch module ----

    /// CPUID `leaf`/`subleaf` (the vendor picks the hypercall instruction).
    #[cfg(target_arch = "x86_64")]
    fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult;
    /// KVM hypercall `nr` with a0..a2 through `vmcall` (Intel); returns rax.
    #[cfg(target_arch = "x86_64")]
    fn vmcall(nr: u64, a0: u64, a1: u64, a2: u64) -> u64;
    /// The same through `vmmcall` (AMD, Hygon).
    #[cfg(target_arch = "x86_64")]
    fn vmmcall(nr: u64, a0: u64, a1: u64, a2: u64) -> u64;
    /// TDX: the TD's shared GPA bit (from `TDG.VP.INFO`); `None` outside a TD.
    #[cfg(target_arch = "x86_64")]
    fn tdx_shared_bit() -> Option<u64>;
    /// TDX `TDG.VP.VMCALL<MapGPA>` of `[gpa, gpa + size)`: r10 decoded, r11.
    #[cfg(target_arch = "x86_64")]
    fn tdx_map_gpa(gpa: u64, size: u64) -> (VmcallStatus, u64);
    /// TDX `TDG.MEM.PAGE.ACCEPT` of the page at `gpa`.
    #[cfg(target_arch = "x86_64")]
    fn tdx_accept(gpa: u64, size: PageSize) -> AcceptStatus;
    /// SEV-SNP PVALIDATE of the page at physical `gpa` (through its private
    /// mapping): rax and rFLAGS.CF.
    #[cfg(target_arch = "x86_64")]
    fn pvalidate(gpa: u64, size: PageSize, validate: bool) -> (u64, bool);
    /// SEV-ES/SNP: one GHCB MSR protocol request and the answer.
    #[cfg(target_arch = "x86_64")]
    fn ghcb_msr_exchange(request: u64) -> u64;
    /// SEV-ES/SNP: the GHCB page's GPA once the #VC handler registered it
    /// (it stays shared: a reset must leave it so).
    #[cfg(target_arch = "x86_64")]
    fn ghcb_gpa() -> Option<u64>;
    /// Maps physical memory below `end` a second time with `set` OR'ed into
    /// every address (TDX's shared bit; 0 for SNP's C-bit-clear view); the
    /// view's offset (view address = pa + offset), `None` if it cannot.
    #[cfg(target_arch = "x86_64")]
    fn map_alias(end: u64, set: u64) -> Option<u64>;
    /// One SMCCC call over the DTB's conduit; `None` when it names none.
    #[cfg(target_arch = "aarch64")]
    fn smccc_call(fid: u32, a1: u64, a2: u64, a3: u64) -> Option<SmcccAnswer<[u64; 4]>>;
}
