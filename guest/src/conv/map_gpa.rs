//! `kvm-map-gpa-range`: KVM's `KVM_HC_MAP_GPA_RANGE` (hypercall 12), served
//! by the VMM through `KVM_EXIT_HYPERCALL`. Argument encoding and return
//! decoding live in `convtest_proto::map_gpa`; the trap is `vmcall` or
//! `vmmcall` by CPU vendor (CPUID 0).

use super::gate::Gate;
use super::seam::{
    Calls, ConvError, ConversionAbi, ErrKind, Issued, RawCall, ResetOutcome, ResetReport, WrongAbi,
};
use crate::arch::{Current, Platform};
use alloc::boxed::Box;
use convtest_proto::cpuid::CpuVendor;
use convtest_proto::map_gpa::{self, KVM_HC_MAP_GPA_RANGE, MapGpaArgs, PAGE_4K};
use convtest_proto::range::MemRange;
use convtest_proto::tracker::Target;

const CALL: &str = "MAP_GPA_RANGE";

/// Nothing but the vendor's trap and the gate: every CPU may hold a copy.
#[derive(Clone, Copy)]
pub struct MapGpa {
    vendor: CpuVendor,
    gate: Gate,
}

impl MapGpa {
    pub fn new(gate: Gate) -> Self {
        let v = Current::cpuid(0, 0);
        MapGpa {
            vendor: CpuVendor::from_cpuid0(v.ebx, v.edx, v.ecx),
            gate,
        }
    }

    /// One hypercall through the gate; rax as returned.
    fn trap(&self, a: MapGpaArgs) -> u64 {
        if self.gate.skips(RawCall::MapGpa(a).target()) {
            return 0;
        }
        if self.vendor.uses_vmmcall() {
            Current::vmmcall(KVM_HC_MAP_GPA_RANGE, a.gpa, a.npages, a.attrs)
        } else {
            Current::vmcall(KVM_HC_MAP_GPA_RANGE, a.gpa, a.npages, a.attrs)
        }
    }

    fn call(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        let a = map_gpa::args(range, to == Target::Private);
        map_gpa::decode(self.trap(a)).map_err(|e| ConvError {
            call: CALL,
            id: KVM_HC_MAP_GPA_RANGE,
            range,
            done: 0,
            // One call for the whole range: whatever the VMM did to it
            // before failing is not reported back.
            rest_unknown: true,
            kind: ErrKind::MapGpa(e),
        })
    }
}

impl MapGpa {
    /// A conversion's calls: one for the whole range, or, under a partial
    /// fault, one for each side of the granule it leaves out.
    fn convert(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        let Some(k) = self.gate.omits(to, range.len() / PAGE_4K) else {
            return self.call(range, to);
        };
        let gap = range.start + k * PAGE_4K;
        for part in [
            MemRange::new(range.start, gap),
            MemRange::new(gap + PAGE_4K, range.end),
        ] {
            if !part.is_empty() {
                self.call(part, to).map_err(|e| ConvError { range, ..e })?;
            }
        }
        Ok(())
    }
}

impl Calls for MapGpa {
    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.convert(range, to)
    }
}

impl ConversionAbi for MapGpa {
    fn name(&self) -> &'static str {
        "kvm-map-gpa-range"
    }

    fn granule(&self) -> u64 {
        PAGE_4K
    }

    /// MAP_GPA_RANGE keeps no record in the guest: the call is all.
    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.convert(range, to)
    }

    fn calls(&self) -> Box<dyn Calls> {
        Box::new(*self)
    }

    /// One call per RAM range, whatever happened before this boot: the VMM
    /// (and KVM) take a range of any length in one exit, so this is as cheap
    /// as a reset can be and needs no record of what was shared.
    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetOutcome, ConvError> {
        let mut report = ResetReport {
            method: "one-call-per-ram-range",
            ..ResetReport::default()
        };
        for &r in ram {
            report.calls += 1;
            self.call(r, Target::Private)?;
            report.ranges += 1;
            report.pages += r.len() / PAGE_4K;
        }
        Ok(ResetOutcome {
            report,
            unknown: alloc::vec::Vec::new(),
        })
    }

    fn raw(&mut self, call: RawCall) -> Result<i64, WrongAbi> {
        match call {
            RawCall::MapGpa(a) => Ok(self.trap(a) as i64),
            _ => Err(WrongAbi),
        }
    }

    fn calls_for(&self, range: MemRange, to: Target) -> Issued {
        let call = RawCall::MapGpa(map_gpa::args(range, to == Target::Private));
        Issued {
            count: 1,
            first: call,
            last: call,
        }
    }

    fn make_private(&mut self, range: MemRange) -> Result<(), ConvError> {
        // Idempotent: the VMM answers 0 for pages already private.
        self.call(range, Target::Private)
    }

    /// Converting an already-private page to private: KVM still exits to the
    /// VMM, which finds nothing to change.
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        self.call(page, Target::Private)
    }

    fn noop_op(&self) -> &'static str {
        "noop_map_gpa_private"
    }
}
