//! `boot_main`: the boot CPU's first Rust after entry.rs. Vectors, the DTB,
//! the identity map and caches, the console, then the kernel.

use super::{
    dtb, dtb_nops, exceptions, first_touch, mmio_guard, mmu, power, probe, psci, smccc, uart,
    word_console,
};
use crate::arch::hooks;
use crate::boot::BootInfo;
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use convtest_proto::range::MemRange;

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

static BOOT: spin::Once<BootInfo> = spin::Once::new();

/// Called once by entry.rs, at EL1 with FP/SIMD on, bss zeroed, relocated,
/// MMU off. `from_el2` is 1 when the loader entered us at EL2;
/// `bad_relocs` counts `.rela.dyn` entries `reloc::relocate` could not apply.
pub(super) unsafe extern "C" fn boot_main(dtb_addr: u64, from_el2: u64, bad_relocs: u64) -> ! {
    hooks::set_early_fatal(super::fatal::early);
    exceptions::init();
    let image = MemRange::new(
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    );
    // SAFETY: x0 as the loader passed it (the boot protocol's DTB pointer).
    unsafe { first_touch::dtb(dtb_addr) };
    // SAFETY: as above; the blob is ours from here on and nothing else is
    // running.
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
    power::keep_for_reboot(image, blob);
    // pKVM's answers before anything uses RAM or the console: its granule
    // decides the first-touch order.
    let early = probe::smccc_probe();
    if let Ok(p) = &platform {
        first_touch::set_granule(early.pkvm_granule(), &p.ram);
    }
    let mmu = match &platform {
        Ok(p) => mmu::enable(&p.ram, &[image, blob]),
        Err(_) => Ok(()),
    };
    if let Some(u) = console {
        mmio_guard::console(&early, &u);
        uart::init(u);
    }
    // After the MMU: its registers are in the Device window. Refused or
    // absent, the UART stays the console; behind an MMIO guard too (only
    // the UART's window went through the guard's calls).
    if !mmio_guard::engaged() {
        word_console::init(&fdt);
    }
    if bad_relocs != 0 {
        hooks::fatal(format_args!(
            "{bad_relocs} .rela.dyn entries are not R_AARCH64_RELATIVE"
        ));
    }
    if let Err(
        e @ (dtb_nops::NopError::Truncated { .. } | dtb_nops::NopError::UnknownToken { .. }),
    ) = nops
    {
        hooks::fatal(format_args!("DTB at {dtb_addr:#x} malformed: {e}"));
    }
    let p = match platform {
        Ok(p) => p,
        Err(e) => hooks::fatal(format_args!("DTB at {dtb_addr:#x} unusable: {e}")),
    };
    if let Err(e) = mmu {
        hooks::fatal(format_args!("identity map failed: {e}"));
    }
    let mut reserved = p.reserved;
    if let Err(e) = dtb::add_merged(&mut reserved, image) {
        hooks::fatal(format_args!("reserved map full: {e}"));
    }
    let info = BootInfo {
        entry: "arm64-image",
        cpu_mode: if from_el2 != 0 { "el1-from-el2" } else { "el1" },
        ram: p.ram,
        reserved,
        kernel: image,
        cmdline: p.cmdline,
        phys_offset: 0,
        console: word_console::name().unwrap_or_else(uart::name),
        cpus,
        unaccepted: 0,
    };
    hooks::enter_kernel(BOOT.call_once(|| info))
}
