//! What every entry path hands to `kmain`: the platform facts above the arch layer.

use convtest_proto::range::{MemRange, RangeError, RangeList};

pub struct BootInfo {
    /// `pvh`, `bootloader-bios`, `bootloader-uefi`, `arm64-image`.
    pub entry: &'static str,
    /// Privilege detail for the header, e.g. `el1` or `el1-from-el2`, `long-mode`.
    pub cpu_mode: &'static str,
    /// Usable RAM as the firmware / loader / DTB reported it, physical.
    pub ram: RangeList,
    /// Parts of `ram` already in use before `kmain`: the kernel image and its
    /// stack, page tables, boot structures, DTB. Never handed to tests.
    pub reserved: RangeList,
    /// Physical extent of the loaded kernel image (text through bss).
    pub kernel: MemRange,
    /// The plan, or "" when the boot path carries none.
    pub cmdline: &'static str,
    /// Virtual address of physical address 0 (0 when identity-mapped).
    pub phys_offset: u64,
    /// Console device, e.g. `com1@0x3f8`, `pl011@0x9000000`.
    pub console: &'static str,
    /// The CPUs the platform describes (arm64: the DTB's /cpus MPIDRs, boot
    /// CPU first); empty where the boot path does not describe them (x86:
    /// no ACPI parsing here, APIC IDs 0.. are assumed).
    pub cpus: CpuList,
    /// Bytes the firmware reported unaccepted (UEFI memory type 15, what
    /// TDVF and OVMF-AmdSev may leave for the OS to accept), kept out of
    /// `ram`: never touched, so never accepted. 0 elsewhere.
    pub unaccepted: u64,
}

/// Hardware CPU ids (arm64 MPIDR affinity, x86 APIC ID), at most `MAX_CPUS`.
#[derive(Clone, Copy, Debug)]
pub struct CpuList {
    ids: [u64; MAX_CPUS],
    len: usize,
    /// Described beyond `MAX_CPUS` (counted, not kept).
    dropped: usize,
}

pub const MAX_CPUS: usize = convtest_proto::plan::MAX_CPUS as usize;

impl CpuList {
    pub const EMPTY: CpuList = CpuList {
        ids: [0; MAX_CPUS],
        len: 0,
        dropped: 0,
    };

    #[cfg_attr(
        target_arch = "x86_64",
        expect(
            dead_code,
            reason = "x86 boot paths describe no CPUs (no ACPI parsing)"
        )
    )]
    pub fn push(&mut self, id: u64) {
        match self.ids.get_mut(self.len) {
            Some(slot) => {
                *slot = id;
                self.len += 1;
            }
            None => self.dropped += 1,
        }
    }

    pub fn ids(&self) -> &[u64] {
        &self.ids[..self.len]
    }

    /// How many CPUs the platform described, kept or not.
    pub fn described(&self) -> usize {
        self.len + self.dropped
    }
}

impl BootInfo {
    /// Physical RAM not reserved: what the heap and the memory tests may use.
    pub fn free_ram(&self) -> Result<RangeList, RangeError> {
        let mut free = self.ram;
        for r in self.reserved.iter() {
            free.subtract(r)?;
        }
        Ok(free)
    }

    pub fn phys_to_virt(&self, pa: u64) -> *mut u8 {
        pa.wrapping_add(self.phys_offset) as *mut u8
    }
}
