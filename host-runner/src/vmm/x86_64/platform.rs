//! What the memory model asks of the host to carry out a conversion: the
//! four operations that touch KVM, guest_memfd or the host mapping, behind
//! one trait so the same serving code runs against the real VM and against
//! the fake in `fake.rs` (the property test). Every range handed to these
//! calls lies inside one memory slot: the model splits first, and the real
//! implementation refuses (an error, never a panic) a range that does not.

use super::super::VmmError;
use super::memory::{GMEM_FLAG_INIT_SHARED, GMEM_FLAG_MMAP};
use convtest_proto::range::MemRange;
use convtest_proto::tracker::Target;
use kvm_bindings::{
    KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, kvm_create_guest_memfd,
    kvm_memory_attributes, kvm_userspace_memory_region2,
};
use kvm_ioctls::VmFd;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, GuestMemoryRegion};

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

impl KvmPlatform {
    /// Registers every region of `mem` as a slot (the one starting at
    /// `gmem_range.start` bound to `gmem` when there is one) and takes
    /// ownership of the VM.
    pub fn new(
        vm: VmFd,
        mem: GuestMemoryMmap<()>,
        gmem: Option<File>,
        gmem_range: MemRange,
    ) -> Result<Self, VmmError> {
        for (slot, region) in mem.iter().enumerate() {
            let start = region.start_addr().0;
            let bound = gmem
                .as_ref()
                .filter(|_| gmem_range.contains(start))
                .map(|f| {
                    (
                        KVM_MEM_GUEST_MEMFD,
                        f.as_raw_fd() as u32,
                        start - gmem_range.start,
                    )
                });
            let (flags, fd, offset) = bound.unwrap_or((0, 0, 0));
            let r = kvm_userspace_memory_region2 {
                slot: slot as u32,
                flags,
                guest_phys_addr: start,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
                guest_memfd_offset: offset,
                guest_memfd: fd,
                ..Default::default()
            };
            // SAFETY: userspace_addr/memory_size describe a mapping owned by
            // `mem`, which this KvmPlatform keeps until after the VM fd is
            // closed (field order).
            unsafe { vm.set_user_memory_region2(r) }
                .map_err(VmmError::kvm("KVM_SET_USER_MEMORY_REGION2"))?;
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
