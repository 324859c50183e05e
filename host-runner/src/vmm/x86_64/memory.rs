//! Guest RAM, who may touch it, and what a conversion does to it.
//!
//! Two modes (the JSON's `vmm.memory`):
//! - `sw-protected` (VM type KVM_X86_SW_PROTECTED_VM): RAM above the boot
//!   slot is a guest_memfd slot; private pages live in the guest_memfd, shared
//!   ones in an anonymous mapping, and a conversion is
//!   KVM_SET_MEMORY_ATTRIBUTES. Private and shared are different pages, so
//!   the VMM cannot carry bytes across: content is always zeroed (punch the
//!   hole on the side being left). The boot slot (RAM below the kernel's end,
//!   rounded up to 2 MiB) is an ordinary slot, like KVM's own selftests keep
//!   guest code in one: this VMM has no way to load the kernel into private
//!   guest_memfd pages, so there conversions are tracked only.
//! - `emulated-private` (default VM): one mapping — guest_memfd mmap'd
//!   (MMAP|INIT_SHARED) when the kernel offers it, else anonymous memory; the
//!   VMM tracks page states and refuses its own accesses to private pages.
//!   `--content` decides whether a conversion clears the page or keeps it.
//!
//! Everything starts private, as in a confidential VM: the guest shares what
//! it wants the VMM to see. Page states change only for pages that flip.

use super::super::VmmError;
use super::super::hostcheck::{HostView, Look};
use crate::cli::ContentArg;
use convtest_proto::hostcheck::Evidence;
use convtest_proto::range::{MemRange, RangeList, align_up};
use convtest_proto::tracker::{PageState, PageStates, Target};
use kvm_bindings::{
    KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, kvm_create_guest_memfd,
    kvm_memory_attributes, kvm_userspace_memory_region2,
};
use kvm_ioctls::VmFd;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemory, GuestMemoryMmap, GuestMemoryRegion};

pub const PAGE: u64 = 4096;
/// Legacy VGA/BIOS hole, not RAM in the memory map.
pub const LOW_HOLE: MemRange = MemRange::new(0xa0000, 0x10_0000);
/// Stay below the 32-bit MMIO area; no high-memory split yet.
pub const MAX_RAM: u64 = 3 << 30;
/// guest_memfd creation flags (uapi kvm.h).
pub const GMEM_FLAG_MMAP: u64 = 1;
pub const GMEM_FLAG_INIT_SHARED: u64 = 2;
const SLOT_SIZE_ALIGN: u64 = 2 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Default VM. `gmem_mmap`: the single backing is an mmap'd guest_memfd.
    EmulatedPrivate { gmem_mmap: bool },
    /// SW_PROTECTED VM; guest_memfd from `boot_end` up.
    SwProtected { boot_end: u64 },
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::EmulatedPrivate { .. } => "emulated-private",
            Mode::SwProtected { .. } => "sw-protected",
        }
    }

    pub fn backing(self) -> &'static str {
        match self {
            Mode::EmulatedPrivate { gmem_mmap: true } => "guest_memfd-mmap",
            Mode::EmulatedPrivate { gmem_mmap: false } => "anonymous",
            Mode::SwProtected { .. } => "guest_memfd+anonymous",
        }
    }
}

/// RAM ranges the guest is told about.
pub fn ram_ranges(size: u64) -> RangeList {
    let mut ram = RangeList::new();
    // Two ranges never overflow a RangeList's capacity.
    let _ = ram.push(MemRange::new(0, LOW_HOLE.start.min(size)));
    if size > LOW_HOLE.end {
        let _ = ram.push(MemRange::new(LOW_HOLE.end, size));
    }
    ram
}

/// Where the boot slot ends for a kernel ending at `kernel_end`.
pub fn boot_slot_end(kernel_end: u64) -> u64 {
    align_up(kernel_end, SLOT_SIZE_ALIGN)
}

/// Maximal runs of pages in `range` whose state is not `state`: the pages a
/// conversion actually flips (the only ones whose content may change).
pub fn runs_not_in(pages: &PageStates, range: MemRange, state: PageState) -> Vec<MemRange> {
    let mut runs = Vec::new();
    let mut open: Option<u64> = None;
    let mut a = range.start;
    while a < range.end {
        let flips = pages.state(a) != Some(state);
        match (flips, open) {
            (true, None) => open = Some(a),
            (false, Some(s)) => {
                runs.push(MemRange::new(s, a));
                open = None;
            }
            _ => {}
        }
        a += PAGE;
    }
    if let Some(s) = open {
        runs.push(MemRange::new(s, range.end));
    }
    runs
}

pub struct GuestRam {
    pub mem: GuestMemoryMmap<()>,
    pub size: u64,
    pub mode: Mode,
    pub content: ContentArg,
    pub pages: PageStates,
    /// sw-protected: the private side; emulated with gmem_mmap: the backing.
    gmem: Option<File>,
    /// Guest-physical address of offset 0 in `gmem`.
    gmem_base: u64,
}

pub fn check_size(size: u64) -> Result<(), VmmError> {
    if !(4 * LOW_HOLE.end..=MAX_RAM).contains(&size) || !size.is_multiple_of(SLOT_SIZE_ALIGN) {
        return Err(VmmError::Config(format!(
            "guest RAM {} MiB: the x86 VMM supports 4..={} MiB in 2 MiB steps",
            size >> 20,
            MAX_RAM >> 20
        )));
    }
    Ok(())
}

fn create_gmem(vm: &VmFd, size: u64, flags: u64) -> Result<File, VmmError> {
    let fd = vm
        .create_guest_memfd(kvm_create_guest_memfd {
            size,
            flags,
            ..Default::default()
        })
        .map_err(VmmError::kvm("KVM_CREATE_GUEST_MEMFD"))?;
    // SAFETY: KVM just returned this fd to us and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn region2(
    slot: u32,
    region: &vm_memory::GuestRegionMmap<()>,
    gmem: Option<(&File, u64)>,
) -> kvm_userspace_memory_region2 {
    let (flags, fd, offset) = match gmem {
        Some((f, off)) => (KVM_MEM_GUEST_MEMFD, f.as_raw_fd() as u32, off),
        None => (0, 0, 0),
    };
    kvm_userspace_memory_region2 {
        slot,
        flags,
        guest_phys_addr: region.start_addr().0,
        memory_size: region.len(),
        userspace_addr: region.as_ptr() as u64,
        guest_memfd_offset: offset,
        guest_memfd: fd,
        ..Default::default()
    }
}

fn set_slot(vm: &VmFd, r: kvm_userspace_memory_region2) -> Result<(), VmmError> {
    // SAFETY: userspace_addr/memory_size describe a mapping owned by the
    // GuestMemoryMmap in the same GuestRam, which outlives the VM's use of it
    // (the VM fd is dropped first: see `x86_64::Vm` field order).
    unsafe { vm.set_user_memory_region2(r) }.map_err(VmmError::kvm("KVM_SET_USER_MEMORY_REGION2"))
}

impl GuestRam {
    /// Maps RAM, registers the memory slots and marks everything private.
    pub fn new(vm: &VmFd, size: u64, mode: Mode, content: ContentArg) -> Result<Self, VmmError> {
        check_size(size)?;
        let memory = |e: vm_memory::mmap::FromRangesError| VmmError::Memory(e.to_string());
        let (mem, gmem, gmem_base) = match mode {
            Mode::EmulatedPrivate { gmem_mmap: false } => (
                GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)])
                    .map_err(memory)?,
                None,
                0,
            ),
            Mode::EmulatedPrivate { gmem_mmap: true } => {
                let f = create_gmem(vm, size, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED)?;
                let dup = f.try_clone().map_err(|source| VmmError::Sys {
                    call: "dup(guest_memfd)",
                    source,
                })?;
                let mem = GuestMemoryMmap::from_ranges_with_files(&[(
                    GuestAddress(0),
                    size as usize,
                    Some(FileOffset::new(dup, 0)),
                )])
                .map_err(memory)?;
                (mem, Some(f), 0)
            }
            Mode::SwProtected { boot_end } => {
                if boot_end >= size {
                    return Err(VmmError::Config(format!(
                        "the kernel fills RAM up to {boot_end:#x}: give the guest more than {} MiB",
                        size >> 20
                    )));
                }
                let mem = GuestMemoryMmap::from_ranges(&[
                    (GuestAddress(0), boot_end as usize),
                    (GuestAddress(boot_end), (size - boot_end) as usize),
                ])
                .map_err(memory)?;
                (mem, Some(create_gmem(vm, size - boot_end, 0)?), boot_end)
            }
        };
        for (slot, region) in mem.iter().enumerate() {
            let gmem_part = match (mode, &gmem) {
                (Mode::EmulatedPrivate { gmem_mmap: true }, Some(f)) => {
                    Some((f, region.start_addr().0))
                }
                (Mode::SwProtected { boot_end }, Some(f)) if region.start_addr().0 == boot_end => {
                    Some((f, 0))
                }
                _ => None,
            };
            set_slot(vm, region2(slot as u32, region, gmem_part))?;
        }
        let ram = GuestRam {
            mem,
            size,
            mode,
            content,
            pages: PageStates::new(&ram_ranges(size), PAGE, PageState::Private),
            gmem,
            gmem_base,
        };
        if let Mode::SwProtected { boot_end } = mode {
            ram.set_attributes(vm, MemRange::new(boot_end, size), Target::Private)?;
        }
        Ok(ram)
    }

    /// Host address of `gpa` (loader and emulation use).
    fn host_ptr(&self, gpa: u64, len: u64) -> Result<*mut u8, VmmError> {
        self.mem
            .get_slice(GuestAddress(gpa), len as usize)
            .map(|s| s.ptr_guard_mut().as_ptr())
            .map_err(|e| VmmError::Memory(format!("{gpa:#x}+{len:#x}: {e}")))
    }

    /// Boot-time load before the guest runs (the image, start_info): the
    /// loader's own writes, like firmware measuring pages into a CVM.
    pub fn load(&self, gpa: u64, data: &[u8]) -> Result<(), VmmError> {
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .map_err(|e| VmmError::Memory(format!("write {gpa:#x}+{}: {e}", data.len())))
    }

    fn gmem_part(&self, range: MemRange) -> Option<MemRange> {
        match self.mode {
            Mode::SwProtected { boot_end } if range.end > boot_end => {
                Some(MemRange::new(range.start.max(boot_end), range.end))
            }
            _ => None,
        }
    }

    fn set_attributes(&self, vm: &VmFd, range: MemRange, state: Target) -> Result<(), VmmError> {
        let attributes = match state {
            Target::Private => u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE),
            Target::Shared => 0,
        };
        vm.set_memory_attributes(kvm_memory_attributes {
            address: range.start,
            size: range.len(),
            attributes,
            flags: 0,
        })
        .map_err(VmmError::kvm("KVM_SET_MEMORY_ATTRIBUTES"))
    }

    /// Converts `range` (inside RAM, page aligned: the caller checked) to
    /// `state`. Only pages that flip are touched.
    pub fn convert(&mut self, vm: &VmFd, range: MemRange, state: Target) -> Result<(), VmmError> {
        let flips = runs_not_in(&self.pages, range, state.state());
        for run in &flips {
            if let Some(g) = self.gmem_part(*run) {
                self.set_attributes(vm, g, state)?;
            }
            if self.content == ContentArg::Zero {
                self.clear(*run, state)?;
            }
        }
        self.pages
            .set(range, state.state())
            .map_err(|e| VmmError::Memory(e.to_string()))
    }

    /// Makes the page read back as zero on the side the guest is moving to.
    fn clear(&self, run: MemRange, to: Target) -> Result<(), VmmError> {
        let in_gmem = self.gmem_part(run);
        match (self.mode, to, in_gmem) {
            // Going private in sw-protected memory: drop the private pages.
            (Mode::SwProtected { .. }, Target::Private, Some(g)) => {
                self.punch(g)?;
                // The boot-slot part (if any) is tracked only: clear it too.
                let below = MemRange::new(run.start, g.start);
                if !below.is_empty() {
                    self.discard_anon(below)?;
                }
                Ok(())
            }
            (Mode::EmulatedPrivate { gmem_mmap: true }, _, _) => self.punch(run),
            _ => self.discard_anon(run),
        }
    }

    fn punch(&self, range: MemRange) -> Result<(), VmmError> {
        let Some(f) = &self.gmem else {
            return Err(VmmError::Memory("no guest_memfd to punch".into()));
        };
        let off = range.start - self.gmem_base;
        // SAFETY: plain syscall on an fd we own; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                f.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as libc::off_t,
                range.len() as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(VmmError::Sys {
                call: "fallocate(guest_memfd, PUNCH_HOLE)",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn discard_anon(&self, range: MemRange) -> Result<(), VmmError> {
        let ptr = self.host_ptr(range.start, range.len())?;
        // SAFETY: `ptr..ptr+len` lies in a private anonymous mapping owned by
        // self.mem (get_slice checked the bounds); MADV_DONTNEED only drops
        // the pages, which read back as zero — for the guest too, via KVM's
        // MMU notifier.
        let rc = unsafe { libc::madvise(ptr.cast(), range.len() as usize, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(VmmError::Sys {
                call: "madvise(MADV_DONTNEED)",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Ok when every page of `range` is in `state`, else the first page
    /// that is not (or is not RAM).
    fn all_in(&self, range: MemRange, state: PageState) -> Result<(), u64> {
        let mut a = range.start & !(PAGE - 1);
        while a < range.end {
            if self.pages.state(a) != Some(state) {
                return Err(a);
            }
            a += PAGE;
        }
        Ok(())
    }
}

impl HostView for GuestRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<Evidence, Look> {
        let range = MemRange::from_len(gpa, buf.len() as u64);
        // sw-protected: the guest_memfd slot's host mapping is the shared
        // side of every page, private ones included (their private bytes
        // live elsewhere), so the host really can read all of it.
        let host_mapped = self
            .gmem_part(range)
            .is_some_and(|g| g == range && self.pages.ranges().any(|r| r.covers(&range)));
        if host_mapped {
            return self
                .mem
                .read_slice(buf, GuestAddress(gpa))
                .map(|()| Evidence::Enforced)
                .map_err(|e| Look::new(Evidence::Enforced, e.to_string()));
        }
        if let Err(page) = self.all_in(range, PageState::Shared) {
            return Err(Look::new(
                Evidence::Bookkeeping,
                match self.pages.state(page) {
                    Some(_) => format!("page {page:#x} is private; the VMM does not touch it"),
                    None => format!("{page:#x} is not guest RAM"),
                },
            ));
        }
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map(|()| Evidence::Bookkeeping)
            .map_err(|e| Look::new(Evidence::Bookkeeping, e.to_string()))
    }

    fn visible(&self) -> (Vec<MemRange>, Evidence) {
        let mut out: Vec<MemRange> = Vec::new();
        let gmem_slot = match self.mode {
            Mode::SwProtected { boot_end } => Some(MemRange::new(boot_end, self.size)),
            Mode::EmulatedPrivate { .. } => None,
        };
        for r in self.pages.ranges() {
            let mut a = r.start;
            while a < r.end {
                let mapped = gmem_slot.is_some_and(|g| g.contains(a));
                if mapped || self.pages.state(a) == Some(PageState::Shared) {
                    match out.last_mut() {
                        Some(last) if last.end == a => last.end += PAGE,
                        _ => out.push(MemRange::new(a, a + PAGE)),
                    }
                }
                a += PAGE;
            }
        }
        let evidence = if gmem_slot.is_some() {
            Evidence::Enforced
        } else {
            Evidence::Bookkeeping
        };
        (out, evidence)
    }

    fn private_probe(&self, range: MemRange, _canary: u64) -> Result<Look, Look> {
        if let Ok(()) = self.all_in(range, PageState::Shared) {
            return Err(Look::new(
                Evidence::Bookkeeping,
                format!("{range} is shared"),
            ));
        }
        Ok(Look::new(
            Evidence::Bookkeeping,
            format!(
                "{range} is private in the VMM's tracking ({}): the VMM refuses its own access",
                self.mode.as_str()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_map_skips_the_low_hole() {
        let r = ram_ranges(64 << 20);
        assert_eq!(
            r.as_slice(),
            &[
                MemRange::new(0, 0xa0000),
                MemRange::new(0x10_0000, 64 << 20)
            ]
        );
    }

    #[test]
    fn only_pages_that_flip_are_touched() {
        let mut p = PageStates::new(&ram_ranges(64 << 20), PAGE, PageState::Private);
        let r = MemRange::new(0x20_0000, 0x20_8000);
        assert!(
            runs_not_in(&p, r, PageState::Private).is_empty(),
            "no-op conversion"
        );
        assert_eq!(runs_not_in(&p, r, PageState::Shared), [r]);
        p.set(MemRange::new(0x20_2000, 0x20_4000), PageState::Shared)
            .unwrap();
        assert_eq!(
            runs_not_in(&p, r, PageState::Shared),
            [
                MemRange::new(0x20_0000, 0x20_2000),
                MemRange::new(0x20_4000, 0x20_8000)
            ]
        );
        assert_eq!(
            runs_not_in(&p, r, PageState::Private),
            [MemRange::new(0x20_2000, 0x20_4000)]
        );
    }

    #[test]
    fn boot_slot_rounds_up_to_2m() {
        assert_eq!(boot_slot_end(0x10_0000 + 1), 2 << 20);
        assert_eq!(boot_slot_end(4 << 20), 4 << 20);
    }

    #[test]
    fn sizes_outside_the_supported_window_are_config_errors() {
        assert!(check_size(2 << 20).is_err());
        assert!(check_size(MAX_RAM + (2 << 20)).is_err());
        assert!(check_size((64 << 20) + 4096).is_err());
        assert!(check_size(256 << 20).is_ok());
    }
}
