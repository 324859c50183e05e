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
#[cfg(target_arch = "x86_64")]
mod snp;
#[cfg(target_arch = "x86_64")]
mod tdx;
mod tracked;
mod view;

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

/// The end of the highest RAM range.
#[cfg(target_arch = "x86_64")]
fn ram_end(boot: &BootInfo) -> u64 {
    boot.ram.iter().map(|r| r.end).max().unwrap_or(0)
}

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
        // Confidential guests map the shared view over all RAM.
        #[cfg(target_arch = "x86_64")]
        Finding::X86(X86Finding::Tdx) => match tdx::Tdx::new(gate, ram_end(boot)) {
            Ok(t) => Ok(Box::new(tracked::Tracked::new(t, &boot.ram, fault))),
            Err(why) => Err(NoConverter {
                finding,
                why: Some(why),
            }),
        },
        #[cfg(target_arch = "x86_64")]
        Finding::X86(X86Finding::SevSnp { .. }) => match snp::Snp::new(gate, ram_end(boot)) {
            Ok(s) => Ok(Box::new(tracked::Tracked::new(s, &boot.ram, fault))),
            Err(why) => Err(NoConverter {
                finding,
                why: Some(why),
            }),
        },
        _ => {
            let _ = (boot, free, gate);
            Err(NoConverter { finding, why: None })
        }
    }
}
