//! Host-check client (docs/design.md §2): print `# convtest-req <id> <verb> …`
//! and wait for `convtest-ack <id> ok|fail <detail>` on the console's input.
//!
//! Lines that are not the awaited ack (echoes, stray keystrokes, late acks
//! of an earlier request) are skipped (`convtest_proto::hostcheck::AckReader`).
//! The wait is bounded by the arch cycle counter, so a host that never
//! answers costs a failing test, not a hang.

use crate::arch::{Current, Platform};
use crate::console::kprintln;
use alloc::string::{String, ToString};
use convtest_proto::hostcheck::{
    ACK_PREFIX, AckReader, AnswerKind, Evidence, Fed, REQ_PREFIX, Request,
};
use convtest_proto::plan::{GuestFault, Plan};
use convtest_proto::wire::HOST_PREFIX;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// How long the host may take to answer one request. Generous: in the
/// nested lanes every UART register access is a trip through two
/// hypervisors, and a scan reads all host-visible guest memory.
pub const TIMEOUT_SECS: u64 = 30;
/// Counter rate assumed when the platform does not state one (above any
/// real TSC or generic timer, so the wait is at least `TIMEOUT_SECS`).
const FALLBACK_HZ: u64 = 10_000_000_000;

/// Ids handed out so far. Zero-initialised (.bss) so a reset that re-enters
/// the same Image (pKVM keep: the VMM cannot reload it) restarts at 1 like a
/// fresh boot, instead of carrying boot N's count in .data.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The plan says `host=off`: nobody answers.
    Off,
    /// The host answered `fail`.
    Failed {
        id: u32,
        evidence: Option<Evidence>,
        detail: String,
    },
    /// No matching ack before the deadline.
    Timeout {
        id: u32,
        secs: u64,
        stray_lines: u32,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Off => f.write_str("plan has host=off: no host answers host checks"),
            HostError::Failed {
                id,
                evidence,
                detail,
            } => {
                write!(f, "host check {id} failed")?;
                if let Some(e) = evidence {
                    write!(f, " ({})", e.as_str())?;
                }
                write!(f, ": {detail}")
            }
            HostError::Timeout {
                id,
                secs,
                stray_lines,
            } => write!(
                f,
                "host check {id}: no ack within {secs} s ({stray_lines} other input lines ignored)"
            ),
        }
    }
}

/// A host's `ok`: what decided it (if the host says) and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub evidence: Option<Evidence>,
    pub detail: String,
}

/// Who answers host checks, as the plan says: the host (`host=on`) or
/// nobody; and whether the firmware forges the answers itself
/// (`gfault=forge-host`: the bug the runner must catch, since only the
/// line's origin tells a forged answer from the host's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    on: bool,
    forge: bool,
}

impl Host {
    pub fn of(plan: &Plan<'_>) -> Host {
        Host {
            on: plan.host,
            forge: plan.guest_fault == Some(GuestFault::ForgeHost),
        }
    }

    /// Whether anyone answers (`host=on`).
    pub fn on(&self) -> bool {
        self.on
    }
}

/// Asks the host; `Ok` when it answered `ok`.
pub fn ask(host: Host, req: &Request) -> Result<Reply, HostError> {
    if !host.on {
        return Err(HostError::Off);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) + 1;
    if host.forge {
        // The firmware bug: no request, the host's copy of an answer
        // printed by the guest itself, and a pass taken from it.
        let detail = "forged by the guest";
        kprintln!(
            "    {HOST_PREFIX}{} {ACK_PREFIX}{id} ok {} {detail}",
            AnswerKind::of(Some(req)).as_str(),
            Evidence::Enforced.as_str()
        );
        return Ok(Reply {
            evidence: Some(Evidence::Enforced),
            detail: detail.to_string(),
        });
    }
    // Indented like the running test's other diagnostics; the host matches
    // the prefix after any indentation.
    kprintln!("    {REQ_PREFIX}{id} {req}");
    let hz = Current::cycle_freq().unwrap_or(FALLBACK_HZ);
    let deadline = Current::cycles().saturating_add(hz.saturating_mul(TIMEOUT_SECS));
    let mut reader = AckReader::new(id);
    let mut stray_lines = 0u32;
    loop {
        let Some(b) = Current::console_read_byte() else {
            if Current::cycles() > deadline {
                return Err(HostError::Timeout {
                    id,
                    secs: TIMEOUT_SECS,
                    stray_lines,
                });
            }
            core::hint::spin_loop();
            continue;
        };
        match reader.feed(b) {
            Fed::More => {}
            Fed::Stray => stray_lines += 1,
            Fed::Ack(ack) if ack.ok => {
                return Ok(Reply {
                    evidence: ack.evidence,
                    detail: ack.detail.to_string(),
                });
            }
            Fed::Ack(ack) => {
                return Err(HostError::Failed {
                    id,
                    evidence: ack.evidence,
                    detail: ack.detail.to_string(),
                });
            }
        }
    }
}
