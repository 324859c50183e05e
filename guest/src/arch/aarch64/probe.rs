//! Hypervisor discovery over SMCCC: vendor-hyp UID, then (for KVM) the
//! feature bitmap, then (if advertised) pKVM's HYP_MEMINFO. Decoding the
//! answers is `convtest_proto::smccc`'s job.

use super::smccc;
use crate::arch::probe::Probe;
use convtest_proto::smccc::{
    KVM_UID, PKVM_HYP_MEMINFO, SMCCC_KVM_FEATURES, SMCCC_VENDOR_HYP_CALL_UID, SmcccAnswer,
    SmcccProbe, kvm_feature_bit,
};

pub fn probe() -> Probe {
    Probe::Arm(smccc_probe())
}

/// The answers themselves, for the boot path that needs them before the
/// kernel runs (first_touch.rs, mmio_guard.rs).
pub fn smccc_probe() -> SmcccProbe {
    let conduit = smccc::conduit();
    let mut p = SmcccProbe {
        conduit,
        uid: SmcccAnswer::Undefined,
        features: None,
        meminfo: None,
    };
    let Some(uid) = smccc::call(SMCCC_VENDOR_HYP_CALL_UID, 0, 0, 0) else {
        return p;
    };
    // The UID comes back as four 32-bit words in w0..w3.
    p.uid = match uid {
        SmcccAnswer::Undefined => SmcccAnswer::Undefined,
        SmcccAnswer::Value(r) => {
            SmcccAnswer::Value([r[0] as u32, r[1] as u32, r[2] as u32, r[3] as u32])
        }
    };
    if p.uid != SmcccAnswer::Value(KVM_UID) {
        return p;
    }
    // x1 = 0: the first 32-function page of the bitmap.
    p.features = match smccc::call(SMCCC_KVM_FEATURES, 0, 0, 0) {
        Some(SmcccAnswer::Value(r)) => Some(r[0]),
        _ => None,
    };
    if p.features
        .is_some_and(|f| f & kvm_feature_bit(PKVM_HYP_MEMINFO) != 0)
    {
        p.meminfo = match smccc::call(PKVM_HYP_MEMINFO, 0, 0, 0) {
            Some(SmcccAnswer::Value(r)) => Some(r[0] as i64),
            _ => None,
        };
    }
    p
}
