//! Guest RAM, who may touch it, and what a conversion does to it.
//!
//! Two modes (the JSON's `vmm.memory`):
//! - `sw-protected` (VM type KVM_X86_SW_PROTECTED_VM): RAM above the boot
//!   slot is a guest_memfd slot; private pages live in the guest_memfd, shared
//!   ones in an anonymous mapping, and a conversion is
//!   KVM_SET_MEMORY_ATTRIBUTES. Private and shared are different pages, so
//!   the VMM cannot carry bytes across: content is always zeroed — both
//!   sides of every flipped page are dropped (the hole punched in the
//!   guest_memfd, the anonymous page discarded), so the side entered reads
//!   zero and the side left keeps nothing stale. The boot slot (RAM below the
//!   kernel's end, rounded up to 2 MiB) is an ordinary slot, like KVM's own
//!   selftests keep guest code in one: this VMM has no way to load the
//!   kernel into private guest_memfd pages, so there conversions are tracked
//!   only.
//! - `emulated-private` (default VM): one mapping — guest_memfd mmap'd
//!   (MMAP|INIT_SHARED) when the kernel offers it, else anonymous memory; the
//!   VMM tracks page states and refuses its own accesses to private pages.
//!   `--content` decides whether a conversion clears the page or keeps it.
//!   Anonymous memory is registered with KVM_SET_USER_MEMORY_REGION when the
//!   kernel has no REGION2 (choose.rs): the same slot, the same model.
//!
//! Everything starts private, as in a confidential VM: the guest shares what
//! it wants the VMM to see. Page states change only for pages that flip, and
//! every operation is cut at the slot boundary first (a request may span
//! the boot slot and the guest_memfd slot).

use super::host_time::HostTime;
use super::pagemap::PageMap;
use super::platform::{self, KvmPlatform, Platform, PlatformError, SlotApi};
use crate::error::VmmError;
use convtest_proto::map_gpa::PAGE_4K;
use convtest_proto::plan::Content;
use convtest_proto::range::{MemRange, RangeList, align_up};
use convtest_proto::tracker::Target;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};

/// Legacy VGA/BIOS hole, not RAM in the memory map.
pub const LOW_HOLE: MemRange = MemRange::new(0xa0000, 0x10_0000);
/// Stay below the 32-bit MMIO area; no high-memory split yet.
pub const MAX_RAM: u64 = 3 << 30;
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

/// Which kind of memory a piece of RAM is, for what a conversion does there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// sw-protected's guest_memfd slot: KVM holds the page state.
    Gmem,
    /// Ordinary memory (sw-protected's boot slot, all emulated-private
    /// RAM): the state lives only in the VMM's record.
    Tracked,
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

/// A conversion stopped by a failed host operation: how many pages had
/// changed state by then (the record holds exactly those) and what failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    pub converted: u64,
    pub error: PlatformError,
}

pub struct GuestRam<P> {
    pub size: u64,
    pub mode: Mode,
    pub content: Content,
    /// The VMM's record; for the guest_memfd slot, exactly KVM's attributes.
    pub pages: PageMap,
    /// serve.rs's buffer for the runs a request flips, kept between exits
    /// so that serving one allocates nothing (an allocation cost more than
    /// the rest of the model in the nested lane, see timing.rs).
    pub scratch: Vec<MemRange>,
    platform: P,
}

impl GuestRam<KvmPlatform> {
    /// Maps RAM, registers the memory slots (the VM moves into the
    /// platform) and marks everything private.
    pub fn new(
        vm: VmFd,
        size: u64,
        mode: Mode,
        content: Content,
        slots: SlotApi,
    ) -> Result<Self, VmmError> {
        check_size(size)?;
        let memory = |e: vm_memory::mmap::FromRangesError| VmmError::Memory(e.to_string());
        let (mem, gmem, gmem_range) = match mode {
            Mode::EmulatedPrivate { gmem_mmap: false } => (
                GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)])
                    .map_err(memory)?,
                None,
                MemRange::default(),
            ),
            Mode::EmulatedPrivate { gmem_mmap: true } => {
                let f = platform::create_gmem(&vm, size, platform::EMULATED_GMEM_FLAGS)?;
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
                (mem, Some(f), MemRange::new(0, size))
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
                let gmem = platform::create_gmem(&vm, size - boot_end, 0)?;
                (mem, Some(gmem), MemRange::new(boot_end, size))
            }
        };
        let p = KvmPlatform::new(vm, mem, gmem, gmem_range, slots)?;
        GuestRam::init(p, size, mode, content)
    }

    /// Boot-time load before the guest runs (the image, start_info): the
    /// loader's own writes, like firmware measuring pages into a CVM.
    pub fn load(&self, gpa: u64, data: &[u8]) -> Result<(), VmmError> {
        self.platform
            .mem()
            .write_slice(data, GuestAddress(gpa))
            .map_err(|e| VmmError::Memory(format!("write {gpa:#x}+{}: {e}", data.len())))
    }
}

impl<P: Platform> GuestRam<P> {
    /// The model over `platform`, everything private: in sw-protected memory
    /// KVM is told so for the guest_memfd slot (a setup step: its failure is
    /// the VMM's error, before any guest runs).
    pub fn init(platform: P, size: u64, mode: Mode, content: Content) -> Result<Self, VmmError> {
        let mut ram = GuestRam {
            size,
            mode,
            content,
            pages: PageMap::new(&ram_ranges(size), size),
            scratch: Vec::new(),
            platform,
        };
        if let Some(g) = ram.gmem_slot() {
            ram.platform
                .set_attributes(g, Target::Private)
                .map_err(|e| VmmError::Memory(e.to_string()))?;
        }
        Ok(ram)
    }

    pub fn platform(&self) -> &P {
        &self.platform
    }

    #[cfg(test)]
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    /// sw-protected: the guest_memfd slot's guest-physical range.
    pub fn gmem_slot(&self) -> Option<MemRange> {
        match self.mode {
            Mode::SwProtected { boot_end } => Some(MemRange::new(boot_end, self.size)),
            Mode::EmulatedPrivate { .. } => None,
        }
    }

    /// `r` cut at the slot boundary: at most two non-empty pieces, low first.
    pub fn pieces(&self, r: MemRange) -> impl Iterator<Item = (MemRange, Part)> + use<P> {
        let (low, high) = match self.gmem_slot() {
            Some(g) => (
                MemRange::new(r.start, r.end.min(g.start)),
                MemRange::new(r.start.max(g.start), r.end),
            ),
            None => (r, MemRange::default()),
        };
        [(low, Part::Tracked), (high, Part::Gmem)]
            .into_iter()
            .filter(|(p, _)| !p.is_empty())
    }

    /// Converts the pages of `runs` (RAM, whole pages, all in the other
    /// state: the caller found them) to `to`. `clear`: make them read
    /// zero. Stops at the first failed host operation; the record then
    /// holds what succeeded. `host` gets the time spent in host calls.
    pub fn convert(
        &mut self,
        runs: &[MemRange],
        to: Target,
        clear: bool,
        host: &mut HostTime,
    ) -> Result<u64, Interrupted> {
        let mut converted = 0;
        for run in runs {
            for (piece, part) in self.pieces(*run) {
                let pages = piece.len() / PAGE_4K;
                match self.convert_piece(piece, part, to, clear, host) {
                    Ok(()) => converted += pages,
                    Err((changed, error)) => {
                        return Err(Interrupted {
                            converted: converted + if changed { pages } else { 0 },
                            error,
                        });
                    }
                }
            }
        }
        Ok(converted)
    }

    /// One piece; on error, whether its state had changed by then.
    fn convert_piece(
        &mut self,
        piece: MemRange,
        part: Part,
        to: Target,
        clear: bool,
        host: &mut HostTime,
    ) -> Result<(), (bool, PlatformError)> {
        let p = &mut self.platform;
        match (part, self.mode) {
            (Part::Gmem, _) => {
                // KVM first: when it refuses, nothing changed anywhere.
                HostTime::time(&mut host.attributes, || p.set_attributes(piece, to))
                    .map_err(|e| (false, e))?;
                self.pages.set(piece, to);
                if clear {
                    // Both sides: the one entered reads zero, the one left
                    // keeps nothing stale.
                    HostTime::time(&mut host.clear, || {
                        p.punch(piece).and_then(|()| p.discard(piece))
                    })
                    .map_err(|e| (true, e))?;
                }
            }
            (Part::Tracked, mode) => {
                // Content first: the state is only the record, so a failed
                // clear leaves the page as it was.
                if clear {
                    HostTime::time(&mut host.clear, || match mode {
                        Mode::EmulatedPrivate { gmem_mmap: true } => p.punch(piece),
                        _ => p.discard(piece),
                    })
                    .map_err(|e| (false, e))?;
                }
                self.pages.set(piece, to);
            }
        }
        Ok(())
    }

    /// `--reset-policy private`: all of RAM private and empty, as a fresh
    /// confidential VM. The same per-piece conversion as a request, over
    /// each slot whole instead of only the pages that flip: in the
    /// guest_memfd slot KVM_SET_MEMORY_ATTRIBUTES(PRIVATE), the hole punched
    /// (private content reads zero) and the shared backing discarded;
    /// ordinary memory cleared and recorded private. Returns the pages that
    /// changed state (were shared); every page is cleared either way.
    pub fn reset_private(&mut self, host: &mut HostTime) -> Result<u64, PlatformError> {
        use convtest_proto::tracker::PageState;
        let shared = self.pages.count(PageState::Shared);
        for (piece, part) in self.pieces(MemRange::new(0, self.size)) {
            self.convert_piece(piece, part, Target::Private, true, host)
                .map_err(|(_, e)| e)?;
        }
        Ok(shared)
    }

    /// Copies the host mapping (any span; cut per slot).
    pub fn read_host(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PlatformError> {
        let mut at = 0usize;
        for (piece, _) in self.pieces(MemRange::from_len(gpa, buf.len() as u64)) {
            let n = piece.len() as usize;
            self.platform.read(piece.start, &mut buf[at..at + n])?;
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakePlatform, Op};
    use super::*;
    use convtest_proto::tracker::PageState;

    const MIB: u64 = 1 << 20;

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

    fn sw_ram() -> GuestRam<FakePlatform> {
        let mode = Mode::SwProtected { boot_end: 2 * MIB };
        GuestRam::init(
            FakePlatform::new(mode, 8 * MIB),
            8 * MIB,
            mode,
            Content::Zero,
        )
        .unwrap()
    }

    /// The crash this file once had: one page each side of the boot-slot
    /// boundary is two pieces, each handled by what its slot is.
    #[test]
    fn a_run_across_the_slot_boundary_is_cut_in_two() {
        let mut ram = sw_ram();
        ram.platform_mut().take_ops();
        let run = MemRange::new(0x1ff000, 0x201000);
        assert_eq!(
            ram.convert(&[run], Target::Shared, true, &mut HostTime::default()),
            Ok(2)
        );
        let low = MemRange::new(0x1ff000, 0x200000);
        let high = MemRange::new(0x200000, 0x201000);
        assert_eq!(
            ram.platform_mut().take_ops(),
            [
                Op::Discard(low),
                Op::SetAttributes(high, Target::Shared),
                Op::Punch(high),
                Op::Discard(high)
            ]
        );
        assert_eq!(ram.pages.state(0x1ff000), Some(PageState::Shared));
        assert!(!ram.platform().is_private(0x200000));
        assert!(ram.platform().violations.is_empty());
        let mut buf = vec![0u8; 0x2000];
        assert!(
            ram.read_host(0x1ff000, &mut buf).is_ok(),
            "reads are cut too"
        );
    }

    #[test]
    fn a_refused_attribute_change_changes_nothing() {
        let mut ram = sw_ram();
        ram.platform_mut().fail_one_in(1, 3);
        let run = MemRange::new(0x1ff000, 0x201000);
        let e = ram
            .convert(&[run], Target::Shared, false, &mut HostTime::default())
            .unwrap_err();
        // The tracked page below failed nothing (no clear): only the gmem
        // page was refused.
        assert_eq!(e.converted, 1);
        assert_eq!(ram.pages.state(0x1ff000), Some(PageState::Shared));
        assert_eq!(ram.pages.state(0x200000), Some(PageState::Private));
        assert!(ram.platform().is_private(0x200000));
    }
}
