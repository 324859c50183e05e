//! Hypervisor discovery through CPUID (and SEV_STATUS); decoding happens in
//! `convtest_proto::cpuid`.

use super::cpu::{cpuid, max_basic_leaf, max_ext_leaf, max_hypervisor_leaf};
use super::msr::{MsrFault, rdmsr_guarded};
use crate::arch::probe::Probe;
use convtest_proto::cpuid::{
    HYPERVISOR_LEAF, MSR_SEV_STATUS, SEV_LEAF, SevStatus, TDX_LEAF, X86Cpuid, signature,
};

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
    // SEV: CPUID 0x8000001F EAX bit 1 says the CPU model has SEV; only
    // SEV_STATUS says this guest runs with it. The bit alone proves nothing
    // (a VMM may pass the host's CPUID through), and then the MSR is
    // unimplemented and the read raises #GP, which the guarded read survives.
    found.max_ext_leaf = max_ext_leaf();
    if found.max_ext_leaf >= SEV_LEAF {
        found.sev_leaf_eax = Some(cpuid(SEV_LEAF, 0).eax);
    }
    if found.sev_cpuid() {
        found.sev_status = match rdmsr_guarded(MSR_SEV_STATUS) {
            Ok(v) => SevStatus::Value(v),
            Err(MsrFault) => SevStatus::Faulted,
        };
    }
    Probe::X86(found)
}
