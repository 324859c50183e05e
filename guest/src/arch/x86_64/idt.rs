//! The IDT: every architectural exception has a handler, and so have the
//! two interrupts a secondary CPU's idle loop takes ([`super::idle`]). All
//! exceptions but the deliberate #UD of [`super::trap`] and the guarded
//! RDMSR #GP of [`super::msr`] end the run through the crash path with vector, name,
//! error code, RIP/RSP, for #PF and #DF CR2. #VE (a TD's) and #VC (an
//! SEV-ES/SNP guest's) are served by ve.rs and vc.rs.

use crate::arch::hooks;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

static IDT: Once<InterruptDescriptorTable> = Once::new();
/// Unmapped page below the boot stack (0 = unknown): a #DF whose CR2 lies
/// there was a stack overflow, which the report says in words.
static STACK_GUARD: AtomicU64 = AtomicU64::new(0);

pub fn set_stack_guard(addr: u64) {
    STACK_GUARD.store(addr, Ordering::Relaxed);
}

pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        idt.divide_error.set_handler_fn(divide_error);
        idt.debug.set_handler_fn(debug);
        idt.non_maskable_interrupt.set_handler_fn(nmi);
        idt.breakpoint.set_handler_fn(breakpoint);
        idt.overflow.set_handler_fn(overflow);
        idt.bound_range_exceeded.set_handler_fn(bound_range);
        idt.invalid_opcode.set_handler_fn(invalid_opcode);
        idt.device_not_available
            .set_handler_fn(device_not_available);
        let df = idt.double_fault.set_handler_fn(double_fault);
        // SAFETY: IST slot DOUBLE_FAULT_IST_INDEX is set in the TSS that
        // gdt::init loads before this IDT, and that stack serves no one else.
        unsafe { df.set_stack_index(super::gdt::DOUBLE_FAULT_IST_INDEX) };
        idt.invalid_tss.set_handler_fn(invalid_tss);
        idt.segment_not_present.set_handler_fn(segment_not_present);
        idt.stack_segment_fault.set_handler_fn(stack_segment);
        idt.general_protection_fault
            .set_handler_fn(general_protection);
        idt.page_fault.set_handler_fn(page_fault);
        idt.x87_floating_point.set_handler_fn(x87_floating_point);
        idt.alignment_check.set_handler_fn(alignment_check);
        idt.machine_check.set_handler_fn(machine_check);
        idt.simd_floating_point.set_handler_fn(simd_floating_point);
        // SAFETY: both entries are naked functions that save every register,
        // call their handler and return with IRETQ, as an IDT gate needs
        // (#VE pushes no error code, #VC does: each entry matches its frame).
        unsafe {
            idt.virtualization
                .set_handler_addr(x86_64::VirtAddr::new(super::ve::entry as *const () as u64));
            idt.vmm_communication_exception
                .set_handler_addr(x86_64::VirtAddr::new(super::vc::entry as *const () as u64));
        }
        idt.cp_protection_exception
            .set_handler_fn(control_protection);
        idt.hv_injection_exception.set_handler_fn(hv_injection);
        idt.security_exception.set_handler_fn(security);
        idt[super::idle::WAKE_VECTOR].set_handler_fn(wake);
        idt[super::idle::SPURIOUS_VECTOR].set_handler_fn(spurious);
        idt
    });
    idt.load();
}

/// Ends the run: one crash line naming everything the CPU reported.
fn fatal(vector: u8, name: &str, frame: &InterruptStackFrame, error: Option<u64>) -> ! {
    let rip = frame.instruction_pointer.as_u64();
    let rsp = frame.stack_pointer.as_u64();
    let cr2 = Cr2::read_raw();
    // The GDT's base tells the CPUs apart (each has its own, gdt.rs).
    let gdt = x86_64::instructions::tables::sgdt().base.as_u64();
    crate::crumbs::exception(u64::from(vector), rip, rsp, cr2, gdt);
    match vector {
        8 | 14 => {
            let guard = STACK_GUARD.load(Ordering::Relaxed);
            let why = if guard != 0 && (guard..guard + super::paging::PAGE_SIZE).contains(&cr2) {
                " (stack overflow into the guard page)"
            } else {
                ""
            };
            hooks::fatal(format_args!(
                "x86 exception vector={vector} {name}{} cr2={cr2:#x} rip={rip:#x} rsp={rsp:#x}{why}",
                ErrCode(error)
            ))
        }
        _ => hooks::fatal(format_args!(
            "x86 exception vector={vector} {name}{} rip={rip:#x} rsp={rsp:#x}",
            ErrCode(error)
        )),
    }
}

/// ` error=0x..` when the vector pushes an error code.
struct ErrCode(Option<u64>);

impl core::fmt::Display for ErrCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(e) => write!(f, " error={e:#x}"),
            None => Ok(()),
        }
    }
}

extern "x86-interrupt" fn invalid_opcode(mut frame: InterruptStackFrame) {
    let rip = frame.instruction_pointer.as_u64();
    if super::trap::claim_ud(rip) {
        // SAFETY: claim_ud verified the two bytes at `rip` are the `ud2`
        // that trap_roundtrip raised; resuming after them continues its asm block.
        unsafe { frame.as_mut().update(|f| f.instruction_pointer += 2u64) };
        return;
    }
    fatal(6, "#UD invalid opcode", &frame, None)
}

extern "x86-interrupt" fn general_protection(mut frame: InterruptStackFrame, code: u64) {
    let rip = frame.instruction_pointer.as_u64();
    if super::msr::claim_gp(rip, code) {
        // SAFETY: claim_gp verified the two bytes at `rip` are the `rdmsr`
        // that rdmsr_guarded armed; resuming after them continues its asm
        // block, which then sees FAULTED.
        unsafe { frame.as_mut().update(|f| f.instruction_pointer += 2u64) };
        return;
    }
    fatal(13, "#GP general protection", &frame, Some(code))
}

/// The idle loop's wake IPI (idle.rs): its only job is to end the HLT.
extern "x86-interrupt" fn wake(_frame: InterruptStackFrame) {
    super::apic::eoi();
}

/// The APIC's spurious vector: no EOI (none is in service).
extern "x86-interrupt" fn spurious(_frame: InterruptStackFrame) {}

extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    fatal(14, "#PF page fault", &frame, Some(code.bits()))
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    fatal(8, "#DF double fault", &frame, Some(code))
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fatal(18, "#MC machine check", &frame, None)
}

/// Handlers that only report: (fn name, vector, mnemonic + words).
macro_rules! plain {
    ($($f:ident $v:literal $n:literal;)*) => {$(
        extern "x86-interrupt" fn $f(frame: InterruptStackFrame) {
            fatal($v, $n, &frame, None)
        }
    )*};
}
macro_rules! with_code {
    ($($f:ident $v:literal $n:literal;)*) => {$(
        extern "x86-interrupt" fn $f(frame: InterruptStackFrame, code: u64) {
            fatal($v, $n, &frame, Some(code))
        }
    )*};
}

plain! {
    divide_error 0 "#DE divide error";
    debug 1 "#DB debug";
    nmi 2 "NMI";
    breakpoint 3 "#BP breakpoint";
    overflow 4 "#OF overflow";
    bound_range 5 "#BR bound range exceeded";
    device_not_available 7 "#NM device not available";
    x87_floating_point 16 "#MF x87 floating-point";
    simd_floating_point 19 "#XM SIMD floating-point";
    hv_injection 28 "#HV hypervisor injection";
}

with_code! {
    invalid_tss 10 "#TS invalid TSS";
    segment_not_present 11 "#NP segment not present";
    stack_segment 12 "#SS stack-segment fault";
    alignment_check 17 "#AC alignment check";
    control_protection 21 "#CP control protection";
    security 30 "#SX security exception";
}
