//! Our own GDT with a TSS whose IST slot 0 is a separate stack for #DF: a
//! stack overflow faults on the guard page, the CPU cannot push the #PF frame
//! onto the dead stack and raises #DF, which then runs here instead of
//! escalating to a triple fault (a silent reset). Secondary CPUs get their
//! own copy of both ([`new_cpu_tables`]).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
const IST_STACK_BYTES: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_BYTES]);

/// Written only by the CPU when it delivers #DF.
static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_BYTES]);

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

pub fn init() {
    let tss = TSS.call_once(|| {
        let base = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
        tss_with_df_stack(base + IST_STACK_BYTES as u64)
    });
    let (gdt, sel) = GDT.call_once(|| build(tss));
    load(gdt, sel);
}

/// A secondary CPU's own GDT and TSS: a TSS is marked busy when loaded and
/// cannot be loaded by a second CPU, and each CPU needs its own #DF stack.
/// Same layout and selectors as the boot CPU's.
pub struct CpuTables {
    gdt: GlobalDescriptorTable,
    sel: Selectors,
}

/// Builds (on the heap, for the life of the kernel) one CPU's tables.
pub fn new_cpu_tables() -> &'static CpuTables {
    let stack: &'static mut [u8] = alloc::vec![0u8; IST_STACK_BYTES].leak();
    let top = (VirtAddr::from_ptr(stack.as_ptr()) + IST_STACK_BYTES as u64).align_down(16u64);
    let tss: &'static TaskStateSegment =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(tss_with_df_stack(top)));
    let (gdt, sel) = build(tss);
    alloc::boxed::Box::leak(alloc::boxed::Box::new(CpuTables { gdt, sel }))
}

/// Loads `t` on the calling CPU (once per CPU: it marks the TSS busy).
pub fn load_cpu_tables(t: &'static CpuTables) {
    load(&t.gdt, &t.sel);
}

fn tss_with_df_stack(top: VirtAddr) -> TaskStateSegment {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST_INDEX)] = top;
    tss
}

fn build(tss: &'static TaskStateSegment) -> (GlobalDescriptorTable, Selectors) {
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss = gdt.append(Descriptor::tss_segment(tss));
    (gdt, Selectors { code, data, tss })
}

fn load(gdt: &'static GlobalDescriptorTable, sel: &Selectors) {
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded (flat 64-bit code and
    // data, and an available TSS that lives as long as the kernel and that
    // no other CPU has loaded); nothing holds the old selectors.
    unsafe {
        CS::set_reg(sel.code);
        SS::set_reg(sel.data);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        load_tss(sel.tss);
    }
}
