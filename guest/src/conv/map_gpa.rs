//! `kvm-map-gpa-range`: KVM's `KVM_HC_MAP_GPA_RANGE` (hypercall 12), served
//! by the VMM through `KVM_EXIT_HYPERCALL`. Argument encoding and return
//! decoding live in `convtest_proto::map_gpa`; the trap is `vmcall` or
//! `vmmcall` by CPU vendor (CPUID 0).

use super::tracked::{Backend, ConvError, ErrKind, Rejection, ResetReport};
use crate::arch;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use convtest_proto::hv::CpuVendor;
use convtest_proto::map_gpa::{
    self, ATTR_ENC_STATUS, ATTR_PAGE_SZ_1G, ATTR_PAGE_SZ_2M, KVM_HC_MAP_GPA_RANGE, MapGpaArgs,
    PAGE_4K,
};
use convtest_proto::range::MemRange;
use convtest_proto::tracker::PageState;

const CALL: &str = "MAP_GPA_RANGE";

pub struct MapGpa {
    vendor: CpuVendor,
}

impl MapGpa {
    pub fn new() -> Self {
        let v = arch::cpuid(0, 0);
        MapGpa {
            vendor: CpuVendor::from_cpuid0(v.ebx, v.edx, v.ecx),
        }
    }

    /// One hypercall; rax as returned.
    fn raw(&self, a: MapGpaArgs) -> u64 {
        if self.vendor.uses_vmmcall() {
            arch::vmmcall(KVM_HC_MAP_GPA_RANGE, a.gpa, a.npages, a.attrs)
        } else {
            arch::vmcall(KVM_HC_MAP_GPA_RANGE, a.gpa, a.npages, a.attrs)
        }
    }

    fn call(&self, range: MemRange, to: PageState) -> Result<(), ConvError> {
        let a = map_gpa::args(range, to == PageState::Private);
        map_gpa::decode(self.raw(a)).map_err(|e| ConvError {
            call: CALL,
            id: KVM_HC_MAP_GPA_RANGE,
            range,
            // One call for the whole range: KVM and the VMM convert all or nothing.
            done: 0,
            kind: ErrKind::MapGpa(e),
        })
    }
}

fn show(a: MapGpaArgs) -> String {
    let hint = match a.attrs & 0xf {
        ATTR_PAGE_SZ_2M => " (2M hint)",
        ATTR_PAGE_SZ_1G => " (1G hint)",
        _ => "",
    };
    format!(
        "{CALL} gpa={:#x} npages={} attrs={:#x}{hint}",
        a.gpa, a.npages, a.attrs
    )
}

impl Backend for MapGpa {
    fn name(&self) -> &'static str {
        "kvm-map-gpa-range"
    }

    fn granule(&self) -> u64 {
        PAGE_4K
    }

    fn convert(&mut self, range: MemRange, to: PageState) -> Result<(), ConvError> {
        self.call(range, to)
    }

    /// One call per RAM range, whatever happened before this boot: the VMM
    /// (and KVM) take a range of any length in one exit, so this is as cheap
    /// as a reset can be and needs no record of what was shared.
    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetReport, ConvError> {
        let mut rep = ResetReport {
            method: "one-call-per-ram-range",
            ..ResetReport::default()
        };
        for &r in ram {
            self.call(r, PageState::Private)?;
            rep.ranges += 1;
            rep.calls += 1;
            rep.pages += r.len() / PAGE_4K;
        }
        Ok(rep)
    }

    /// KVM answers the first three itself, before the VMM sees an exit
    /// (arch/x86/kvm/x86.c: unaligned gpa, npages 0, gfn + npages wrapping);
    /// the fourth is the convtest VMM's contract (range outside guest RAM).
    /// All ask for *private*, so a wrongly accepted one changes nothing.
    fn rejections(&mut self, page: MemRange, ram_end: u64) -> Vec<Rejection> {
        let private = ATTR_ENC_STATUS;
        let cases = [
            (
                "unaligned gpa",
                MapGpaArgs {
                    gpa: page.start + 8,
                    npages: 1,
                    attrs: private,
                },
            ),
            (
                "npages 0",
                MapGpaArgs {
                    gpa: page.start,
                    npages: 0,
                    attrs: private,
                },
            ),
            (
                "gfn + npages overflows",
                MapGpaArgs {
                    gpa: page.start,
                    npages: u64::MAX,
                    attrs: private,
                },
            ),
            (
                "range outside guest RAM",
                MapGpaArgs {
                    gpa: ram_end,
                    npages: 1,
                    attrs: private,
                },
            ),
        ];
        let mut out = vec![];
        for (what, a) in cases {
            let got = match map_gpa::decode(self.raw(a)) {
                Ok(()) => 0,
                Err(e) => e.code(),
            };
            out.push(Rejection {
                what,
                call: show(a),
                expected: -22,
                got,
            });
        }
        out
    }

    /// Converting an already-private page to private: KVM still exits to the
    /// VMM, which finds nothing to change.
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        self.call(page, PageState::Private)
    }

    fn noop_op(&self) -> &'static str {
        "noop_map_gpa_private"
    }

    fn describe(&self, range: MemRange, to: PageState) -> String {
        show(map_gpa::args(range, to == PageState::Private))
    }
}
