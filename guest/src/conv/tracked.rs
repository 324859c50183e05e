//! The platform-neutral half of conversion: a hypervisor `Backend` (raw
//! calls, one per ABI) wrapped with the page-state tracker. The tracker
//! changes only after the backend confirmed a conversion, so it always says
//! what the guest may rely on; the suites see this as `dyn Converter`.

use crate::arch;
use alloc::string::String;
use alloc::vec::Vec;
#[cfg(target_arch = "aarch64")]
use convtest_proto::hv::SmcccError;
#[cfg(target_arch = "x86_64")]
use convtest_proto::map_gpa::MapGpaError;
use convtest_proto::range::{MemRange, RangeList, is_aligned};
use convtest_proto::tracker::{PageState, PageStates, TrackError};
use core::fmt;

/// Why a conversion call failed, typed per ABI, raw code kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrKind {
    #[cfg(target_arch = "x86_64")]
    MapGpa(MapGpaError),
    #[cfg(target_arch = "aarch64")]
    Smccc(SmcccError),
    /// Refused before any call: the range is not whole tracked granules.
    Track(TrackError),
}

impl fmt::Display for ErrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(target_arch = "x86_64")]
            ErrKind::MapGpa(e) => e.fmt(f),
            #[cfg(target_arch = "aarch64")]
            ErrKind::Smccc(e) => e.fmt(f),
            ErrKind::Track(e) => write!(f, "not issued: {e}"),
        }
    }
}

/// A conversion call the hypervisor refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvError {
    /// ABI name of the call (`MAP_GPA_RANGE`, `MEM_SHARE`, …).
    pub call: &'static str,
    /// Hypercall number or SMCCC function id.
    pub id: u64,
    /// What the caller asked to convert.
    pub range: MemRange,
    /// Bytes from `range.start` converted before the failing call.
    pub done: u64,
    pub kind: ErrKind,
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:#x}) {} returned {}",
            self.call, self.id, self.range, self.kind
        )?;
        if self.done != 0 {
            write!(f, " after {} bytes were converted", self.done)?;
        }
        Ok(())
    }
}

/// One deliberately malformed call and what came back.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// What was wrong with the request, e.g. `unaligned gpa`.
    pub what: &'static str,
    /// The call as issued, e.g. `MAP_GPA_RANGE gpa=0x… npages=1 attrs=0x10`.
    pub call: String,
    pub expected: i64,
    /// Raw return value (0 = accepted).
    pub got: i64,
}

/// Cost and shape of one reset-to-private.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Ranges the reset converted (x86: one call each).
    pub ranges: u64,
    /// Granules those ranges cover.
    pub pages: u64,
    /// Hypervisor calls issued.
    pub calls: u64,
    /// How the backend decided what to convert (`all-ram`, `ledger`, …).
    pub method: &'static str,
    pub cycles: u64,
}

/// The raw ABI of one hypervisor.
pub trait Backend {
    fn name(&self) -> &'static str;
    fn granule(&self) -> u64;
    /// Converts `range` (whole tracked granules). On failure `done` says how
    /// much of the front of the range was converted before it.
    fn convert(&mut self, range: MemRange, to: PageState) -> Result<(), ConvError>;
    /// Makes every granule of `ram` private (the tracker's ranges); fills
    /// `ranges`, `pages`, `calls`, `method` of the report.
    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetReport, ConvError>;
    /// RAM the backend keeps for itself (never handed to tests).
    fn reserved(&self) -> Option<MemRange> {
        None
    }
    /// Malformed calls and their answers. `page` is a private granule the
    /// caller owns; it is private again afterwards if the hypervisor
    /// behaved as expected. `ram_end` is the end of the highest RAM range.
    fn rejections(&mut self, page: MemRange, ram_end: u64) -> Vec<Rejection>;
    /// A call that reaches the hypervisor but changes nothing (`page` is a
    /// private granule the backend may name in it).
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError>;
    /// Bench op name of `noop`.
    fn noop_op(&self) -> &'static str;
    /// How `convert(range, to)` is issued, for diagnostics.
    fn describe(&self, range: MemRange, to: PageState) -> String;
}

/// What the suites use.
pub trait Converter {
    /// Backend name as reported in the header and JSON (`kvm-map-gpa-range`, `pkvm`).
    fn name(&self) -> &'static str;
    /// Smallest convertible unit in bytes.
    fn granule(&self) -> u64;
    /// Make `range` (granule-aligned, guest-physical) visible to the host.
    fn share(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// Make `range` private to the guest again.
    fn unshare(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// What the tracker says about the granule holding `addr`.
    fn state(&self, addr: u64) -> Option<PageState>;
    fn count(&self, state: PageState) -> u64;
    /// Converts all RAM to private and records the outcome.
    fn reset_to_private(&mut self) -> Result<ResetReport, ConvError>;
    /// The outcome of the last `reset_to_private`, if one ran.
    fn last_reset(&self) -> Option<Result<ResetReport, ConvError>>;
    fn reserved(&self) -> Option<MemRange>;
    /// See `Backend::rejections`; the tracker is not changed.
    fn rejections(&mut self, page: MemRange) -> Vec<Rejection>;
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError>;
    fn noop_op(&self) -> &'static str;
    fn describe(&self, range: MemRange, to: PageState) -> String;
}

pub struct Tracked<B> {
    backend: B,
    pages: PageStates,
    reset: Option<Result<ResetReport, ConvError>>,
}

impl<B: Backend> Tracked<B> {
    pub fn new(backend: B, ram: &RangeList) -> Self {
        // Shared = "not known to be private" until the reset confirms it.
        let pages = PageStates::new(ram, backend.granule(), PageState::Shared);
        Self {
            backend,
            pages,
            reset: None,
        }
    }

    fn convert(&mut self, range: MemRange, to: PageState) -> Result<(), ConvError> {
        let g = self.pages.granule();
        let whole = !range.is_empty() && is_aligned(range.start, g) && is_aligned(range.end, g);
        let tracked = self.pages.ranges().any(|r| r.covers(&range));
        if !whole || !tracked {
            let e = if whole {
                TrackError::OutsideRam(range)
            } else {
                TrackError::Unaligned { range, granule: g }
            };
            return Err(ConvError {
                call: self.backend.name(),
                id: 0,
                range,
                done: 0,
                kind: ErrKind::Track(e),
            });
        }
        let res = self.backend.convert(range, to);
        let done = match &res {
            Ok(()) => range.len(),
            Err(e) => e.done,
        };
        if done != 0 {
            // Checked above: whole granules inside tracked RAM.
            let _ = self.pages.set(MemRange::from_len(range.start, done), to);
        }
        res
    }
}

impl<B: Backend> Converter for Tracked<B> {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn granule(&self) -> u64 {
        self.backend.granule()
    }

    fn share(&mut self, range: MemRange) -> Result<(), ConvError> {
        self.convert(range, PageState::Shared)
    }

    fn unshare(&mut self, range: MemRange) -> Result<(), ConvError> {
        self.convert(range, PageState::Private)
    }

    fn state(&self, addr: u64) -> Option<PageState> {
        self.pages.state(addr)
    }

    fn count(&self, state: PageState) -> u64 {
        self.pages.count(state)
    }

    fn reset_to_private(&mut self) -> Result<ResetReport, ConvError> {
        let ram: Vec<MemRange> = self.pages.ranges().collect();
        let t0 = arch::cycles();
        let res = self.backend.reset(&ram);
        let cycles = arch::cycles().wrapping_sub(t0);
        let res = res.map(|r| ResetReport { cycles, ..r });
        if res.is_ok() {
            self.pages.set_all(PageState::Private);
        }
        self.reset = Some(res);
        res
    }

    fn last_reset(&self) -> Option<Result<ResetReport, ConvError>> {
        self.reset
    }

    fn reserved(&self) -> Option<MemRange> {
        self.backend.reserved()
    }

    fn rejections(&mut self, page: MemRange) -> Vec<Rejection> {
        let ram_end = self.pages.ranges().map(|r| r.end).max().unwrap_or(0);
        self.backend.rejections(page, ram_end)
    }

    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        self.backend.noop(page)
    }

    fn noop_op(&self) -> &'static str {
        self.backend.noop_op()
    }

    fn describe(&self, range: MemRange, to: PageState) -> String {
        self.backend.describe(range, to)
    }
}
