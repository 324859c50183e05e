//! The MapGPA retry walk: one `TDG.VP.VMCALL<MapGPA>` asks the VMM to map
//! `[gpa, gpa + size)` shared (the GPA carries the shared bit) or private;
//! the VMM may convert part of it and answer RETRY with r11 = where to
//! resume (GHCI "TDG.VP.VMCALL<MapGPA>"; KVM splits at 2 MiB and answers
//! RETRY when an interrupt is pending, `arch/x86/kvm/vmx/tdx.c`). r11 comes
//! from the untrusted VMM, so the walk accepts it only inside what is still
//! to do, and only a bounded number of times without progress (Linux
//! `tdx_map_gpa`: 3 per position; docs/design.md §4).

use super::abi::VmcallStatus;
use crate::range::MemRange;
use core::fmt;

/// RETRY answers accepted at one position without progress.
pub const MAX_STALLS: u32 = 3;

/// The registers of one MapGPA call: r12 = gpa, r13 = size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapGpaCall {
    pub gpa: u64,
    pub size: u64,
}

/// Why a walk ended without converting its range. Every variant names the
/// r11 the VMM gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// An answer other than SUCCESS or RETRY.
    Refused {
        status: VmcallStatus,
        call: MapGpaCall,
        r11: u64,
    },
    /// RETRY with r11 below where the call started.
    Backwards { call: MapGpaCall, r11: u64 },
    /// RETRY with r11 at or past the end of the range.
    Outside { call: MapGpaCall, r11: u64 },
    /// More than `MAX_STALLS` RETRYs with r11 where the call started.
    Stalled { call: MapGpaCall, r11: u64 },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalkError::Refused { status, call, r11 } => write!(
                f,
                "MapGPA gpa={:#x} size={:#x} answered {status}, r11={r11:#x}",
                call.gpa, call.size
            ),
            WalkError::Backwards { call, r11 } => write!(
                f,
                "MapGPA gpa={:#x} size={:#x} answered RETRY with r11={r11:#x}, below where the call started: the VMM went backwards",
                call.gpa, call.size
            ),
            WalkError::Outside { call, r11 } => write!(
                f,
                "MapGPA gpa={:#x} size={:#x} answered RETRY with r11={r11:#x}, outside the range asked for",
                call.gpa, call.size
            ),
            WalkError::Stalled { call, r11 } => write!(
                f,
                "MapGPA gpa={:#x} size={:#x} answered RETRY with r11={r11:#x} more than {MAX_STALLS} times without progress",
                call.gpa, call.size
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapGpaWalk {
    /// The GPAs as issued: `alias` is OR'ed into both ends.
    start: u64,
    end: u64,
    next: u64,
    alias: u64,
    stalls: u32,
    calls: u64,
}

impl MapGpaWalk {
    /// A walk over `range` (4 KiB-aligned, without the shared bit), issued
    /// with `alias` OR'ed in: the TD's shared bit to convert to shared, 0
    /// to convert to private.
    pub fn new(range: MemRange, alias: u64) -> MapGpaWalk {
        MapGpaWalk {
            start: range.start | alias,
            end: range.end | alias,
            next: range.start | alias,
            alias,
            stalls: 0,
            calls: 0,
        }
    }

    /// The call to make next; `None` once the VMM confirmed the whole range.
    pub fn call(&self) -> Option<MapGpaCall> {
        (self.next < self.end).then(|| MapGpaCall {
            gpa: self.next,
            size: self.end - self.next,
        })
    }

    /// Takes the VMM's answer to `call()`: r10 decoded, r11 as returned.
    pub fn answer(&mut self, status: VmcallStatus, r11: u64) -> Result<(), WalkError> {
        let Some(call) = self.call() else {
            return Ok(());
        };
        self.calls += 1;
        match status {
            VmcallStatus::Success => {
                self.next = self.end;
                Ok(())
            }
            VmcallStatus::Retry if r11 < call.gpa => Err(WalkError::Backwards { call, r11 }),
            VmcallStatus::Retry if r11 >= self.end => Err(WalkError::Outside { call, r11 }),
            VmcallStatus::Retry if r11 == call.gpa => {
                self.stalls += 1;
                if self.stalls > MAX_STALLS {
                    Err(WalkError::Stalled { call, r11 })
                } else {
                    Ok(())
                }
            }
            VmcallStatus::Retry => {
                self.next = r11;
                self.stalls = 0;
                Ok(())
            }
            status => Err(WalkError::Refused { status, call, r11 }),
        }
    }

    /// Bytes from the start the VMM confirmed converted.
    pub fn done(&self) -> u64 {
        self.next - self.start
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.end
    }

    /// MapGPA calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The bit OR'ed into every GPA of this walk.
    pub fn alias(&self) -> u64 {
        self.alias
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const SHARED: u64 = 1 << 47;

    #[test]
    fn shared_walk_issues_the_alias() {
        let w = MapGpaWalk::new(MemRange::from_len(0x20_0000, 0x4000), SHARED);
        assert_eq!(
            w.call(),
            Some(MapGpaCall {
                gpa: SHARED | 0x20_0000,
                size: 0x4000
            })
        );
    }

    #[test]
    fn retry_resumes_at_r11_and_counts_only_stalls() {
        let mut w = MapGpaWalk::new(MemRange::from_len(0, 0x10_000), 0);
        w.answer(VmcallStatus::Retry, 0x4000).expect("forward");
        assert_eq!(w.call().map(|c| c.gpa), Some(0x4000));
        assert_eq!(w.done(), 0x4000);
        for _ in 0..MAX_STALLS {
            w.answer(VmcallStatus::Retry, 0x4000)
                .expect("a stall within the bound");
        }
        // Progress resets the count.
        w.answer(VmcallStatus::Retry, 0x5000).expect("forward");
        for _ in 0..MAX_STALLS {
            w.answer(VmcallStatus::Retry, 0x5000).expect("stall");
        }
        let e = w
            .answer(VmcallStatus::Retry, 0x5000)
            .expect_err("one stall too many");
        assert!(matches!(e, WalkError::Stalled { r11: 0x5000, .. }));
        assert!(e.to_string().contains("r11=0x5000"), "{e}");
    }

    #[test]
    fn r11_outside_what_is_left_is_an_error_naming_it() {
        let mut w = MapGpaWalk::new(MemRange::from_len(0x1000, 0x3000), 0);
        w.answer(VmcallStatus::Retry, 0x2000).expect("forward");
        let e = w
            .answer(VmcallStatus::Retry, 0x1000)
            .expect_err("backwards");
        assert_eq!(
            e,
            WalkError::Backwards {
                call: MapGpaCall {
                    gpa: 0x2000,
                    size: 0x2000
                },
                r11: 0x1000
            }
        );
        let mut w = MapGpaWalk::new(MemRange::from_len(0x1000, 0x3000), 0);
        let e = w
            .answer(VmcallStatus::Retry, 0x4000)
            .expect_err("at the end");
        assert!(matches!(e, WalkError::Outside { r11: 0x4000, .. }), "{e}");
    }

    #[test]
    fn errors_keep_status_and_r11() {
        let mut w = MapGpaWalk::new(MemRange::from_len(0x1000, 0x1000), SHARED);
        let e = w
            .answer(VmcallStatus::InvalidOperand, SHARED | 0x1000)
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "MapGPA gpa=0x800000001000 size=0x1000 answered INVALID_OPERAND (0x8000000000000000), r11=0x800000001000"
        );
        assert_eq!(w.done(), 0);
    }
}
