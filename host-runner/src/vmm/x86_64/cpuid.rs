//! The CPUID the guest sees: KVM's supported set (needed before long mode),
//! the KVM signature leaf, and MAP_GPA_RANGE advertised in 0x40000001 EAX
//! bit 16 when the VMM serves that exit (KVM does not set it itself), and
//! the TSC frequency in 0x40000010 EAX (kHz) so the guest can turn cycles
//! into ns (the VMware/KVM timing-leaf convention; TCG and many hosts give
//! no 0x15/0x16). CPUID.1:ECX bit 31 (hypervisor present) is set too: KVM's
//! supported CPUID leaves it clear on some kernels (6.12), and a guest that
//! follows the rules only looks at 0x4000_0000 when it is set.

use kvm_bindings::kvm_cpuid_entry2;

pub const KVM_SIGNATURE_LEAF: u32 = 0x4000_0000;
pub const KVM_FEATURES_LEAF: u32 = 0x4000_0001;
pub const TIMING_LEAF: u32 = 0x4000_0010;
/// Leaf 1, ECX bit 31: "a hypervisor is present".
pub const FEATURE_LEAF: u32 = 1;
pub const ECX_HYPERVISOR: u32 = 1 << 31;
/// KVM_FEATURE_MIGRATION_CONTROL: the guest may use MAP_GPA_RANGE.
pub const FEATURE_MAP_GPA_RANGE: u32 = 1 << 16;
/// "KVMKVMKVM\0\0\0" as ebx, ecx, edx.
const SIG: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];

fn entry(function: u32) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        ..Default::default()
    }
}

/// Makes sure the KVM leaves exist, sets or clears the feature bit, says a
/// hypervisor is present and publishes the TSC frequency (0 = unknown: the
/// leaf is then left out).
pub fn patch(entries: &mut Vec<kvm_cpuid_entry2>, map_gpa_range: bool, tsc_khz: u32) {
    let mut leaves = vec![FEATURE_LEAF, KVM_SIGNATURE_LEAF, KVM_FEATURES_LEAF];
    if tsc_khz != 0 {
        leaves.push(TIMING_LEAF);
    }
    for &l in &leaves {
        if !entries.iter().any(|e| e.function == l) {
            entries.push(entry(l));
        }
    }
    let top = *leaves.iter().max().unwrap_or(&KVM_FEATURES_LEAF);
    for e in entries.iter_mut() {
        match e.function {
            FEATURE_LEAF => e.ecx |= ECX_HYPERVISOR,
            TIMING_LEAF if tsc_khz != 0 => e.eax = tsc_khz,
            KVM_SIGNATURE_LEAF => {
                e.eax = e.eax.max(top);
                [e.ebx, e.ecx, e.edx] = SIG;
            }
            KVM_FEATURES_LEAF if map_gpa_range => e.eax |= FEATURE_MAP_GPA_RANGE,
            KVM_FEATURES_LEAF => e.eax &= !FEATURE_MAP_GPA_RANGE,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(v: &[kvm_cpuid_entry2], f: u32) -> kvm_cpuid_entry2 {
        *v.iter().find(|e| e.function == f).unwrap()
    }

    #[test]
    fn adds_leaves_and_bit() {
        let mut v = vec![entry(0)];
        patch(&mut v, true, 0);
        let sig = leaf(&v, KVM_SIGNATURE_LEAF);
        let mut bytes = Vec::new();
        for r in [sig.ebx, sig.ecx, sig.edx] {
            bytes.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(&bytes, b"KVMKVMKVM\0\0\0");
        assert_eq!(sig.eax, KVM_FEATURES_LEAF);
        assert_eq!(leaf(&v, KVM_FEATURES_LEAF).eax, FEATURE_MAP_GPA_RANGE);
        assert_eq!(v.len(), 4, "leaf 1 added too");
        assert_eq!(leaf(&v, FEATURE_LEAF).ecx, ECX_HYPERVISOR);
        patch(&mut v, true, 2_500_000);
        assert_eq!(leaf(&v, TIMING_LEAF).eax, 2_500_000);
        assert_eq!(leaf(&v, KVM_SIGNATURE_LEAF).eax, TIMING_LEAF);
    }

    /// 6.12's KVM_GET_SUPPORTED_CPUID leaves bit 31 clear; the guest then
    /// never looks for the KVM signature.
    #[test]
    fn says_a_hypervisor_is_present_and_keeps_leaf_1() {
        let mut v = vec![kvm_cpuid_entry2 {
            function: FEATURE_LEAF,
            eax: 0x806f8,
            ecx: 0x7ed8_320b,
            edx: 0x178b_fbff,
            ..Default::default()
        }];
        patch(&mut v, false, 0);
        let l1 = leaf(&v, FEATURE_LEAF);
        assert_eq!(l1.ecx, 0x7ed8_320b | ECX_HYPERVISOR);
        assert_eq!((l1.eax, l1.edx), (0x806f8, 0x178b_fbff));
        assert_eq!(v.iter().filter(|e| e.function == FEATURE_LEAF).count(), 1);
    }

    #[test]
    fn keeps_other_features_and_clears_bit_without_exit() {
        let mut v = vec![kvm_cpuid_entry2 {
            function: KVM_FEATURES_LEAF,
            eax: 0x1_00ff | FEATURE_MAP_GPA_RANGE,
            ..Default::default()
        }];
        patch(&mut v, false, 0);
        assert_eq!(
            leaf(&v, KVM_FEATURES_LEAF).eax,
            0x1_00ff & !FEATURE_MAP_GPA_RANGE
        );
        patch(&mut v, true, 0);
        assert_eq!(
            leaf(&v, KVM_FEATURES_LEAF).eax,
            0x1_00ff | FEATURE_MAP_GPA_RANGE
        );
    }
}
