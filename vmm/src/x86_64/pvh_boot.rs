//! The PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h and
//! docs/misc/pvh.html): `hvm_start_info` version 1 with a memory map, the
//! command line, and the 32-bit flat protected-mode entry state.

use convtest_proto::range::RangeList;
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Where the VMM puts its boot data (below the kernel at 1 MiB; the guest
/// reserves these pages itself from start_info).
pub const START_INFO_GPA: u64 = 0x6000;
pub const MEMMAP_GPA: u64 = START_INFO_GPA + START_INFO_SIZE as u64;
pub const CMDLINE_GPA: u64 = 0x7000;
pub const CMDLINE_MAX: usize = 0x1000 - 1;
pub const START_INFO_SIZE: usize = 56;
pub const MEMMAP_ENTRY_SIZE: usize = 24;
const E820_RAM: u32 = 1;

/// start_info bytes followed by the memory map (written at START_INFO_GPA).
pub fn start_info(ram: &RangeList) -> Vec<u8> {
    let mut b = Vec::with_capacity(START_INFO_SIZE + ram.len() * MEMMAP_ENTRY_SIZE);
    b.extend_from_slice(&START_INFO_MAGIC.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // version: has memmap
    b.extend_from_slice(&0u32.to_le_bytes()); // flags
    b.extend_from_slice(&0u32.to_le_bytes()); // nr_modules
    b.extend_from_slice(&0u64.to_le_bytes()); // modlist_paddr
    b.extend_from_slice(&CMDLINE_GPA.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // rsdp_paddr: no ACPI
    b.extend_from_slice(&MEMMAP_GPA.to_le_bytes());
    b.extend_from_slice(&(ram.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // reserved
    for r in ram.iter() {
        b.extend_from_slice(&r.start.to_le_bytes());
        b.extend_from_slice(&r.len().to_le_bytes());
        b.extend_from_slice(&E820_RAM.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
    }
    b
}

/// NUL-terminated command line, or None when it does not fit its page.
pub fn cmdline(plan: &str) -> Option<Vec<u8>> {
    if plan.len() > CMDLINE_MAX || plan.as_bytes().contains(&0) {
        return None;
    }
    let mut v = plan.as_bytes().to_vec();
    v.push(0);
    Some(v)
}

/// General registers at the PVH entry: ebx = start_info, eflags bit 1.
pub fn entry_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rbx: START_INFO_GPA,
        rflags: 0x2,
        ..Default::default()
    }
}

fn flat(selector: u16, type_: u8, s: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Segment state at the PVH entry: flat 32-bit code and data, a 32-bit
/// busy TSS, CR0.PE set, paging off, CR4 and EFER clear.
pub fn entry_sregs(mut s: kvm_sregs) -> kvm_sregs {
    let data = flat(0x10, 0x3, 1);
    s.cs = flat(0x08, 0xb, 1);
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = kvm_segment {
        limit: 0x67,
        g: 0,
        db: 0,
        ..flat(0x18, 0xb, 0)
    };
    s.cr0 = 0x11; // PE | ET
    s.cr3 = 0;
    s.cr4 = 0;
    s.efer = 0;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::range::MemRange;

    #[test]
    fn start_info_layout_matches_the_abi() {
        let mut ram = RangeList::new();
        ram.push(MemRange::new(0, 0xa0000)).unwrap();
        ram.push(MemRange::new(0x10_0000, 0x400_0000)).unwrap();
        let b = start_info(&ram);
        assert_eq!(b.len(), START_INFO_SIZE + 2 * MEMMAP_ENTRY_SIZE);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(u32_at(0), START_INFO_MAGIC);
        assert_eq!(u32_at(4), 1);
        assert_eq!(u64_at(24), CMDLINE_GPA);
        assert_eq!(u64_at(40), MEMMAP_GPA);
        assert_eq!(u32_at(48), 2);
        // Second entry: 1 MiB .. 64 MiB, type RAM.
        let e = START_INFO_SIZE + MEMMAP_ENTRY_SIZE;
        assert_eq!(u64_at(e), 0x10_0000);
        assert_eq!(u64_at(e + 8), 0x400_0000 - 0x10_0000);
        assert_eq!(u32_at(e + 16), 1);
        // Matches the C struct as linux-loader binds it.
        assert_eq!(
            std::mem::size_of::<linux_loader::loader::elf::start_info::hvm_start_info>(),
            START_INFO_SIZE
        );
        assert!(MEMMAP_GPA + (2 * MEMMAP_ENTRY_SIZE) as u64 <= CMDLINE_GPA);
    }

    #[test]
    fn cmdline_is_nul_terminated_and_bounded() {
        assert_eq!(cmdline("seed=1").unwrap(), b"seed=1\0");
        assert!(cmdline(&"x".repeat(CMDLINE_MAX + 1)).is_none());
        assert!(cmdline("a\0b").is_none());
    }

    #[test]
    fn entry_state_is_flat_protected_mode_without_paging() {
        let s = entry_sregs(kvm_sregs::default());
        assert_eq!(s.cr0 & 1, 1);
        assert_eq!(s.cr0 & (1 << 31), 0);
        assert_eq!((s.cs.db, s.cs.l, s.cs.limit), (1, 0, 0xffff_ffff));
        assert_eq!(entry_regs(0x10_0000).rbx, START_INFO_GPA);
    }
}
