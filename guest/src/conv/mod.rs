//! The conversion seam: one `ConversionAbi` per hypervisor ABI (the raw calls,
//! `seam.rs`), wrapped in `Tracked`, which keeps the page-state tracker and
//! is what the suites see as `dyn Converter`. `detect()` picks the ABI
//! from what the arch layer's probe found.

mod gate;
#[cfg(target_arch = "aarch64")]
mod ledger;
#[cfg(target_arch = "x86_64")]
mod map_gpa;
#[cfg(target_arch = "aarch64")]
mod pkvm;
mod seam;
mod tracked;

pub use seam::{Calls, ConvError, Issued, RawCall};
pub use tracked::Converter;

use crate::arch::{Finding, Probe};
use crate::boot::BootInfo;
use alloc::boxed::Box;
#[cfg(target_arch = "x86_64")]
use convtest_proto::cpuid::X86Finding;
use convtest_proto::plan::GuestFault;
use convtest_proto::range::RangeList;
#[cfg(target_arch = "aarch64")]
use convtest_proto::smccc::ArmFinding;
use core::fmt;

/// Why no converter was chosen: the probe's finding (and, when the finding
/// names a usable ABI, why it still is not used), shown as the SKIP reason.
#[derive(Clone, Copy, Debug)]
pub struct NoConverter {
    pub finding: Finding,
    pub why: Option<&'static str>,
}

impl fmt::Display for NoConverter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            Some(why) => write!(f, "{}, but {why}", self.finding),
            None => self.finding.fmt(f),
        }
    }
}

/// Picks the converter matching the probe's finding. `free` is RAM no one
/// else uses (an ABI may keep a record in it: see `Converter::reserved`).
/// The tracker covers all of `boot.ram` and starts out unknown until
/// `reset_to_private` succeeds. `fault` is the plan's deliberate firmware
/// bug, if any.
pub fn detect(
    probe: &Probe,
    boot: &BootInfo,
    free: &RangeList,
    fault: Option<GuestFault>,
) -> Result<Box<dyn Converter>, NoConverter> {
    let finding = probe.finding();
    let gate = gate::Gate::new(fault);
    match finding {
        #[cfg(target_arch = "x86_64")]
        Finding::X86(X86Finding::KvmMapGpaRange) => {
            let _ = free;
            Ok(Box::new(tracked::Tracked::new(
                map_gpa::MapGpa::new(gate),
                &boot.ram,
                fault,
            )))
        }
        #[cfg(target_arch = "aarch64")]
        Finding::Arm(ArmFinding::Pkvm { granule }) => {
            match pkvm::Pkvm::new(granule, free, boot.phys_offset, gate) {
                Some(b) => Ok(Box::new(tracked::Tracked::new(b, &boot.ram, fault))),
                None => Err(NoConverter {
                    finding,
                    why: Some("no free RAM granule for the shared-range ledger"),
                }),
            }
        }
        #[cfg(target_arch = "x86_64")]
        Finding::X86(X86Finding::Tdx) => Err(NoConverter {
            finding,
            why: Some("this build has no TDX conversion ABI yet"),
        }),
        _ => {
            let _ = (boot, free, gate);
            Err(NoConverter { finding, why: None })
        }
    }
}
