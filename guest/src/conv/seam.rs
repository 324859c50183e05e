//! The seam between the platform-neutral half of conversion and one
//! hypervisor ABI: the raw calls it makes, what a failed call means,
//! and the report of a reset. No expectations live here: what an ABI should
//! answer is the suite's business (`suite::conv::expect`).

use alloc::boxed::Box;
use alloc::vec::Vec;
#[cfg(target_arch = "x86_64")]
use convtest_proto::map_gpa::MapGpaError;
use convtest_proto::map_gpa::{ATTR_ENC_STATUS, MapGpaArgs};
use convtest_proto::range::MemRange;
#[cfg(target_arch = "aarch64")]
use convtest_proto::smccc::SmcccError;
use convtest_proto::smccc::{PKVM_MEM_SHARE, PKVM_MEM_UNSHARE, SMCCC_KVM_FEATURES};
#[cfg(target_arch = "x86_64")]
use convtest_proto::snp::convert::SnpError;
#[cfg(target_arch = "x86_64")]
use convtest_proto::tdx::convert::TdxError;
use convtest_proto::tracker::{Target, TrackError};
use core::fmt;

use super::view::SharedView;

/// Why a conversion call failed, typed per ABI, raw code kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrKind {
    #[cfg(target_arch = "x86_64")]
    MapGpa(MapGpaError),
    #[cfg(target_arch = "x86_64")]
    Tdx(TdxError),
    #[cfg(target_arch = "x86_64")]
    Snp(SnpError),
    #[cfg(target_arch = "aarch64")]
    Smccc(SmcccError),
    /// Refused before any call: the range is not whole tracked granules.
    Track(TrackError),
}

impl ErrKind {
    /// The raw answer the hypervisor gave (None: no call was made).
    pub fn code(&self) -> Option<i64> {
        match self {
            #[cfg(target_arch = "x86_64")]
            ErrKind::MapGpa(e) => Some(e.code()),
            #[cfg(target_arch = "x86_64")]
            ErrKind::Tdx(e) => tdx_code(e),
            #[cfg(target_arch = "x86_64")]
            ErrKind::Snp(e) => snp_code(e),
            #[cfg(target_arch = "aarch64")]
            ErrKind::Smccc(e) => Some(e.code()),
            ErrKind::Track(_) => None,
        }
    }
}

impl fmt::Display for ErrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(target_arch = "x86_64")]
            ErrKind::MapGpa(e) => e.fmt(f),
            #[cfg(target_arch = "x86_64")]
            ErrKind::Tdx(e) => e.fmt(f),
            #[cfg(target_arch = "x86_64")]
            ErrKind::Snp(e) => e.fmt(f),
            #[cfg(target_arch = "aarch64")]
            ErrKind::Smccc(e) => e.fmt(f),
            ErrKind::Track(e) => write!(f, "not issued: {e}"),
        }
    }
}

/// The raw status a TDX refusal carried (r10 of MapGPA, rax of ACCEPT).
#[cfg(target_arch = "x86_64")]
fn tdx_code(e: &TdxError) -> Option<i64> {
    use convtest_proto::tdx::accept::AcceptError;
    use convtest_proto::tdx::map_gpa::WalkError;
    match *e {
        TdxError::MapGpa(WalkError::Refused { status, .. }) => status.raw().map(|c| c as i64),
        TdxError::MapGpa(_) => Some(convtest_proto::tdx::abi::VMCALL_RETRY as i64),
        TdxError::Accept(AcceptError::Refused { status, .. }) => status.raw().map(|c| c as i64),
        TdxError::Accept(AcceptError::Busy { .. }) => {
            Some(convtest_proto::tdx::abi::ACCEPT_OPERAND_BUSY as i64)
        }
        TdxError::WrongAnswer { .. } => None,
    }
}

/// The raw answer an SNP refusal carried (PVALIDATE's rax, the page state
/// change's error code).
#[cfg(target_arch = "x86_64")]
fn snp_code(e: &SnpError) -> Option<i64> {
    use convtest_proto::snp::ghcb::PscResponseError;
    use convtest_proto::snp::pvalidate::PvalidateError;
    match *e {
        SnpError::Pvalidate(PvalidateError::Failed { rax, .. }) => Some(rax as i64),
        SnpError::Pvalidate(PvalidateError::NoUpdate { .. }) => Some(0),
        SnpError::Psc {
            error: PscResponseError::Error { code },
            ..
        } => Some(i64::from(code)),
        SnpError::Psc {
            error: PscResponseError::NotPscResponse { msr },
            ..
        } => Some(msr as i64),
        SnpError::WrongAnswer { .. } => None,
    }
}

/// A conversion the hypervisor refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvError {
    /// ABI name of the call (`MAP_GPA_RANGE`, `MEM_SHARE`, …).
    pub call: &'static str,
    /// Hypercall number or SMCCC function id.
    pub id: u64,
    /// What the caller asked to convert.
    pub range: MemRange,
    /// Bytes from `range.start` the hypervisor confirmed converted.
    pub done: u64,
    /// Whether the rest of the range is now unknown. One call for a whole
    /// range (MAP_GPA_RANGE) that fails may have converted any part of it;
    /// per-granule calls (pKVM) leave what they never reached unchanged.
    pub rest_unknown: bool,
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
        if self.rest_unknown && self.done < self.range.len() {
            f.write_str("; the rest of the range is now of unknown state")?;
        }
        Ok(())
    }
}

/// One ABI call exactly as the registers carry it, unchecked: how the suite
/// issues deliberately malformed requests and checks an ABI's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawCall {
    /// KVM_HC_MAP_GPA_RANGE: rbx, rcx, rdx.
    MapGpa(MapGpaArgs),
    #[cfg(target_arch = "x86_64")]
    /// TDX `TDG.VP.VMCALL<MapGPA>` of `[gpa, gpa + size)`, issued with the
    /// TD's shared bit OR'ed in when `shared` (the converter knows the bit).
    TdxMapGpa { gpa: u64, size: u64, shared: bool },
    #[cfg(target_arch = "x86_64")]
    /// SEV-SNP page state change through the GHCB MSR: the request's GFN and
    /// op (GHCBData[55:52], any 4-bit value); the answer is the MSR after it.
    SnpPsc { gfn: u64, op: u8 },
    /// An SMCCC HVC64 call: function id and x1.
    Smccc { fid: u32, x1: u64 },
}

impl RawCall {
    /// The conversion direction the call asks for, if it is a conversion.
    pub fn target(&self) -> Option<Target> {
        match *self {
            RawCall::MapGpa(a) if a.attrs & ATTR_ENC_STATUS != 0 => Some(Target::Private),
            RawCall::MapGpa(_) => Some(Target::Shared),
            #[cfg(target_arch = "x86_64")]
            RawCall::TdxMapGpa { shared, .. } => Some(if shared {
                Target::Shared
            } else {
                Target::Private
            }),
            #[cfg(target_arch = "x86_64")]
            RawCall::SnpPsc { op, .. } => match op {
                1 => Some(Target::Private),
                2 => Some(Target::Shared),
                _ => None,
            },
            RawCall::Smccc {
                fid: PKVM_MEM_SHARE,
                ..
            } => Some(Target::Shared),
            RawCall::Smccc {
                fid: PKVM_MEM_UNSHARE,
                ..
            } => Some(Target::Private),
            RawCall::Smccc { .. } => None,
        }
    }
}

impl fmt::Display for RawCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RawCall::MapGpa(a) => write!(
                f,
                "MAP_GPA_RANGE gpa={:#x} npages={} attrs={:#x}",
                a.gpa, a.npages, a.attrs
            ),
            #[cfg(target_arch = "x86_64")]
            RawCall::TdxMapGpa { gpa, size, shared } => write!(
                f,
                "TDG.VP.VMCALL<MapGPA> gpa={gpa:#x}{} size={size:#x}",
                if shared { " | shared bit" } else { "" }
            ),
            #[cfg(target_arch = "x86_64")]
            RawCall::SnpPsc { gfn, op } => write!(
                f,
                "GHCB MSR page state change gfn={gfn:#x} op={op} (request {:#x})",
                convtest_proto::snp::ghcb::psc_request_raw(gfn, op)
            ),
            RawCall::Smccc { fid, x1 } => {
                let name = match fid {
                    PKVM_MEM_SHARE => "MEM_SHARE",
                    PKVM_MEM_UNSHARE => "MEM_UNSHARE",
                    SMCCC_KVM_FEATURES => "KVM_FEATURES",
                    _ => "SMCCC",
                };
                write!(f, "{name} ({fid:#x}) x1={x1:#x}")
            }
        }
    }
}

/// The call was of another ABI than the converter's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongAbi;

/// The calls one conversion issues: how many, the first and the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Issued {
    pub count: u64,
    pub first: RawCall,
    pub last: RawCall,
}

/// Cost and shape of one reset-to-private.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Ranges the reset converted.
    pub ranges: u64,
    /// Granules those ranges cover.
    pub pages: u64,
    /// Hypervisor calls issued.
    pub calls: u64,
    /// Granules the reset could not prove private (reported, left unknown).
    pub unknown: u64,
    /// How the ABI decided what to convert (`all-ram`, `ledger`, …).
    pub method: &'static str,
    pub cycles: u64,
}

/// A reset's report and the ranges it left of unknown state.
#[derive(Clone, Debug, Default)]
pub struct ResetOutcome {
    pub report: ResetReport,
    pub unknown: Vec<MemRange>,
}

/// A conversion's hypervisor calls and nothing else: no tracker, no guest
/// record, no lock, so every CPU may issue them at once (`stress.overlap`
/// does, and records each answer afterwards through
/// `Converter::record`). A `ConversionAbi` converts through the same calls, so
/// each ABI keeps one path to its trap.
pub trait Calls: Send + Sync {
    /// Issues the calls converting `range` (whole granules). On failure
    /// the error says how much of the front was converted and what became
    /// of the rest.
    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError>;
}

/// The raw ABI of one hypervisor. A conversion is `before`, the calls
/// (`issue`), then `after` for what the calls converted.
pub trait ConversionAbi {
    fn name(&self) -> &'static str;
    fn granule(&self) -> u64;
    /// Before the calls converting `range`: whatever record a crash in
    /// them would need at the next boot (pKVM: the ledger's pending share).
    fn before(&mut self, _range: MemRange, _to: Target) {}
    /// The conversion calls themselves (see [`Calls`]).
    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError>;
    /// After the calls: `done` (the front they confirmed) is now `to` in the
    /// ABI's own record.
    fn after(&mut self, _done: MemRange, _to: Target) {}
    /// A copy of the calls for other CPUs.
    fn calls(&self) -> Box<dyn Calls>;
    /// Makes every granule of `ram` (the tracker's ranges) private.
    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetOutcome, ConvError>;
    /// RAM the ABI keeps for itself (never handed to tests).
    fn reserved(&self) -> Option<MemRange> {
        None
    }
    /// Issues `call` as given and returns x0/rax as a signed value.
    fn raw(&mut self, call: RawCall) -> Result<i64, WrongAbi>;
    /// The calls `convert(range, to)` would issue.
    fn calls_for(&self, range: MemRange, to: Target) -> Issued;
    /// Before bare conversions of `range` (`issue` alone, what a benchmark
    /// times, ended by `make_private`): keep whatever record a crash would
    /// need to find it shared at the next boot.
    fn note_bare(&mut self, _range: MemRange) {}
    /// Makes `range` private whatever state it is in (granules already
    /// private are fine) and updates the ABI's own record.
    fn make_private(&mut self, range: MemRange) -> Result<(), ConvError>;
    /// The ABI's own record-keeping of one share + unshare of `range`,
    /// without any call (pKVM: the ledger's writes, cleaned to memory).
    fn bookkeep(&mut self, _range: MemRange) {}
    /// A call that reaches the hypervisor but changes nothing (`page` is a
    /// private granule the ABI may name in it).
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError>;
    /// Bench op name of `noop`.
    fn noop_op(&self) -> &'static str;
    /// Where the guest reaches a page while it is shared; `None`: at the
    /// same address as while private (KVM, pKVM).
    fn shared_view(&self) -> Option<SharedView> {
        None
    }
    /// What the ABI counted since it was last asked and must be reported
    /// (TDX: pages already accepted; SNP: pages already validated), as
    /// one diagnostic line.
    fn take_note(&mut self) -> Option<alloc::string::String> {
        None
    }
}
