//! What the memory model asks of the host to carry out a conversion: the
//! four operations that touch KVM, guest_memfd or the host mapping, behind
//! one trait so the same serving code runs against the real VM and against
//! the fake in `fake.rs` (the property test). Every range handed to these
//! calls lies inside one memory slot: the model splits first, and the real
//! implementation refuses (an error, never a panic) a range that does not.

use crate::error::VmmError;
use convtest_proto::range::MemRange;
use convtest_proto::tracker::Target;
use kvm_bindings::{
    KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, kvm_create_guest_memfd,
    kvm_memory_attributes, kvm_userspace_memory_region, kvm_userspace_memory_region2,
};
use kvm_ioctls::VmFd;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, GuestMemoryRegion};

/// guest_memfd creation flags (uapi kvm.h).
pub const GMEM_FLAG_MMAP: u64 = 1;
pub const GMEM_FLAG_INIT_SHARED: u64 = 2;

/// A host operation that failed while serving the guest: the guest gets an
/// error answer and the VMM a fact line, never its end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// An ioctl or syscall failed with `errno`.
    #[error("{call}: {}", std::io::Error::from_raw_os_error(*errno))]
    Os { call: &'static str, errno: i32 },
    /// The range is not inside one slot of this platform (a model bug).
    #[error("{call}: {range} is not inside one memory slot")]
    Bounds { call: &'static str, range: MemRange },
}

impl PlatformError {
    pub fn call(&self) -> &'static str {
        match self {
            PlatformError::Os { call, .. } | PlatformError::Bounds { call, .. } => call,
        }
    }

    /// The raw errno, when there was one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            PlatformError::Os { errno, .. } => Some(*errno),
            PlatformError::Bounds { .. } => None,
        }
    }
}

pub const CALL_SET_ATTRIBUTES: &str = "KVM_SET_MEMORY_ATTRIBUTES";
pub const CALL_PUNCH: &str = "fallocate(guest_memfd,PUNCH_HOLE)";
pub const CALL_DISCARD: &str = "madvise(MADV_DONTNEED)";
pub const CALL_READ: &str = "read(host_mapping)";

pub trait Platform {
    /// KVM_SET_MEMORY_ATTRIBUTES over `range` (inside the guest_memfd
    /// slot). All or nothing: KVM reserves the whole range's attribute
    /// entries before it changes one (`kvm_vm_set_mem_attributes`), so an
    /// error means no page changed.
    fn set_attributes(&mut self, range: MemRange, to: Target) -> Result<(), PlatformError>;

    /// Frees the guest_memfd pages behind `range`: they read back as zero.
    fn punch(&mut self, range: MemRange) -> Result<(), PlatformError>;

    /// Drops the host mapping's anonymous pages of `range`: zero on the
    /// next touch, for the guest too (KVM's MMU notifier unmaps them).
    fn discard(&mut self, range: MemRange) -> Result<(), PlatformError>;

    /// Copies the host mapping at `gpa` (one slot) into `buf`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PlatformError>;
}

fn last_os_error(call: &'static str) -> PlatformError {
    PlatformError::Os {
        call,
        errno: std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    }
}

/// The real VM: its fd, the host mapping of guest RAM and the guest_memfd.
/// Field order is drop order: the VM fd closes before the mapping it points
/// into is unmapped.
pub struct KvmPlatform {
    vm: VmFd,
    mem: GuestMemoryMmap<()>,
    /// sw-protected: the private side of the upper slot; emulated with
    /// gmem-mmap: the backing of all RAM.
    gmem: Option<File>,
    /// The guest-physical range `gmem` backs (offset 0 at `start`).
    gmem_range: MemRange,
}

pub fn create_gmem(vm: &VmFd, size: u64, flags: u64) -> Result<File, VmmError> {
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

/// The flags an emulated-private backing guest_memfd is created with.
pub const EMULATED_GMEM_FLAGS: u64 = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED;

/// How memory slots are registered. KVM_SET_USER_MEMORY_REGION2
/// (KVM_CAP_USER_MEMORY2, 6.8+) is the only way to bind a guest_memfd;
/// before it, KVM_SET_USER_MEMORY_REGION registers the same ordinary slots
/// (what 6.1 has: MAP_GPA_RANGE exits predate guest_memfd by years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotApi {
    Region,
    Region2,
}

impl SlotApi {
    /// The ioctl, for errors and the `slots=` fact.
    pub fn call(self) -> &'static str {
        match self {
            SlotApi::Region => "KVM_SET_USER_MEMORY_REGION",
            SlotApi::Region2 => "KVM_SET_USER_MEMORY_REGION2",
        }
    }
}

/// One slot as the VMM means to register it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub slot: u32,
    pub gpa: u64,
    pub size: u64,
    pub host: u64,
    /// The guest_memfd fd and offset backing its private side.
    pub gmem: Option<(u32, u64)>,
}

/// The slots for `mem`: one per region, the one starting inside
/// `gmem_range` bound to `gmem` when there is one.
pub fn slots(mem: &GuestMemoryMmap<()>, gmem: Option<&File>, gmem_range: MemRange) -> Vec<Slot> {
    mem.iter()
        .enumerate()
        .map(|(slot, region)| {
            let start = region.start_addr().0;
            Slot {
                slot: slot as u32,
                gpa: start,
                size: region.len(),
                host: region.as_ptr() as u64,
                gmem: gmem
                    .filter(|_| gmem_range.contains(start))
                    .map(|f| (f.as_raw_fd() as u32, start - gmem_range.start)),
            }
        })
        .collect()
}

/// Why `api` cannot register `s`: only KVM_SET_USER_MEMORY_REGION2 binds a
/// guest_memfd (the mode choice never asks the old ioctl to).
pub fn unregistrable(api: SlotApi, s: &Slot) -> Option<VmmError> {
    (api == SlotApi::Region && s.gmem.is_some()).then(|| {
        VmmError::Config(format!(
            "slot {} at {:#x} is bound to a guest_memfd, which only \
             KVM_SET_USER_MEMORY_REGION2 can register (KVM_CAP_USER_MEMORY2 is 0)",
            s.slot, s.gpa
        ))
    })
}

/// Registers `s` with `api`.
///
/// # Safety
/// `s.host..s.host + s.size` must be a mapping that outlives the VM.
unsafe fn register(vm: &VmFd, api: SlotApi, s: Slot) -> Result<(), VmmError> {
    if let Some(e) = unregistrable(api, &s) {
        return Err(e);
    }
    match api {
        SlotApi::Region => {
            let r = kvm_userspace_memory_region {
                slot: s.slot,
                flags: 0,
                guest_phys_addr: s.gpa,
                memory_size: s.size,
                userspace_addr: s.host,
            };
            // SAFETY: the caller's promise: the mapping outlives the VM.
            unsafe { vm.set_user_memory_region(r) }.map_err(VmmError::kvm(api.call()))
        }
        SlotApi::Region2 => {
            let (flags, fd, offset) = s
                .gmem
                .map_or((0, 0, 0), |(fd, off)| (KVM_MEM_GUEST_MEMFD, fd, off));
            let r = kvm_userspace_memory_region2 {
                slot: s.slot,
                flags,
                guest_phys_addr: s.gpa,
                memory_size: s.size,
                userspace_addr: s.host,
                guest_memfd_offset: offset,
                guest_memfd: fd,
                ..Default::default()
            };
            // SAFETY: the caller's promise: the mapping outlives the VM; the
            // guest_memfd fd is one this VMM holds open for the VM's life.
            unsafe { vm.set_user_memory_region2(r) }.map_err(VmmError::kvm(api.call()))
        }
    }
}

impl KvmPlatform {
    /// Registers every region of `mem` as a slot with `api` (the one
    /// starting at `gmem_range.start` bound to `gmem` when there is one)
    /// and takes ownership of the VM.
    pub fn new(
        vm: VmFd,
        mem: GuestMemoryMmap<()>,
        gmem: Option<File>,
        gmem_range: MemRange,
        api: SlotApi,
    ) -> Result<Self, VmmError> {
        for s in slots(&mem, gmem.as_ref(), gmem_range) {
            // SAFETY: the slot describes a mapping owned by `mem`, which this
            // KvmPlatform keeps until after the VM fd is closed (field
            // order); `gmem` is kept as long.
            unsafe { register(&vm, api, s) }?;
        }
        Ok(KvmPlatform {
            vm,
            mem,
            gmem,
            gmem_range,
        })
    }

    pub fn vm(&self) -> &VmFd {
        &self.vm
    }

    /// The host mapping of guest RAM (the loader writes through it).
    pub fn mem(&self) -> &GuestMemoryMmap<()> {
        &self.mem
    }

    /// Host address of `range` when it lies inside one region.
    fn host_ptr(&self, range: MemRange, call: &'static str) -> Result<*mut u8, PlatformError> {
        let bounds = PlatformError::Bounds { call, range };
        let region = self
            .mem
            .find_region(GuestAddress(range.start))
            .ok_or(bounds.clone())?;
        let region_range = MemRange::from_len(region.start_addr().0, region.len());
        if range.is_empty() || !region_range.covers(&range) {
            return Err(bounds);
        }
        self.mem
            .get_slice(GuestAddress(range.start), range.len() as usize)
            .map(|s| s.ptr_guard_mut().as_ptr())
            .map_err(|_| bounds)
    }
}

impl Platform for KvmPlatform {
    fn set_attributes(&mut self, range: MemRange, to: Target) -> Result<(), PlatformError> {
        let attributes = match to {
            Target::Private => u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE),
            Target::Shared => 0,
        };
        self.vm
            .set_memory_attributes(kvm_memory_attributes {
                address: range.start,
                size: range.len(),
                attributes,
                flags: 0,
            })
            .map_err(|e| PlatformError::Os {
                call: CALL_SET_ATTRIBUTES,
                errno: e.errno(),
            })
    }

    fn punch(&mut self, range: MemRange) -> Result<(), PlatformError> {
        let (Some(f), true) = (
            &self.gmem,
            self.gmem_range.covers(&range) && !range.is_empty(),
        ) else {
            return Err(PlatformError::Bounds {
                call: CALL_PUNCH,
                range,
            });
        };
        let off = range.start - self.gmem_range.start;
        // SAFETY: a plain syscall on an fd we own; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                f.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as libc::off_t,
                range.len() as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(last_os_error(CALL_PUNCH));
        }
        Ok(())
    }

    fn discard(&mut self, range: MemRange) -> Result<(), PlatformError> {
        let ptr = self.host_ptr(range, CALL_DISCARD)?;
        // SAFETY: `ptr..ptr+len` lies inside one private anonymous mapping
        // owned by self.mem (host_ptr checked it against the region), and
        // nothing in this process holds references into guest memory across
        // this call (vm-memory hands out volatile slices only). MADV_DONTNEED
        // only drops the pages, which then read back as zero.
        let rc = unsafe { libc::madvise(ptr.cast(), range.len() as usize, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(last_os_error(CALL_DISCARD));
        }
        Ok(())
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PlatformError> {
        if buf.is_empty() {
            return Ok(());
        }
        let range = MemRange::from_len(gpa, buf.len() as u64);
        self.host_ptr(range, CALL_READ)?;
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|_| PlatformError::Bounds {
                call: CALL_READ,
                range,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// sw-protected's layout: an ordinary boot slot, then the guest_memfd one.
    #[test]
    fn only_the_guest_memfd_slot_is_bound_and_only_region2_registers_it() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 2 * MIB as usize),
            (GuestAddress(2 * MIB), 6 * MIB as usize),
        ])
        .unwrap();
        let f = File::open("/dev/null").unwrap();
        let got = slots(&mem, Some(&f), MemRange::new(2 * MIB, 8 * MIB));
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].slot, got[0].gpa, got[0].size, got[0].gmem),
            (0, 0, 2 * MIB, None)
        );
        assert_eq!(
            (got[1].slot, got[1].gpa, got[1].gmem),
            (1, 2 * MIB, Some((f.as_raw_fd() as u32, 0)))
        );
        assert!(unregistrable(SlotApi::Region2, &got[1]).is_none());
        assert!(unregistrable(SlotApi::Region, &got[0]).is_none());
        let e = unregistrable(SlotApi::Region, &got[1]).unwrap().to_string();
        assert!(e.contains("KVM_SET_USER_MEMORY_REGION2"), "{e}");
    }

    /// What 6.1 gets: one anonymous slot, nothing bound, the old ioctl.
    #[test]
    fn anonymous_memory_registers_through_either_ioctl() {
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 8 * MIB as usize)]).unwrap();
        let got = slots(&mem, None, MemRange::default());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].host, mem.iter().next().unwrap().as_ptr() as u64);
        for api in [SlotApi::Region, SlotApi::Region2] {
            assert!(unregistrable(api, &got[0]).is_none());
        }
        assert_eq!(SlotApi::Region.call(), "KVM_SET_USER_MEMORY_REGION");
    }
}
