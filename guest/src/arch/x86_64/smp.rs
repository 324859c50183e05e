//! Secondary CPU start (`Platform::start_cpu`): INIT, SIPI, SIPI through
//! the boot CPU's x2APIC ([`super::apic`]) to the real-mode trampoline
//! ([`super::trampoline`]) in a page below 1 MiB, which reaches long mode
//! and jumps to the landing here (`convtest_ap_start64`), which calls
//! [`ap_entry`] on the CPU's own stack.
//!
//! Both boot paths: the trampoline page is picked while the entry builds its
//! RAM map ([`reserve_trampoline`]), and the page tables the starting CPU
//! enables paging with are the boot CPU's own when they map that page to
//! itself from below 4 GiB (PVH), else a copy that adds the identity mapping
//! (bootloader: physical memory is only mapped at an offset).

use super::cpu::{cycle_freq, cycles};
use super::trampoline::{self, ARMED, CLAIMED, COPIED, IDLE, Params};
use super::{apic, gdt, idt, paging};
use crate::arch::platform::StartError;
use convtest_proto::range::{MemRange, RangeError, RangeList};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin::Once;
use x86_64::PhysAddr;
use x86_64::registers::control::{Cr0, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::registers::xcontrol::XCr0;
use x86_64::structures::paging::{PageTable, PageTableFlags as F};

/// The trampoline's page: RAM below 1 MiB, never page 0 (real-mode IVT, BIOS
/// data area), so the SIPI vector is 1..=0xff.
const LOW_LIMIT: u64 = 0x10_0000;
const PAGE: u64 = 4096;
/// An upper bound on any x86 TSC rate, for the start-up delays when CPUID
/// states none (TCG): overestimating only makes the waits longer.
const ASSUMED_MAX_HZ: u64 = 6_000_000_000;
/// Intel SDM MP initialization: 10 ms after INIT, 200 us after each SIPI.
const INIT_DELAY_US: u64 = 10_000;
const SIPI_DELAY_US: u64 = 200;
/// How long a CPU that claimed the parameter block may take to copy it
/// (a handful of instructions; generous for a descheduled TCG vCPU).
const COPY_WAIT_US: u64 = 100_000;

/// Physical address of the trampoline page (0: none found).
static TRAMPOLINE_PAGE: AtomicU64 = AtomicU64::new(0);

/// Called by each entry while it builds `BootInfo`: takes the highest 4 KiB
/// page of `ram` below 1 MiB that nothing in `reserved` overlaps (page 0
/// excluded) and reserves it, so neither the heap nor any test ever touches
/// it and a CPU that starts late still finds the trampoline intact. Without
/// such a page, `start_cpu` reports Unsupported.
pub fn reserve_trampoline(ram: &RangeList, reserved: &mut RangeList) -> Result<(), RangeError> {
    let mut free = *ram;
    for r in reserved.iter() {
        free.subtract(r)?;
    }
    let page = free
        .iter()
        .map(|r| MemRange::new(r.start.max(PAGE), r.end.min(LOW_LIMIT)).align_inward(PAGE))
        .filter(|r| !r.is_empty())
        .map(|r| r.end - PAGE)
        .max();
    if let Some(p) = page {
        reserved.insert_merged(MemRange::from_len(p, PAGE))?;
        TRAMPOLINE_PAGE.store(p, Ordering::Relaxed);
    }
    Ok(())
}

/// What every start needs, prepared once by the boot CPU.
struct Setup {
    /// Virtual address of the installed trampoline's parameter block.
    params: usize,
    vector: u8,
    temp_cr3: u32,
    cr0: u32,
    efer: u32,
    cr3: u64,
    cr4: u64,
    xcr0: u64,
    own_apic_id: u32,
    /// Where every started CPU goes once it runs on its own stack.
    main: fn(usize) -> !,
}

static SETUP: Once<Result<Setup, StartError>> = Once::new();

#[cfg(feature = "bootloader")]
const NO_PAGE: &str = "bootloader boot path: the memory map leaves no free RAM page below 1 MiB for the SIPI trampoline";
#[cfg(not(feature = "bootloader"))]
const NO_PAGE: &str =
    "PVH boot path: the memory map leaves no free RAM page below 1 MiB for the SIPI trampoline";

fn setup(main: fn(usize) -> !) -> Result<Setup, StartError> {
    let page = TRAMPOLINE_PAGE.load(Ordering::Relaxed);
    if page == 0 {
        return Err(StartError::Unsupported(NO_PAGE));
    }
    let cr4 = Cr4::read_raw();
    if Cr4::read().contains(Cr4Flags::L5_PAGING) {
        return Err(StartError::Unsupported(
            "5-level paging is on; the trampoline enables 4-level paging",
        ));
    }
    if Cr4::read().contains(Cr4Flags::PCID) {
        // The trampoline loads CR3 with PCIDE clear; setting PCIDE afterwards
        // faults unless CR3's PCID is 0. Neither boot path turns PCIDs on.
        return Err(StartError::Unsupported(
            "PCIDs are on; the trampoline starts CPUs with PCIDE clear",
        ));
    }
    let own_apic_id = apic::enable_x2apic().map_err(StartError::Unsupported)?;
    let (frame, cr3_low) = Cr3::read_raw();
    let cr3 = frame.start_address().as_u64() | u64::from(cr3_low);
    let efer = Efer::read();
    let nx = efer.contains(EferFlags::NO_EXECUTE_ENABLE);
    let temp_cr3 = ap_page_table(page, frame.start_address().as_u64(), nx)?;
    let efer_low = (efer
        & (EferFlags::SYSTEM_CALL_EXTENSIONS
            | EferFlags::LONG_MODE_ENABLE
            | EferFlags::NO_EXECUTE_ENABLE))
        | EferFlags::LONG_MODE_ENABLE;
    let xcr0 = if Cr4::read().contains(Cr4Flags::OSXSAVE) {
        XCr0::read_raw()
    } else {
        0
    };
    let virt = page + paging::phys_offset();
    // SAFETY: `page` is the RAM page reserve_trampoline took out of every
    // other use; physical memory is mapped writable at phys_offset on both
    // boot paths; no CPU has been sent a SIPI yet, so none runs in it.
    let params = unsafe { trampoline::install(virt as *mut u8) };
    Ok(Setup {
        params: params as usize,
        vector: (page >> 12) as u8,
        temp_cr3,
        cr0: Cr0::read_raw() as u32,
        efer: efer_low.bits() as u32,
        cr3,
        cr4,
        xcr0,
        own_apic_id,
        main,
    })
}

/// Starts CPU `cpu` (hardware id `hw_id`) on `stack_top`, entering
/// `main(cpu)` (the first call's `main`, for every CPU).
pub fn start_cpu(
    cpu: usize,
    hw_id: u64,
    stack_top: u64,
    main: fn(usize) -> !,
) -> Result<(), StartError> {
    let s = SETUP
        .call_once(|| setup(main))
        .as_ref()
        .map_err(Clone::clone)?;
    if hw_id > 0xff {
        return Err(StartError::Unsupported(
            "APIC IDs above 255: the trampoline matches the 8-bit CPUID.1 APIC ID",
        ));
    }
    if hw_id == u64::from(s.own_apic_id) {
        return Err(StartError::Unsupported(
            "the hardware id is the boot CPU's own APIC ID",
        ));
    }
    let params = s.params as *mut Params;
    // SAFETY: `params` points at the installed block's `state`, a u32 at
    // offset 0 of the 8-aligned block, which lives as long as the kernel;
    // starting CPUs access it only with locked/aligned 32-bit operations.
    let state = unsafe { AtomicU32::from_ptr(&raw mut (*params).state) };
    take_block(state)?;
    let tables = gdt::new_cpu_tables();
    // SAFETY: the block is IDLE or COPIED after take_block: no CPU reads the
    // other fields until `state` is armed below (Release orders these first).
    unsafe {
        params.write(Params {
            state: IDLE,
            temp_cr3: s.temp_cr3,
            cr0: s.cr0,
            efer: s.efer,
            cpu: cpu as u64,
            arg: tables as *const gdt::CpuTables as u64,
            stack_top,
            cr3: s.cr3,
            entry: landing(),
        });
    }
    state.store(ARMED + hw_id as u32, Ordering::Release);
    let dest = hw_id as u32;
    apic::send(dest, apic::INIT_ASSERT);
    delay_us(INIT_DELAY_US);
    apic::send(dest, apic::INIT_DEASSERT);
    for _ in 0..2 {
        apic::send(dest, apic::startup(s.vector));
        delay_us(SIPI_DELAY_US);
    }
    Ok(())
}

/// Makes the parameter block the boot CPU's again: disarms it if the last
/// CPU never claimed it (that CPU then parks if it wakes late), or waits for
/// a CPU that claimed it to finish copying.
fn take_block(state: &AtomicU32) -> Result<(), StartError> {
    let hz = cycle_freq().unwrap_or(ASSUMED_MAX_HZ);
    let budget = hz / 1_000_000 * COPY_WAIT_US;
    let t0 = cycles();
    loop {
        let v = state.load(Ordering::Acquire);
        match v {
            IDLE | COPIED => return Ok(()),
            CLAIMED => {
                if cycles().wrapping_sub(t0) > budget {
                    return Err(StartError::Unsupported(
                        "an earlier CPU claimed the trampoline's parameters and never finished reading them",
                    ));
                }
                core::hint::spin_loop();
            }
            _ => {
                let _ = state.compare_exchange(v, IDLE, Ordering::AcqRel, Ordering::Acquire);
            }
        }
    }
}

/// Spins for at least `us` microseconds on the TSC.
fn delay_us(us: u64) {
    let hz = cycle_freq().unwrap_or(ASSUMED_MAX_HZ);
    let wait = hz / 1_000_000 * us;
    let t0 = cycles();
    while cycles().wrapping_sub(t0) < wait {
        core::hint::spin_loop();
    }
}

// The kernel-text landing the trampoline's 64-bit code jumps to
// (`Params::entry`). Register contract on entry (64-bit mode, the
// trampoline's GDT, interrupts off, CR4 = PAE|OSFXSR|OSXMMEXCPT): RDI = cpu,
// RSI = arg, RDX = stack_top, RCX = cr3. It loads CR3 and RSP and calls
// `ap_entry(cpu, arg)`, which never returns.
core::arch::global_asm!(
    ".pushsection .text.ap_start64, \"ax\"",
    ".global convtest_ap_start64",
    "convtest_ap_start64:",
    "mov %rcx, %cr3",
    "mov %rdx, %rsp",
    "xor %ebp, %ebp",
    "call {entry}",
    "ud2",
    ".popsection",
    entry = sym ap_entry,
    options(att_syntax),
);

unsafe extern "C" {
    fn convtest_ap_start64() -> !;
}

/// Address of the landing above, for `Params::entry`.
fn landing() -> u64 {
    convtest_ap_start64 as *const () as u64
}

/// Where `convtest_ap_start64` calls in: 64-bit mode, the boot CPU's CR3,
/// own stack, interrupts off, still the trampoline's GDT and no IDT.
/// `tables` is the `&'static gdt::CpuTables` start_cpu built for this CPU.
extern "C" fn ap_entry(cpu: u64, tables: u64) -> ! {
    let Some(Ok(s)) = SETUP.get() else {
        // Unreachable: start_cpu sends no SIPI unless the setup succeeded.
        loop {
            x86_64::instructions::hlt();
        }
    };
    // SAFETY: the boot CPU's CR4 and XCR0, valid on this CPU too (same
    // CPUID). PAE is already on, LA57 and PCIDE are off (setup refuses
    // them), so paging keeps working as it does now; OSXSAVE comes before
    // the XSETBV that needs it.
    unsafe {
        Cr4::write_raw(s.cr4);
        if s.cr4 & Cr4Flags::OSXSAVE.bits() != 0 {
            XCr0::write_raw(s.xcr0);
        }
    }
    // SAFETY: start_cpu stored a pointer from gdt::new_cpu_tables (leaked,
    // 'static) for this CPU alone.
    let tables: &'static gdt::CpuTables = unsafe { &*(tables as *const gdt::CpuTables) };
    gdt::load_cpu_tables(tables);
    idt::init();
    (s.main)(cpu as usize)
}

// ---- the page tables the starting CPU enables paging with ----

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// The live table at physical `pa`, to read.
///
/// # Safety
/// `pa` must be a page table of the active hierarchy, mapped at
/// `phys_offset`, that nothing writes while the reference lives (only the
/// MMU's accessed/dirty bits change; nothing here reads them).
unsafe fn table<'a>(pa: u64) -> &'a PageTable {
    // SAFETY: per the contract.
    unsafe { &*((pa + paging::phys_offset()) as *const PageTable) }
}

/// True when `va` maps to itself through `root`, writable and executable.
fn maps_identity(root: u64, va: u64, nx: bool) -> bool {
    let mut pa = root;
    for level in (1..=4).rev() {
        // SAFETY: `pa` is CR3's PML4 or a table an entry of it points to;
        // only the boot CPU, here, changes them.
        let e = &unsafe { table(pa) }[index(va, level)];
        let f = e.flags();
        if !f.contains(F::PRESENT | F::WRITABLE) || (nx && f.contains(F::NO_EXECUTE)) {
            return false;
        }
        if level == 1 || (level <= 3 && f.contains(F::HUGE_PAGE)) {
            let span = 1u64 << (12 + 9 * (level - 1));
            return e.addr().as_u64() + (va & (span - 1)) == va;
        }
        pa = e.addr().as_u64();
    }
    false
}

/// A new table on the heap (for the life of the kernel): a copy of the one
/// at physical `from`, or empty. Returns it and its physical address.
fn new_table(from: Option<u64>) -> (&'static mut PageTable, u64) {
    let t = alloc::boxed::Box::leak(alloc::boxed::Box::new(PageTable::new()));
    if let Some(pa) = from {
        // SAFETY: `pa` is a table of the active hierarchy, only read here.
        t.clone_from(unsafe { table(pa) });
    }
    let pa = t as *const PageTable as u64 - paging::phys_offset();
    (t, pa)
}

/// Physical PML4 (below 4 GiB) for the starting CPU: the boot CPU's when it
/// already maps `page` to itself, else a copy whose path to `page` is
/// copied too and ends in an identity 4 KiB mapping. Everything else is
/// shared with the boot CPU's tables, so the kernel and its stacks are
/// mapped as they are there.
fn ap_page_table(page: u64, root: u64, nx: bool) -> Result<u32, StartError> {
    let pml4 = if maps_identity(root, page, nx) {
        root
    } else {
        let (mut t, pml4) = new_table(Some(root));
        for level in (2..=4).rev() {
            let e = &mut t[index(page, level)];
            let f = e.flags();
            let (child, child_pa) = if !f.contains(F::PRESENT) {
                new_table(None)
            } else if f.contains(F::HUGE_PAGE) {
                return Err(StartError::Unsupported(
                    "the boot page tables map the trampoline's low address with a large page elsewhere",
                ));
            } else {
                new_table(Some(e.addr().as_u64()))
            };
            // The path entries of the copy only: writable, executable.
            let flags = (f | F::PRESENT | F::WRITABLE) - F::NO_EXECUTE - F::HUGE_PAGE;
            e.set_addr(PhysAddr::new(child_pa), flags);
            t = child;
        }
        t[index(page, 1)].set_addr(PhysAddr::new(page), F::PRESENT | F::WRITABLE);
        pml4
    };
    u32::try_from(pml4 & ADDR_MASK).map_err(|_| {
        StartError::Unsupported(
            "the page tables for the starting CPU lie above 4 GiB, out of the trampoline's 32-bit mov to CR3",
        )
    })
}
