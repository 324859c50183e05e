//! #VC, the VMM communication exception an SEV-ES/SNP guest takes where a
//! normal guest would exit. Served here: CPUID (the GHCB MSR protocol,
//! one register per VMGEXIT; the protocol has no sub-leaf, so sub-leaf 0
//! is what is asked) and port I/O (through the GHCB page, registered with
//! the hypervisor on first use). Anything else ends the run naming the exit
//! code. Only an SEV-ES/SNP guest ever raises #VC.
//!
//! The hypervisor answers CPUID here unchecked (SNP's validated CPUID page
//! is not read): good enough for a test kernel, said in docs/tee.md.

use super::{paging, snp};
use crate::arch::hooks;
use convtest_proto::size_walk::PageSize;
use convtest_proto::snp::ghcb::{
    PscOp, cpuid_request, cpuid_response, psc_request, psc_response, register_request,
    register_response,
};
use convtest_proto::snp::vc::{
    EXIT_CPUID, EXIT_IOIO, GHCB_PROTOCOL_VERSION, GHCB_RAX, GHCB_SW_EXIT_CODE, GHCB_SW_EXIT_INFO_1,
    GHCB_SW_EXIT_INFO_2, GHCB_USAGE, GHCB_VALID_BITMAP, GHCB_VERSION, decode_port_io,
    ioio_exit_info, valid_bit,
};
use core::arch::naked_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

/// A pad for alignment, the general registers as the entry pushed them, the
/// exit code #VC pushed, then the CPU's interrupt frame.
#[repr(C)]
struct TrapFrame {
    _pad: u64,
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    exit_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The IDT's #VC entry. Register contract: the CPU pushed SS, RSP, RFLAGS,
/// CS, RIP and the exit code (RSP 16-byte aligned before them); 15 pushes
/// and an 8-byte pad keep the call aligned; the pad and the exit code are
/// dropped before IRETQ, every register restored.
#[unsafe(naked)]
pub extern "C" fn entry() {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
        "push r15",
        "sub rsp, 8",
        "mov rdi, rsp",
        "call {handler}",
        "add rsp, 8",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 8",
        "iretq",
        handler = sym handler,
    )
}

extern "C" fn handler(f: &mut TrapFrame) {
    match f.exit_code {
        EXIT_CPUID => cpuid(f),
        EXIT_IOIO => port_io(f),
        code => fatal(
            f,
            format_args!("exit code {code:#x}, which this handler does not serve"),
        ),
    }
}

fn fatal(f: &TrapFrame, why: core::fmt::Arguments<'_>) -> ! {
    hooks::fatal(format_args!(
        "x86 exception vector=29 #VC at rip={:#x}: {why}",
        f.rip
    ))
}

fn cpuid(f: &mut TrapFrame) {
    let leaf = f.rax as u32;
    let mut out = [0u64; 4];
    for (reg, slot) in out.iter_mut().enumerate() {
        let answer = snp::ghcb_msr_exchange(cpuid_request(leaf, reg as u8));
        match cpuid_response(answer) {
            Some(v) => *slot = u64::from(v),
            None => fatal(
                f,
                format_args!("CPUID {leaf:#x} through the GHCB MSR got {answer:#x}"),
            ),
        }
    }
    [f.rax, f.rbx, f.rcx, f.rdx] = out;
    f.rip += 2;
}

/// The GHCB page: 4 KiB, shared with the hypervisor once registered.
#[repr(C, align(4096))]
struct GhcbPage(UnsafeCell<[u8; 4096]>);

// SAFETY: only the #VC handler touches it, on the one CPU a confidential
// run has (--tee allows no second CPU), and the handler itself raises no
// #VC (it uses no CPUID and no port I/O), so it is never re-entered.
unsafe impl Sync for GhcbPage {}

static GHCB: GhcbPage = GhcbPage(UnsafeCell::new([0; 4096]));
/// The GHCB page's GPA once registered (0: not yet).
static GHCB_GPA: AtomicU64 = AtomicU64::new(0);

/// The registered GHCB page's GPA, if the handler registered one.
pub fn ghcb_gpa_registered() -> Option<u64> {
    match GHCB_GPA.load(Ordering::Relaxed) {
        0 => None,
        gpa => Some(gpa),
    }
}

/// Makes the GHCB page shared (SNP: rescind, then a page state change) and
/// registers its GPA (GHCB MSR protocol 0x012/0x013); its GPA.
fn ghcb_gpa(f: &TrapFrame) -> u64 {
    let known = GHCB_GPA.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    let va = GHCB.0.get() as u64;
    let Some(gpa) = paging::virt_to_phys(va) else {
        fatal(f, format_args!("the GHCB page at {va:#x} is not mapped"))
    };
    let gfn = gpa >> 12;
    let (rax, cf) = snp::pvalidate(va, PageSize::Size4K, false);
    if rax != 0 || cf {
        fatal(
            f,
            format_args!("rescinding the GHCB page: PVALIDATE rax={rax} cf={cf}"),
        );
    }
    if let Err(e) = psc_response(snp::ghcb_msr_exchange(psc_request(gfn, PscOp::Shared))) {
        fatal(f, format_args!("making the GHCB page shared: {e}"));
    }
    let answer = snp::ghcb_msr_exchange(register_request(gfn));
    if !register_response(answer, gfn) {
        fatal(
            f,
            format_args!("registering the GHCB page {gpa:#x}: answer {answer:#x}"),
        );
    }
    GHCB_GPA.store(gpa, Ordering::Relaxed);
    gpa
}

fn port_io(f: &mut TrapFrame) {
    // SAFETY: RIP is the faulting instruction in this kernel's own mapped
    // code; at most 3 bytes of it are read.
    let code: [u8; 3] = unsafe { core::ptr::read_unaligned(f.rip as *const [u8; 3]) };
    let Some(io) = decode_port_io(&code) else {
        fatal(
            f,
            format_args!("port instruction {code:02x?} is not one this handler decodes"),
        )
    };
    let port = io.imm_port.map_or(f.rdx as u16, u16::from);
    let gpa = ghcb_gpa(f);
    let page = GHCB.0.get();
    let put = |off: usize, v: u64| {
        // SAFETY: `off` is a field offset inside the 4 KiB page, 8-aligned;
        // the page is this handler's alone (see GhcbPage).
        unsafe { (page.cast::<u8>().add(off) as *mut u64).write_volatile(v) };
        let (byte, bit) = valid_bit(off);
        // SAFETY: the valid bitmap's 16 bytes lie inside the page.
        unsafe {
            let p = page.cast::<u8>().add(GHCB_VALID_BITMAP + byte);
            p.write_volatile(p.read_volatile() | bit);
        }
    };
    // SAFETY: clears the save area's valid bitmap (16 bytes inside the page).
    unsafe { core::ptr::write_bytes(page.cast::<u8>().add(GHCB_VALID_BITMAP), 0, 16) };
    let mask = match io.size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    };
    if !io.input {
        put(GHCB_RAX, f.rax & mask);
    }
    put(GHCB_SW_EXIT_CODE, EXIT_IOIO);
    put(GHCB_SW_EXIT_INFO_1, ioio_exit_info(port, io.size, io.input));
    put(GHCB_SW_EXIT_INFO_2, 0);
    // SAFETY: the protocol version (u16) and usage (u32) fields lie inside
    // the page, naturally aligned.
    unsafe {
        (page.cast::<u8>().add(GHCB_PROTOCOL_VERSION) as *mut u16).write_volatile(GHCB_VERSION);
        (page.cast::<u8>().add(GHCB_USAGE) as *mut u32).write_volatile(0);
    }
    snp::write_ghcb_msr(gpa);
    snp::vmgexit();
    // GHCB spec: on return SW_EXITINFO1[31:0] is 0, or 1 with an event to
    // inject in SW_EXITINFO2.
    // SAFETY: as for `put`.
    let result =
        unsafe { (page.cast::<u8>().add(GHCB_SW_EXIT_INFO_1) as *const u64).read_volatile() };
    if result & 0xffff_ffff != 0 {
        fatal(
            f,
            format_args!("port {port:#x}: the hypervisor answered SW_EXITINFO1={result:#x}"),
        );
    }
    if io.input {
        // SAFETY: as for `put`.
        let v = unsafe { (page.cast::<u8>().add(GHCB_RAX) as *const u64).read_volatile() };
        f.rax = (f.rax & !mask) | (v & mask);
    }
    f.rip += u64::from(io.len);
}
