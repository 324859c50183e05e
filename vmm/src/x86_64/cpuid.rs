//! The CPUID the guest sees: KVM's supported set (needed before long mode)
//! with every leaf the guest's probe reads (guest/src/arch/x86_64/probe.rs,
//! cpu.rs; decoded in proto/src/cpuid.rs) made to tell the truth about this
//! VMM, whatever kernel KVM_GET_SUPPORTED_CPUID came from:
//!
//! | leaf | the guest reads | here |
//! |---|---|---|
//! | 0 | max basic leaf (gates 0x15, 0x16, 0x21) | KVM's |
//! | 1 | ECX[31] hypervisor present (gates 0x4000_0000) | set: 6.12 leaves it clear |
//! | 0x15 | TSC/crystal ratio, preferred TSC source | dropped when it disagrees with the TSC KVM runs the guest at |
//! | 0x16 | nominal MHz, last resort | KVM's |
//! | 0x21 | "IntelTDX    " = a TD guest | zeroed: this VMM never runs a TD |
//! | 0x4000_0000 | "KVMKVMKVM", max hypervisor leaf | set |
//! | 0x4000_0001 | EAX[16] MAP_GPA_RANGE | set only when the VMM serves the exit (KVM never sets it) |
//! | 0x4000_0010 | TSC kHz (VMware/KVM timing leaf) | KVM_GET_TSC_KHZ; TCG and many hosts give no 0x15/0x16 |
//! | 0x8000_0000 | max extended leaf (gates 0x8000_001F) | KVM's |
//! | 0x8000_001F | EAX[1] SEV (gates RDMSR SEV_STATUS), [3] SEV-ES, [4] SEV-SNP | cleared: this VMM never runs an SEV guest, and KVM reports them on SEV-capable hosts |
//!
//! And per vCPU ([`patch_vcpu`]; guest/src/arch/x86_64/apic.rs, trampoline.rs):
//!
//! | leaf | the guest reads | here |
//! |---|---|---|
//! | 1 | EBX[31:24] initial APIC ID: a starting CPU finds its parameters by it | the vCPU id, which is the APIC ID KVM's local APIC has (KVM_GET_SUPPORTED_CPUID has the host CPU's that ran the ioctl) |
//! | 1 | ECX[21] x2APIC: the boot CPU sends INIT/SIPI through the x2APIC ICR only | set when KVM's in-kernel local APIC serves the vCPU (it emulates x2APIC on any host) |
//! | 0xB, 0x1F | EDX x2APIC ID, every subleaf | the vCPU id |

use convtest_proto::cpuid::{SEV_CPUID_BIT, SEV_LEAF, TDX_LEAF};
use kvm_bindings::kvm_cpuid_entry2;

pub const KVM_SIGNATURE_LEAF: u32 = 0x4000_0000;
pub const KVM_FEATURES_LEAF: u32 = 0x4000_0001;
pub const TIMING_LEAF: u32 = 0x4000_0010;
/// Leaf 1, ECX bit 31: "a hypervisor is present".
pub const FEATURE_LEAF: u32 = 1;
pub const ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1, ECX bit 21: x2APIC.
pub const ECX_X2APIC: u32 = 1 << 21;
/// Leaf 1, EBX bits 31:24: the initial APIC ID.
const EBX_APIC_ID_SHIFT: u32 = 24;
/// The extended topology leaves; EDX is the x2APIC ID in every subleaf.
pub const TOPOLOGY_LEAVES: [u32; 2] = [0xb, 0x1f];
/// TSC / core crystal clock: TSC Hz = ECX * EBX / EAX.
pub const TSC_LEAF: u32 = 0x15;
/// KVM_FEATURE_MIGRATION_CONTROL: the guest may use MAP_GPA_RANGE.
pub const FEATURE_MAP_GPA_RANGE: u32 = 1 << 16;
/// 0x8000_001F EAX: SEV, SEV-ES, SEV-SNP.
pub const SEV_GUEST_BITS: u32 = SEV_CPUID_BIT | (1 << 3) | (1 << 4);
/// "KVMKVMKVM\0\0\0" as ebx, ecx, edx.
const SIG: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];
/// How far leaf 0x15 may be off the guest's TSC before it is dropped: the
/// nominal crystal and the kernel's calibrated kHz differ by well under
/// this; a scaled TSC by far more.
const TSC_TOLERANCE_PER_MILLE: u64 = 10;

fn entry(function: u32) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        ..Default::default()
    }
}

/// Leaf 0x15's TSC frequency in kHz, when it states one.
fn leaf_15_khz(e: &kvm_cpuid_entry2) -> Option<u64> {
    (e.eax != 0 && e.ebx != 0 && e.ecx != 0)
        .then(|| u64::from(e.ecx) * u64::from(e.ebx) / u64::from(e.eax) / 1000)
}

/// Whether leaf 0x15 states a TSC frequency other than `tsc_khz`.
fn leaf_15_disagrees(e: &kvm_cpuid_entry2, tsc_khz: u32) -> bool {
    let khz = u64::from(tsc_khz);
    leaf_15_khz(e).is_some_and(|l| l.abs_diff(khz) * 1000 > khz * TSC_TOLERANCE_PER_MILLE)
}

/// Makes sure the KVM leaves exist, sets or clears the MAP_GPA_RANGE bit,
/// says a hypervisor is present, publishes the TSC frequency (0 = unknown:
/// the timing leaf is then left out and leaf 0x15 left alone), and takes
/// away what would make the guest think it is a TD or an SEV guest.
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
            TSC_LEAF if tsc_khz != 0 && leaf_15_disagrees(e, tsc_khz) => {
                // The guest trusts 0x15 first; without it, it takes the
                // timing leaf, which is exact.
                [e.eax, e.ebx, e.ecx, e.edx] = [0; 4];
            }
            TDX_LEAF => [e.eax, e.ebx, e.ecx, e.edx] = [0; 4],
            SEV_LEAF => e.eax &= !SEV_GUEST_BITS,
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

/// The part of the table that differs between vCPUs: vCPU `id`'s APIC ID
/// wherever the guest may read it (KVM numbers its local APICs by vCPU id),
/// and the x2APIC bit when `x2apic` (an in-kernel local APIC serves the
/// vCPU). Without one the bit is left as KVM reported it.
pub fn patch_vcpu(entries: &mut [kvm_cpuid_entry2], id: u8, x2apic: bool) {
    for e in entries.iter_mut() {
        match e.function {
            FEATURE_LEAF => {
                e.ebx = (e.ebx & 0x00ff_ffff) | (u32::from(id) << EBX_APIC_ID_SHIFT);
                if x2apic {
                    e.ecx |= ECX_X2APIC;
                }
            }
            f if TOPOLOGY_LEAVES.contains(&f) => e.edx = u32::from(id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::cpuid::{HYPERVISOR_LEAF, SevStatus, X86Cpuid, X86Finding, signature};

    fn leaf(v: &[kvm_cpuid_entry2], f: u32) -> kvm_cpuid_entry2 {
        *v.iter().find(|e| e.function == f).unwrap()
    }

    fn regs(function: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        }
    }

    /// What the guest's probe (guest/src/arch/x86_64/probe.rs) would make
    /// of this table on a vCPU that runs it, leaf by leaf, gates included.
    fn guest_probe(v: &[kvm_cpuid_entry2]) -> X86Cpuid {
        let get = |f: u32| {
            v.iter()
                .find(|e| e.function == f)
                .copied()
                .unwrap_or(entry(f))
        };
        let max_basic_leaf = get(0).eax;
        let hypervisor_bit = get(1).ecx & ECX_HYPERVISOR != 0;
        let hv = get(HYPERVISOR_LEAF);
        let max_ext_leaf = get(0x8000_0000).eax;
        let t = get(TDX_LEAF);
        X86Cpuid {
            hypervisor_bit,
            hv_max_leaf: hv.eax,
            hv_signature: signature(hv.ebx, hv.ecx, hv.edx),
            hv_features: (hypervisor_bit && hv.eax > HYPERVISOR_LEAF)
                .then(|| get(KVM_FEATURES_LEAF).eax),
            max_basic_leaf,
            tdx_signature: (max_basic_leaf >= TDX_LEAF).then(|| signature(t.ebx, t.edx, t.ecx)),
            max_ext_leaf,
            sev_leaf_eax: (max_ext_leaf >= SEV_LEAF).then(|| get(SEV_LEAF).eax),
            // This VMM implements no SEV_STATUS: the read would #GP.
            sev_status: SevStatus::NotAsked,
        }
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

    /// An SEV-SNP-capable host: KVM reports SME, SEV, SEV-ES, SME_COHERENT
    /// and SNP in 0x8000_001F EAX and the C-bit in EBX.
    #[test]
    fn sev_bits_are_cleared_and_the_rest_of_the_leaf_kept() {
        let mut v = vec![regs(SEV_LEAF, 0x0001_041b, 0x0000_0033, 0x1fd, 0x64)];
        patch(&mut v, true, 0);
        let l = leaf(&v, SEV_LEAF);
        assert_eq!(l.eax, 0x0001_041b & !0x1a, "bits 1, 3, 4 only");
        assert_eq!((l.ebx, l.ecx, l.edx), (0x33, 0x1fd, 0x64));
    }

    #[test]
    fn leaf_0x21_never_says_intel_tdx() {
        let [b, d, c] = [*b"Inte", *b"lTDX", *b"    "].map(u32::from_le_bytes);
        let mut v = vec![regs(TDX_LEAF, 0, b, c, d)];
        patch(&mut v, true, 0);
        let l = leaf(&v, TDX_LEAF);
        assert_eq!([l.eax, l.ebx, l.ecx, l.edx], [0; 4]);
    }

    #[test]
    fn leaf_0x15_stays_when_it_agrees_with_the_guest_tsc_and_goes_when_not() {
        // 25 MHz crystal * 168/2 = 2.1 GHz; the kernel calibrated 2099.998.
        let crystal = regs(TSC_LEAF, 2, 168, 25_000_000, 0);
        let mut v = vec![crystal];
        patch(&mut v, true, 2_099_998);
        assert_eq!(leaf(&v, TSC_LEAF).ebx, 168, "agrees: kept");
        let mut v = vec![crystal];
        patch(&mut v, true, 1_000_000);
        assert_eq!(leaf(&v, TSC_LEAF).ebx, 0, "a scaled TSC: dropped");
        let mut v = vec![crystal];
        patch(&mut v, true, 0);
        assert_eq!(leaf(&v, TSC_LEAF).ebx, 168, "unknown TSC: left alone");
        let partial = regs(TSC_LEAF, 2, 168, 0, 0);
        let mut v = vec![partial];
        patch(&mut v, true, 1_000_000);
        assert_eq!(
            leaf(&v, TSC_LEAF).ebx,
            168,
            "no frequency stated: nothing to check"
        );
    }

    /// The whole table as a guest on an SEV/TDX-looking host would read it
    /// after the patch: KVM with MAP_GPA_RANGE (or without, when the exit is
    /// off), never SEV, never TDX, TSC from the timing leaf.
    #[test]
    fn the_guest_finds_kvm_and_nothing_confidential() {
        let [b, d, c] = [*b"Inte", *b"lTDX", *b"    "].map(u32::from_le_bytes);
        let host = vec![
            regs(0, 0x21, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
            regs(1, 0x00a0_0f11, 0, 0x7ed8_320b, 0x178b_fbff),
            regs(TDX_LEAF, 0, b, c, d),
            regs(0x8000_0000, 0x8000_0021, 0, 0, 0),
            regs(SEV_LEAF, 0x0001_001b, 0x33, 0, 0),
            regs(KVM_SIGNATURE_LEAF, KVM_FEATURES_LEAF, 0, 0, 0),
            regs(KVM_FEATURES_LEAF, 0x0100_7afb, 0, 0, 0),
        ];
        for map in [true, false] {
            let mut v = host.clone();
            patch(&mut v, map, 2_000_000);
            let found = guest_probe(&v);
            assert!(!found.sev_cpuid(), "SEV_STATUS is never read");
            let want = if map {
                X86Finding::KvmMapGpaRange
            } else {
                X86Finding::KvmWithoutMapGpaRange {
                    features: 0x0100_7afb & !FEATURE_MAP_GPA_RANGE,
                }
            };
            assert_eq!(found.finding(), want);
            assert_eq!(found.hv_max_leaf, TIMING_LEAF);
            assert_eq!(leaf(&v, TIMING_LEAF).eax, 2_000_000);
        }
    }

    /// What the guest's trampoline and apic.rs read on each of four vCPUs,
    /// from a table whose leaf 1 and 0xB came from host CPU 6.
    #[test]
    fn every_vcpu_reads_its_own_apic_id_and_x2apic() {
        let host = vec![
            regs(1, 0x00a0_0f11, 0x0608_0800, 0x7ed8_320b, 0x178b_fbff),
            kvm_cpuid_entry2 {
                index: 0,
                ..regs(0xb, 1, 2, 0x100, 6)
            },
            kvm_cpuid_entry2 {
                index: 1,
                ..regs(0xb, 4, 8, 0x201, 6)
            },
            regs(0x1f, 1, 2, 0x100, 6),
            regs(0x4, 0x1c00_4121, 0x01c0_003f, 0x3f, 0),
        ];
        for x2apic in [true, false] {
            for id in 0..4u8 {
                let mut v = host.clone();
                patch(&mut v, true, 0);
                patch_vcpu(&mut v, id, x2apic);
                let l1 = leaf(&v, FEATURE_LEAF);
                assert_eq!(l1.ebx >> 24, u32::from(id), "the trampoline's match");
                assert_eq!(l1.ebx & 0x00ff_ffff, 0x0008_0800, "the rest of EBX kept");
                assert_eq!(l1.ecx & ECX_X2APIC != 0, x2apic, "ecx {:#x}", l1.ecx);
                assert_eq!(l1.ecx & !ECX_X2APIC, 0x7ed8_320b | ECX_HYPERVISOR);
                for e in v.iter().filter(|e| TOPOLOGY_LEAVES.contains(&e.function)) {
                    assert_eq!(e.edx, u32::from(id), "leaf {:#x}.{}", e.function, e.index);
                    assert_ne!(e.eax, 0, "the topology itself kept");
                }
                assert_eq!(leaf(&v, 4), host[4], "other leaves untouched");
            }
        }
    }
}
