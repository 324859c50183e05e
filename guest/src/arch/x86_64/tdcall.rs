//! The TDX traps, each one call of the `tdx-guest` crate (which holds the
//! TDCALL instruction and its register contract: `asm/tdcall.asm`,
//! `asm/tdvmcall.asm`):
//!
//! - `TDG.VP.VMCALL<MapGPA>`: r11 = 0x10001, r12 = GPA (the shared bit
//!   selects shared), r13 = size; out r10 = status, r11 = where to resume
//!   after RETRY. The crate returns `Err((r11, error))`.
//! - `TDG.MEM.PAGE.ACCEPT`: rax = 6, rcx = GPA | level; out rax = status.
//!
//! The crate's error enums drop unknown codes; those come back as
//! `Unnamed`, not as a made-up number.

use convtest_proto::size_walk::PageSize;
use convtest_proto::tdx::abi::{AcceptStatus, VmcallStatus, accept_level};
use tdx_guest::tdcall::TdCallError;
use tdx_guest::tdvmcall::TdVmcallError;

/// MapGPA of `[gpa, gpa + size)`: r10 decoded and r11.
pub fn map_gpa(gpa: u64, size: u64) -> (VmcallStatus, u64) {
    match tdx_guest::tdvmcall::map_gpa(gpa, size) {
        Ok(()) => (VmcallStatus::Success, 0),
        Err((r11, e)) => (
            match e {
                TdVmcallError::TdxRetry => VmcallStatus::Retry,
                TdVmcallError::TdxOperandInvalid => VmcallStatus::InvalidOperand,
                TdVmcallError::TdxGpaInuse => VmcallStatus::GpaInUse,
                TdVmcallError::TdxAlignError => VmcallStatus::AlignError,
                TdVmcallError::Other => VmcallStatus::Unnamed,
            },
            r11,
        ),
    }
}

/// Accepts the page at `gpa` of `size`.
pub fn accept(gpa: u64, size: PageSize) -> AcceptStatus {
    // SAFETY: the crate's contract asks for a valid GPA: `gpa` is guest RAM
    // the caller converted to private, page-aligned for `size`. The TDX
    // module checks the rest and answers with a status; memory the kernel
    // uses is not touched (accepting a mapped page changes nothing).
    match unsafe { tdx_guest::tdcall::accept_page(accept_level(size), gpa) } {
        Ok(()) => AcceptStatus::Success,
        Err(TdCallError::TdxPageAlreadyAccepted) => AcceptStatus::AlreadyAccepted,
        Err(TdCallError::TdxPageSizeMismatch) => AcceptStatus::SizeMismatch,
        Err(TdCallError::TdxOperandBusy) => AcceptStatus::OperandBusy,
        Err(TdCallError::TdxOperandInvalid) => AcceptStatus::OperandInvalid,
        Err(_) => AcceptStatus::Unnamed,
    }
}
