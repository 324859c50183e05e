//! Guest RAM and the host's view of it.
//!
//! RAM is one memfd mapped MAP_SHARED and registered as one memslot. Shared
//! (not anonymous-private) for two reasons: a forked probe child (probe.rs)
//! then reads the very pages the guest owns instead of copy-on-write copies
//! that fork would have to make of KVM-pinned pages (copying a page pKVM gave
//! to a protected guest would make the host kernel touch it); and SEEK_DATA
//! on the memfd tells which pages anybody ever touched, so a scan skips the
//! never-populated rest. pKVM takes memfd (shmem) pages for protected VMs
//! (arch/arm64/kvm/mmu.c pkvm_mem_abort accepts swap-backed folios).
//!
//! In a protected VM the guest shares and unshares pages with MEM_SHARE /
//! MEM_UNSHARE hypercalls that pKVM answers at EL2 without a VMM exit, so the
//! VMM does not know which pages are shared. It never touches guest RAM from
//! user space: every read goes through the kernel (`pwrite` of the guest
//! pages into a scratch memfd), whose user-copy turns pKVM's stage-2 refusal
//! into EFAULT (arch/arm64/mm/fault.c: an injected stage-2 abort on a kernel
//! uaccess goes to the exception fixup). A plain user-space load of a private
//! page would be a SIGSEGV for the whole VMM; probe.rs does that on purpose,
//! in a child.

use super::super::hostcheck::{HostView, Look};
use super::probe;
use crate::error::VmmError;
use convtest_proto::hostcheck::Evidence;
use convtest_proto::range::MemRange;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemory, GuestMemoryMmap};

pub const PAGE: u64 = 4096;
/// Where RAM starts (crosvm's choice; QEMU virt uses 0x4000_0000). Leaves
/// the low 2 GiB for MMIO; 2 MiB aligned as the Image wants its base.
pub const RAM_BASE: u64 = 0x8000_0000;
/// Bytes the kernel copies per pwrite when reading guest memory.
const COPY_CHUNK: u64 = 1 << 20;
/// Most pages one `noread` probes, each in its own child; larger ranges are
/// sampled evenly (first and last page always).
const PROBE_MAX_PAGES: u64 = 64;

pub struct GuestRam {
    pub mem: GuestMemoryMmap<()>,
    pub base: u64,
    pub size: u64,
    /// The RAM's backing (SEEK_DATA/SEEK_HOLE).
    backing: File,
    /// What the kernel copies guest pages into on their way to the VMM.
    scratch: File,
    /// Pages a kernel copy was refused (EFAULT) so far: the evidence that
    /// reads went through pKVM's check and did not just skip pages. Atomic
    /// so every vCPU thread may hold the RAM (host checks are answered on
    /// whichever vCPU's thread the request line completed).
    refusals: AtomicU64,
}

fn memfd(name: &std::ffi::CStr) -> Result<File, VmmError> {
    // SAFETY: `name` is a valid NUL-terminated string; no memory is handed over.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(VmmError::Sys {
            call: "memfd_create",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: memfd_create just returned this fd and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Why a kernel copy of guest memory stopped.
#[derive(Debug)]
pub enum CopyError {
    /// The page at this guest address could not be read: EFAULT, pKVM's
    /// stage-2 refusal as the kernel's user copy reports it.
    Refused(u64),
    Other(String),
}

impl GuestRam {
    pub fn new(vm: &VmFd, size: u64) -> Result<Self, VmmError> {
        if !size.is_multiple_of(2 << 20) {
            return Err(VmmError::Config(format!(
                "guest RAM {size:#x}: the arm64 VMM wants whole 2 MiB"
            )));
        }
        let backing = memfd(c"convtest-guest-ram")?;
        backing.set_len(size).map_err(|source| VmmError::Sys {
            call: "ftruncate(guest RAM memfd)",
            source,
        })?;
        let dup = backing.try_clone().map_err(|source| VmmError::Sys {
            call: "dup(guest RAM memfd)",
            source,
        })?;
        let mem = GuestMemoryMmap::from_ranges_with_files(&[(
            GuestAddress(RAM_BASE),
            size as usize,
            Some(FileOffset::new(dup, 0)),
        )])
        .map_err(|e| VmmError::Memory(e.to_string()))?;
        let host = mem
            .get_host_address(GuestAddress(RAM_BASE))
            .map_err(|e| VmmError::Memory(e.to_string()))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: RAM_BASE,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: the region is the mapping owned by `mem`, which lives in the
        // same GuestRam and outlives the VM fd (see `aarch64::Vm` field order).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(VmmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        Ok(GuestRam {
            mem,
            base: RAM_BASE,
            size,
            backing,
            scratch: memfd(c"convtest-copy")?,
            refusals: AtomicU64::new(0),
        })
    }

    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    pub fn range(&self) -> MemRange {
        MemRange::from_len(self.base, self.size)
    }

    /// Boot-time load before the guest ever ran (the Image, the DTB): the
    /// host still owns every page then.
    pub fn load(&self, gpa: u64, data: &[u8]) -> Result<(), VmmError> {
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .map_err(|e| VmmError::Memory(format!("write {gpa:#x}+{}: {e}", data.len())))
    }

    fn host_addr(&self, gpa: u64, len: u64) -> Result<*const u8, String> {
        let r = MemRange::from_len(gpa, len);
        if !self.range().covers(&r) {
            return Err(format!("{r} is not guest RAM ({})", self.range()));
        }
        self.mem
            .get_host_address(GuestAddress(gpa))
            .map(|p| p as *const u8)
            .map_err(|e| e.to_string())
    }

    /// Copies guest memory into `buf` through the kernel: a private page
    /// stops the copy with [`CopyError::Refused`] instead of a signal.
    pub fn copy_out(&self, gpa: u64, buf: &mut [u8]) -> Result<(), CopyError> {
        let host = self
            .host_addr(gpa, buf.len() as u64)
            .map_err(CopyError::Other)?;
        let mut done = 0usize;
        while done < buf.len() {
            let n = (buf.len() - done).min(COPY_CHUNK as usize);
            // SAFETY: host+done..+n lies inside the guest RAM mapping (checked
            // by host_addr). The kernel reads it with its fault-tolerant user
            // copy; our memory is never touched by this process directly.
            let wrote =
                unsafe { libc::pwrite(self.scratch.as_raw_fd(), host.add(done).cast(), n, 0) };
            if wrote <= 0 {
                let err = std::io::Error::last_os_error();
                return if wrote == 0 || err.raw_os_error() == Some(libc::EFAULT) {
                    self.refusals.fetch_add(1, Ordering::Relaxed);
                    Err(CopyError::Refused(gpa + done as u64))
                } else {
                    Err(CopyError::Other(format!("pwrite(scratch memfd): {err}")))
                };
            }
            let wrote = wrote as usize;
            // SAFETY: reads at most `wrote` bytes into buf[done..], which has
            // at least `n >= wrote` bytes left.
            let got = unsafe {
                libc::pread(
                    self.scratch.as_raw_fd(),
                    buf[done..].as_mut_ptr().cast(),
                    wrote,
                    0,
                )
            };
            if got != wrote as isize {
                return Err(CopyError::Other(format!(
                    "pread(scratch memfd) gave {got} of {wrote} bytes: {}",
                    std::io::Error::last_os_error()
                )));
            }
            done += wrote;
        }
        Ok(())
    }

    /// Ranges of the backing anybody ever wrote or faulted in; the holes
    /// between read as zero to anyone.
    fn populated(&self) -> Vec<MemRange> {
        let fd = self.backing.as_raw_fd();
        let size = self.size as i64;
        let mut out = Vec::new();
        let mut at = 0i64;
        while at < size {
            // SAFETY: plain lseek on a memfd we own.
            let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
            if data < 0 {
                // ENXIO: no data after `at`.
                break;
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            let end = if hole < 0 { size } else { hole.min(size) };
            out.push(MemRange::new(
                self.base + data as u64,
                self.base + end as u64,
            ));
            at = end;
        }
        out
    }

    /// The pages of `range` (page aligned) the kernel can copy, as runs: a
    /// short copy ends at the first refused page, which is stepped over.
    fn readable_runs(&self, range: MemRange, out: &mut Vec<MemRange>) {
        let mut at = range.start;
        while at < range.end {
            let n = (range.end - at).min(COPY_CHUNK);
            let Ok(host) = self.host_addr(at, n) else {
                return;
            };
            // SAFETY: as in copy_out: a kernel copy out of the guest mapping.
            let wrote =
                unsafe { libc::pwrite(self.scratch.as_raw_fd(), host.cast(), n as usize, 0) };
            let ok = if wrote > 0 {
                wrote as u64 & !(PAGE - 1)
            } else {
                0
            };
            if ok > 0 {
                match out.last_mut() {
                    Some(last) if last.end == at => last.end += ok,
                    _ => out.push(MemRange::new(at, at + ok)),
                }
                at += ok;
            } else {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                at += PAGE;
            }
        }
    }

    /// The pages of `range` that `noread` probes in children.
    fn probe_pages(range: MemRange) -> Vec<u64> {
        let first = range.start & !(PAGE - 1);
        let pages = (range.end - first).div_ceil(PAGE);
        let n = pages.min(PROBE_MAX_PAGES);
        let mut v: Vec<u64> = (0..n)
            .map(|i| first + (i * (pages - 1) / (n - 1).max(1)) * PAGE)
            .collect();
        v.dedup();
        v
    }
}

impl HostView for GuestRam {
    /// Through the kernel's user copy, which pKVM's stage-2 check governs:
    /// what it lets through (or refuses) is the hypervisor's decision.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<Evidence, Look> {
        self.copy_out(gpa, buf)
            .map(|()| Evidence::Enforced)
            .map_err(|e| match e {
                CopyError::Refused(at) => Look::new(
                    Evidence::Enforced,
                    format!(
                        "the host kernel's copy of the page at {:#x} faulted (EFAULT): not shared with the host",
                        at & !(PAGE - 1)
                    ),
                ),
                CopyError::Other(s) => Look::new(Evidence::Bookkeeping, s),
            })
    }

    /// Every page the kernel can copy right now: populated pages minus the
    /// ones pKVM refuses (probed page by page through the kernel, never by a
    /// user load that would kill the VMM).
    fn visible(&self) -> (Vec<MemRange>, Evidence) {
        let mut out = Vec::new();
        for r in self.populated() {
            self.readable_runs(r.align_outward(PAGE), &mut out);
        }
        (out, Evidence::Enforced)
    }

    /// Loads each page (up to PROBE_MAX_PAGES, evenly spread) with a plain
    /// load in a forked child. Only the death pKVM's stage-2 refusal
    /// produces counts as isolation: SIGSEGV with SEGV_ACCERR. A child that
    /// reads, dies of anything else, exits or hangs fails the check.
    fn private_probe(&self, range: MemRange, canary: u64) -> Result<Look, Look> {
        if range.is_empty() {
            return Err(Look::new(Evidence::Bookkeeping, "empty range"));
        }
        let pages = Self::probe_pages(range);
        for (i, &gpa) in pages.iter().enumerate() {
            let at = gpa.max(range.start);
            let host = self
                .host_addr(at, 1)
                .map_err(|e| Look::new(Evidence::Bookkeeping, e))?;
            let page = format!("page {}/{} at {at:#x}", i + 1, pages.len());
            match probe::read_in_child(host) {
                Ok(probe::ReadAttempt::Read(bytes)) => {
                    let what = if u64::from_le_bytes(bytes) == canary {
                        "the guest's canary"
                    } else {
                        "bytes"
                    };
                    return Err(Look::new(
                        Evidence::Enforced,
                        format!("a child process read {what} {bytes:02x?} from {page}"),
                    ));
                }
                Ok(death) if death.is_stage2_refusal() => {}
                Ok(other) => {
                    return Err(Look::new(
                        Evidence::Enforced,
                        format!(
                            "the child probing {page} {other}, not the SIGSEGV (SEGV_ACCERR) \
                             of pKVM's stage-2 refusal: no evidence of isolation"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(Look::new(
                        Evidence::Bookkeeping,
                        format!("probe child for {at:#x}: {e}"),
                    ));
                }
            }
        }
        Ok(Look::new(
            Evidence::Enforced,
            format!(
                "{} page(s) of {range} probed by a plain load in a child; each was killed by \
                 SIGSEGV (SEGV_ACCERR): pKVM's stage-2 refusal",
                pages.len()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs /dev/kvm on an arm64 host (a normal VM: every page readable).
    #[test]
    fn a_normal_vms_ram_is_visible_where_populated_and_readable() {
        let kvm = match kvm_ioctls::Kvm::new() {
            Ok(k) => k,
            Err(e) => {
                eprintln!("SKIP: no /dev/kvm ({e})");
                return;
            }
        };
        let vm = kvm.create_vm_with_type(0).unwrap();
        let ram = GuestRam::new(&vm, 4 << 20).unwrap();
        assert!(ram.visible().0.is_empty(), "nothing populated yet");
        let at = RAM_BASE + 0x3000;
        ram.load(at + 8, &0x1122_3344_5566_7788_u64.to_le_bytes())
            .unwrap();
        assert_eq!(ram.visible().0, [MemRange::new(at, at + PAGE)]);
        let mut b = [0u8; 16];
        ram.read(at, &mut b).unwrap();
        assert_eq!(b[8..], 0x1122_3344_5566_7788_u64.to_le_bytes());
        assert!(
            ram.read(RAM_BASE + (4 << 20) - 8, &mut b).is_err(),
            "past RAM"
        );
        let r = ram
            .private_probe(MemRange::from_len(at, 16), 0x1122_3344_5566_7788)
            .unwrap_err();
        assert!(r.detail.contains("a child process read"), "{r:?}");
    }

    #[test]
    fn probe_pages_cover_first_and_last_and_stay_bounded() {
        assert_eq!(
            GuestRam::probe_pages(MemRange::new(0x8000_0000, 0x8000_0008)),
            [0x8000_0000]
        );
        assert_eq!(
            GuestRam::probe_pages(MemRange::new(0x8000_0000, 0x8000_3000)),
            [0x8000_0000, 0x8000_1000, 0x8000_2000]
        );
        let big = GuestRam::probe_pages(MemRange::new(0x8000_0000, 0x8100_0000));
        assert_eq!(big.len() as u64, PROBE_MAX_PAGES);
        assert_eq!(big.first(), Some(&0x8000_0000));
        assert_eq!(big.last(), Some(&0x80ff_f000));
    }
}
