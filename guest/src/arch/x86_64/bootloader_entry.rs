//! Entry through `bootloader_api` (BIOS and UEFI disk images built by
//! `convtest-images`). The bootloader has already switched to long mode,
//! mapped the kernel (PIE, relocated) and, as configured here, all physical
//! memory at a dynamic offset. The plan arrives as the ramdisk file.

use super::init::{STACK_BYTES, init_cpu};
use super::paging::PAGE_SIZE;
use crate::arch::hooks;
use crate::boot::{BootInfo, CpuList};
use bootloader_api::config::Mapping;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use bootloader_api::{BootloaderConfig, entry_point};
use convtest_proto::range::{MemRange, RangeError, RangeList};
use spin::Once;

pub static CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = STACK_BYTES;
    config
};

entry_point!(main, config = &CONFIG);

/// UEFI's EfiUnacceptedMemoryType (UEFI 2.9+).
const UEFI_UNACCEPTED: u32 = 15;

static BOOT: Once<BootInfo> = Once::new();

fn main(info: &'static mut bootloader_api::BootInfo) -> ! {
    let phys_offset = info.physical_memory_offset.into_option();
    // The bootloader leaves the page below the stack unmapped as a guard.
    let guard = info.kernel_stack_bottom.saturating_sub(PAGE_SIZE);
    init_cpu(phys_offset.unwrap_or(0), guard);
    let Some(phys_offset) = phys_offset else {
        hooks::fatal(format_args!(
            "bootloader gave no physical memory mapping (config asks for one)"
        ))
    };
    let boot = match boot_info(info, phys_offset) {
        Ok(b) => b,
        Err(e) => hooks::fatal(format_args!("bootloader memory map: {e}")),
    };
    hooks::enter_kernel(BOOT.call_once(|| boot))
}

/// RAM is what the bootloader reports as Usable plus what it took for itself
/// (kernel segments, page tables, stack, boot info: kind Bootloader); the
/// latter is reserved, as is the kernel file it loaded. Memory UEFI left
/// unaccepted (type 15, EfiUnacceptedMemoryType) stays out of the RAM map
/// and is counted: touching it before TDG.MEM.PAGE.ACCEPT / PVALIDATE would
/// fault, and edk2 accepts all of it at ExitBootServices for a loader that
/// does not ask otherwise, so it is normally none.
fn boot_info(
    info: &'static bootloader_api::BootInfo,
    phys_offset: u64,
) -> Result<BootInfo, RangeError> {
    let regions: &MemoryRegions = &info.memory_regions;
    let mut ram = RangeList::new();
    let mut reserved = RangeList::new();
    let mut unaccepted = 0;
    for r in regions.iter() {
        let range = MemRange::new(r.start, r.end);
        match r.kind {
            MemoryRegionKind::Usable => ram.insert_merged(range)?,
            MemoryRegionKind::Bootloader => {
                ram.insert_merged(range)?;
                reserved.insert_merged(range)?;
            }
            MemoryRegionKind::UnknownUefi(UEFI_UNACCEPTED) => unaccepted += r.end - r.start,
            _ => {}
        }
    }
    let kernel = MemRange::from_len(info.kernel_addr, info.kernel_len).align_outward(4096);
    reserved.insert_merged(kernel)?;
    // The SIPI trampoline page: free low RAM (the bootloader allocates
    // nothing below 1 MiB), reserved from here on.
    super::smp::reserve_trampoline(&ram, &mut reserved)?;
    let uefi = regions
        .iter()
        .any(|r| matches!(r.kind, MemoryRegionKind::UnknownUefi(_)));
    Ok(BootInfo {
        entry: if uefi {
            "bootloader-uefi"
        } else {
            "bootloader-bios"
        },
        cpu_mode: "long-mode",
        ram,
        reserved,
        kernel,
        cmdline: ramdisk_cmdline(info),
        phys_offset,
        console: super::serial::CONSOLE,
        cpus: CpuList::EMPTY,
        unaccepted,
    })
}

/// The ramdisk as text, trimmed; "" when there is none or it is not UTF-8.
fn ramdisk_cmdline(info: &'static bootloader_api::BootInfo) -> &'static str {
    let Some(addr) = info.ramdisk_addr.into_option() else {
        return "";
    };
    let Ok(len) = usize::try_from(info.ramdisk_len) else {
        return "";
    };
    if addr == 0 || len == 0 {
        return "";
    }
    // SAFETY: the bootloader mapped the ramdisk (`ramdisk_len` bytes) at the
    // virtual address `ramdisk_addr` and keeps its frames out of Usable RAM,
    // so nothing overwrites it for the life of the kernel.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    core::str::from_utf8(bytes).map_or("", |s| {
        s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
    })
}
