//! EL1 exception vectors. Every vector saves the interrupted registers and
//! calls `handle`. An exception is survivable only when the code about to
//! raise it registered the trapping instruction's address first (`arm`):
//! the handler then records what it saw, steps over the instruction and
//! returns. Anything else ends the run through `arch::hooks::fatal`.

use crate::arch::hooks;
use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable, VBAR_EL1, Writeable};
use core::arch::global_asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Registers saved by the vector code, in stack order.
#[repr(C)]
pub struct Frame {
    x: [u64; 31],
    elr: u64,
    spsr: u64,
    _pad: u64,
}

// 16 vectors of 0x80 bytes, table aligned to 2 KiB. Each saves x0/x1, loads
// its index into x0 and joins the common path, which saves the rest plus
// ELR/SPSR (a handler may change ELR), calls handle(frame, index), restores
// and returns. The Rust handler preserves callee-saved registers itself.
global_asm!(
    r#"
    .section .text.vectors, "ax"
    .balign 2048
    .global convtest_vectors
convtest_vectors:
    .set    vec_index, 0
    .rept   16
    .balign 0x80
    sub     sp, sp, #272
    stp     x0, x1, [sp, #0]
    mov     x0, #vec_index
    b       convtest_vector_common
    .set    vec_index, vec_index + 1
    .endr

convtest_vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x30, x1, [sp, #240]
    str     x2, [sp, #256]
    mov     x1, x0
    mov     x0, sp
    bl      {handle}
    ldp     x30, x1, [sp, #240]
    ldr     x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    add     sp, sp, #272
    eret
"#,
    handle = sym handle,
);

unsafe extern "C" {
    static convtest_vectors: u8;
}

pub fn init() {
    VBAR_EL1.set((&raw const convtest_vectors) as u64);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Address of the one instruction allowed to trap (0 = none).
static ARMED_PC: AtomicU64 = AtomicU64::new(0);
static CAUGHT: AtomicBool = AtomicBool::new(false);
static CAUGHT_ESR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_PC: AtomicU64 = AtomicU64::new(0);

/// What the handler saw at an armed instruction.
#[derive(Clone, Copy, Debug)]
pub struct Caught {
    pub ec: u64,
    pub esr: u64,
    pub pc: u64,
}

/// Forget any previous catch and return the slot the trapping asm stores
/// its instruction's address into right before executing it.
pub fn arm() -> *mut u64 {
    CAUGHT.store(false, Ordering::SeqCst);
    ARMED_PC.store(0, Ordering::SeqCst);
    ARMED_PC.as_ptr()
}

/// Disarm; `Some` when the armed instruction trapped.
pub fn disarm() -> Option<Caught> {
    ARMED_PC.store(0, Ordering::SeqCst);
    if !CAUGHT.swap(false, Ordering::SeqCst) {
        return None;
    }
    let esr = CAUGHT_ESR.load(Ordering::SeqCst);
    Some(Caught {
        ec: esr_ec(esr),
        esr,
        pc: CAUGHT_PC.load(Ordering::SeqCst),
    })
}

pub const EC_UNKNOWN: u64 = 0x00;
pub const EC_BRK: u64 = 0x3c;

fn esr_ec(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// Synchronous exception taken from EL1 while on SP_EL1: the only vector the
/// armed instructions can raise.
const SYNC_CURRENT_SPX: u64 = 4;

extern "C" fn handle(frame: &mut Frame, vector: u64) {
    let esr = ESR_EL1.get();
    let armed = ARMED_PC.load(Ordering::SeqCst);
    if vector == SYNC_CURRENT_SPX && armed != 0 && frame.elr == armed {
        ARMED_PC.store(0, Ordering::SeqCst);
        CAUGHT_ESR.store(esr, Ordering::SeqCst);
        CAUGHT_PC.store(frame.elr, Ordering::SeqCst);
        CAUGHT.store(true, Ordering::SeqCst);
        // Resume after the instruction: BRK and UNDEFINED both report the
        // trapping instruction itself as the preferred return address.
        frame.elr += 4;
        return;
    }
    let ec = esr_ec(esr);
    crate::crumbs::exception(
        vector,
        frame.elr,
        frame as *const Frame as u64,
        FAR_EL1.get(),
        esr,
    );
    hooks::fatal(format_args!(
        "{} exception: EC={:#04x} ({}){} ESR={:#x} FAR={:#x} ELR={:#x} SPSR={:#x}",
        vector_name(vector),
        ec,
        ec_name(ec),
        AbortStatus(ec, esr),
        esr,
        FAR_EL1.get(),
        frame.elr,
        frame.spsr,
    ))
}

/// For instruction/data aborts, the fault status code (ISS[5:0]) says why
/// the access failed; other classes print nothing.
struct AbortStatus(u64, u64);

impl fmt::Display for AbortStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AbortStatus(ec, esr) = *self;
        if !matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
            return Ok(());
        }
        let fsc = esr & 0x3f;
        let level = fsc & 3;
        let what = match fsc >> 2 {
            0 => "address size fault",
            1 => "translation fault",
            2 => "access flag fault",
            3 => "permission fault",
            _ => match fsc {
                0x10 => return write!(f, " FSC={fsc:#04x} (synchronous external abort)"),
                0x21 => return write!(f, " FSC={fsc:#04x} (alignment fault)"),
                _ => return write!(f, " FSC={fsc:#04x}"),
            },
        };
        write!(f, " FSC={fsc:#04x} ({what}, level {level})")
    }
}

fn vector_name(v: u64) -> &'static str {
    const NAMES: [&str; 16] = [
        "EL1t sync",
        "EL1t irq",
        "EL1t fiq",
        "EL1t serror",
        "EL1h sync",
        "EL1h irq",
        "EL1h fiq",
        "EL1h serror",
        "EL0/64 sync",
        "EL0/64 irq",
        "EL0/64 fiq",
        "EL0/64 serror",
        "EL0/32 sync",
        "EL0/32 irq",
        "EL0/32 fiq",
        "EL0/32 serror",
    ];
    NAMES.get(v as usize).copied().unwrap_or("unknown")
}

/// ESR_ELx.EC as the Arm ARM names it.
pub fn ec_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason / undefined instruction",
        0x01 => "WFI/WFE trapped",
        0x07 => "FP/SIMD access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC (AArch64)",
        0x16 => "HVC (AArch64)",
        0x17 => "SMC (AArch64)",
        0x18 => "MSR/MRS/system instruction trapped",
        0x19 => "SVE access trapped",
        0x20 => "instruction abort from lower EL",
        0x21 => "instruction abort, same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from lower EL",
        0x25 => "data abort, same EL",
        0x26 => "SP alignment fault",
        0x2c => "floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK",
        _ => "other",
    }
}
