//! Hypervisor discovery through CPUID; decoding happens in `convtest_proto::hv`.

use super::cpu::{cpuid, max_basic_leaf, max_hypervisor_leaf};
use crate::conv::Probe;
use convtest_proto::hv::{HYPERVISOR_LEAF, TDX_LEAF, X86Cpuid, signature};

pub fn probe() -> Probe {
    let max_basic_leaf = max_basic_leaf();
    let mut found = X86Cpuid {
        max_basic_leaf,
        ..X86Cpuid::default()
    };
    if let Some(hv_max) = max_hypervisor_leaf() {
        let hv = cpuid(HYPERVISOR_LEAF, 0);
        found.hypervisor_bit = true;
        found.hv_max_leaf = hv_max;
        found.hv_signature = signature(hv.ebx, hv.ecx, hv.edx);
        if hv_max > HYPERVISOR_LEAF {
            found.hv_features = Some(cpuid(HYPERVISOR_LEAF + 1, 0).eax);
        }
    }
    // Asked regardless of the hypervisor bit: a TD guest is recognised by
    // this leaf alone.
    if max_basic_leaf >= TDX_LEAF {
        let t = cpuid(TDX_LEAF, 0);
        found.tdx_signature = Some(signature(t.ebx, t.edx, t.ecx));
    }
    Probe::X86(found)
}
