//! aarch64: an arm64 Image that runs at any load address, at EL1 (leaving
//! EL2 if started there), with everything about the machine from the DTB.
//!
//! Boot order: entry.rs (EL drop, FP/SIMD, bss, stack) → reloc.rs →
//! `boot_main`: vectors, DTB, identity map + caches, console, `kmain`.
//! Secondary CPUs (PSCI CPU_ON, smp.rs): secondary.rs (EL drop, the boot
//! CPU's MMU/vector/FP state, own stack) → `crate::smp::secondary_main`.

mod cache;
mod dtb;
mod dtb_nops;
mod entry;
mod exceptions;
mod mmu;
mod probe;
mod psci;
mod reloc;
mod secondary;
mod smccc;
mod smp;
mod timer;
mod trap;
mod uart;

use crate::boot::BootInfo;
use crate::report;
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use convtest_proto::range::MemRange;
use core::sync::atomic::{AtomicU64, Ordering};

pub use cache::{clean_dcache, flush_dcache};
pub use probe::probe;
pub use smccc::call as smccc_call;
pub use smp::start_cpu;

/// Secondary CPUs spin between jobs here (WFE/SEV was slower under TCG:
/// README, SMP); the x86 contract's halting idle has no arm64 half yet.
pub fn idle_init() -> bool {
    false
}

pub fn idle_wait() {
    core::hint::spin_loop();
}

pub fn wake_others() {}
pub use timer::{cycle_freq, cycles};
pub use trap::{fatal_fault, trap_roundtrip};
#[allow(
    unused_imports,
    reason = "contract function; the host-check channel will read input"
)]
pub use uart::console_read_byte;
pub use uart::console_write;

pub const NAME: &str = "aarch64";
pub const PAGE_SIZE: u64 = 4096;

/// PSCI SYSTEM_OFF carries no status (QEMU exits 0 either way): the verdict
/// is read from the KTAP stream, so `success` changes nothing here.
pub fn power_off(_success: bool) -> ! {
    psci::system_off();
    psci::halt()
}

/// PSCI SYSTEM_RESET. The next boot re-enters this Image with the MMU and
/// caches off: under pKVM `keep` the VMM cannot reload it (the pages are the
/// protected guest's), so boot N+1 runs the very bytes boot N leaves, and
/// reads them — and the DTB — from memory. `psci::system_reset` cleans both
/// to the point of coherency on the way out. What the next boot must still
/// find elsewhere in RAM (a boot record, canaries) its owner cleans first
/// with [`clean_dcache`].
///
/// Re-entry is safe because the entry code zeroes .bss (the page-table pool,
/// the stack and every static that starts zero: `Once`, atomics, the MMU's
/// "enabled" flag), relocation writes `base + addend` (the same value on
/// every run). A static with a non-zero initial value (in .data) that code
/// changes would start the next boot with the old boot's value: keep
/// mutable statics zero-initialised.
pub fn reboot() -> ! {
    let image = MemRange::new(
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    );
    let dtb = MemRange::from_len(DTB.load(Ordering::SeqCst), DTB_LEN.load(Ordering::SeqCst));
    psci::system_reset([image, dtb]);
    psci::halt()
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

static BOOT: spin::Once<BootInfo> = spin::Once::new();
/// The DTB the loader passed (address, bytes), for `reboot` to clean. Zero
/// (in .bss) until boot_main records it.
static DTB: AtomicU64 = AtomicU64::new(0);
static DTB_LEN: AtomicU64 = AtomicU64::new(0);

/// Called once by entry.rs, at EL1 with FP/SIMD on, bss zeroed, relocated,
/// MMU off. `from_el2` is 1 when the loader entered us at EL2;
/// `bad_relocs` counts `.rela.dyn` entries `reloc::relocate` could not apply.
unsafe extern "C" fn boot_main(dtb_addr: u64, from_el2: u64, bad_relocs: u64) -> ! {
    exceptions::init();
    let image = MemRange::new(
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    );
    // SAFETY: x0 as the loader passed it (the boot protocol's DTB pointer);
    // the blob is ours from here on and nothing else is running.
    let nops = unsafe { dtb_nops::remove(dtb_addr) };
    // SAFETY: as above.
    let Ok(fdt) = (unsafe { dtb::open(dtb_addr) }) else {
        // No DTB: no console to complain on and no PSCI to power off with.
        psci::halt()
    };
    smccc::set_conduit(dtb::conduit(&fdt));
    let console = dtb::console(&fdt);
    let platform = dtb::parse(&fdt, dtb_addr);
    let cpus = dtb::cpus(&fdt, MPIDR_EL1.get());
    // Without a RAM map there is nothing to map Normal: stay MMU-off (Device
    // accesses still reach the UART) just long enough to say why.
    let blob = MemRange::from_len(dtb_addr, fdt.total_size() as u64);
    DTB.store(blob.start, Ordering::SeqCst);
    DTB_LEN.store(blob.len(), Ordering::SeqCst);
    let mmu = match &platform {
        Ok(p) => mmu::enable(&p.ram, &[image, blob]),
        Err(_) => Ok(()),
    };
    if let Some(u) = console {
        uart::init(u);
    }
    if bad_relocs != 0 {
        report::crash(
            format_args!("{bad_relocs} .rela.dyn entries are not R_AARCH64_RELATIVE"),
            None,
        );
    }
    if let Err(
        e @ (dtb_nops::NopError::Truncated { .. } | dtb_nops::NopError::UnknownToken { .. }),
    ) = nops
    {
        report::crash(format_args!("DTB at {dtb_addr:#x} malformed: {e}"), None);
    }
    let p = match platform {
        Ok(p) => p,
        Err(e) => report::crash(format_args!("DTB at {dtb_addr:#x} unusable: {e}"), None),
    };
    if let Err(e) = mmu {
        report::crash(format_args!("identity map failed: {e}"), None);
    }
    let mut reserved = p.reserved;
    if let Err(e) = dtb::add_merged(&mut reserved, image) {
        report::crash(format_args!("reserved map full: {e}"), None);
    }
    let info = BootInfo {
        entry: "arm64-image",
        cpu_mode: if from_el2 != 0 { "el1-from-el2" } else { "el1" },
        ram: p.ram,
        reserved,
        kernel: image,
        cmdline: p.cmdline,
        phys_offset: 0,
        console: uart::name(),
        cpus,
    };
    crate::kmain::kmain(BOOT.call_once(|| info))
}
