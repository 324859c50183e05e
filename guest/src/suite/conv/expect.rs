//! The suite's oracle: what each conversion ABI must answer and how it must
//! encode a request, keyed by ABI (the converter's name) and, for what an
//! ABI leaves to the VMM, by the VMM the plan names (`vmm=`). The ABIs
//! under test only issue calls; every expectation is written here, from the
//! ABI documents (docs/design.md §4), not derived from the code being tested.

use crate::conv::{Issued, RawCall};
use alloc::vec;
use alloc::vec::Vec;
use convtest_proto::map_gpa::MapGpaArgs;
use convtest_proto::plan::VmmKind;
use convtest_proto::range::MemRange;
use convtest_proto::smccc::{PKVM_MEM_SHARE, PKVM_MEM_UNSHARE};
use convtest_proto::tracker::Target;

pub const MAP_GPA_RANGE: &str = "kvm-map-gpa-range";
pub const PKVM: &str = "pkvm";
pub const TDX: &str = "tdx";
pub const SNP: &str = "snp";

/// TDVMCALL statuses in r10 (GHCI; KVM `tdx_map_gpa` answers these itself).
#[cfg(target_arch = "x86_64")]
const TDVMCALL_INVALID_OPERAND: i64 = 0x8000_0000_0000_0000_u64 as i64;
#[cfg(target_arch = "x86_64")]
const TDVMCALL_ALIGN_ERROR: i64 = 0x8000_0000_0000_0002_u64 as i64;
/// The GHCB MSR after a page state change KVM refuses itself
/// (`GHCB_MSR_PSC_RESP_ERROR`: bit 63 of the error field, response 0x015).
#[cfg(target_arch = "x86_64")]
const PSC_RESP_ERROR: i64 = ((1u64 << 63) | 0x015) as i64;

/// -EINVAL as KVM returns it in rax.
const EINVAL: i64 = -22;
/// SMCCC INVALID_PARAMETER.
pub(super) const INVALID_PARAMETER: i64 = -3;
/// MAP_GPA_RANGE attribute bit 4: private (encrypted).
const ENC: u64 = 1 << 4;

/// What the answer to one call must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Code(i64),
    /// The ABI leaves it to a VMM this plan does not name: reported only.
    Unjudged,
}

/// Why a call is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Puts the granule into the state the next check needs.
    Setup,
    /// A malformed or out-of-state request the ABI must refuse.
    Check,
    /// Brings the granule back to private.
    Cleanup,
}

#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub what: &'static str,
    pub call: RawCall,
    pub want: Want,
    pub role: Role,
    /// Who the answer comes from (`KVM`, `pKVM`, `the convtest VMM`).
    pub from: &'static str,
}

fn map(gpa: u64, npages: u64, attrs: u64) -> RawCall {
    RawCall::MapGpa(MapGpaArgs { gpa, npages, attrs })
}

/// The rejection sequence for `abi`. `page` is a private granule the test
/// owns; `ram_end` the end of the highest RAM range. `None`: this suite has
/// no table for the ABI.
pub fn rejections(
    abi: &str,
    vmm: Option<VmmKind>,
    page: MemRange,
    ram_end: u64,
) -> Option<Vec<Step>> {
    let g = page.start;
    match abi {
        // arch/x86/kvm/x86.c answers the first three before any exit; range
        // checks against guest RAM are the VMM's. All ask for private, so a
        // wrongly accepted one changes nothing.
        MAP_GPA_RANGE => Some(vec![
            Step {
                what: "unaligned gpa",
                call: map(g + 8, 1, ENC),
                want: Want::Code(EINVAL),
                role: Role::Check,
                from: "KVM",
            },
            Step {
                what: "npages 0",
                call: map(g, 0, ENC),
                want: Want::Code(EINVAL),
                role: Role::Check,
                from: "KVM",
            },
            Step {
                what: "gfn + npages overflows",
                call: map(g, u64::MAX, ENC),
                want: Want::Code(EINVAL),
                role: Role::Check,
                from: "KVM",
            },
            Step {
                what: "range outside guest RAM",
                call: map(ram_end, 1, ENC),
                want: match vmm {
                    Some(VmmKind::Convtest) => Want::Code(EINVAL),
                    None => Want::Unjudged,
                },
                role: Role::Check,
                from: "the VMM",
            },
        ]),
        // pKVM answers -3 for an unaligned IPA and for a granule already in
        // the requested state (measured: a second MEM_SHARE → -3). Not
        // probed: an IPA outside RAM, which wedges the vCPU for good.
        PKVM => {
            let share = |x1| RawCall::Smccc {
                fid: PKVM_MEM_SHARE,
                x1,
            };
            let unshare = |x1| RawCall::Smccc {
                fid: PKVM_MEM_UNSHARE,
                x1,
            };
            Some(vec![
                Step {
                    what: "unaligned IPA",
                    call: share(g + 8),
                    want: Want::Code(INVALID_PARAMETER),
                    role: Role::Check,
                    from: "pKVM",
                },
                Step {
                    what: "unshare of a private granule",
                    call: unshare(g),
                    want: Want::Code(INVALID_PARAMETER),
                    role: Role::Check,
                    from: "pKVM",
                },
                Step {
                    what: "share the granule once",
                    call: share(g),
                    want: Want::Code(0),
                    role: Role::Setup,
                    from: "pKVM",
                },
                Step {
                    what: "share of a shared granule",
                    call: share(g),
                    want: Want::Code(INVALID_PARAMETER),
                    role: Role::Check,
                    from: "pKVM",
                },
                Step {
                    what: "unshare it again",
                    call: unshare(g),
                    want: Want::Code(0),
                    role: Role::Cleanup,
                    from: "pKVM",
                },
            ])
        }
        // KVM (`tdx_map_gpa`, arch/x86/kvm/vmx/tdx.c) refuses these before
        // any exit: size 0 (gpa + size <= gpa), and a range that is not
        // 4 KiB-aligned. All ask for private, so a wrongly accepted one
        // changes nothing.
        #[cfg(target_arch = "x86_64")]
        TDX => {
            let tdx = |gpa, size| RawCall::TdxMapGpa {
                gpa,
                size,
                shared: false,
            };
            Some(vec![
                Step {
                    what: "size 0",
                    call: tdx(g, 0),
                    want: Want::Code(TDVMCALL_INVALID_OPERAND),
                    role: Role::Check,
                    from: "KVM",
                },
                Step {
                    what: "unaligned gpa",
                    call: tdx(g + 8, 4096),
                    want: Want::Code(TDVMCALL_ALIGN_ERROR),
                    role: Role::Check,
                    from: "KVM",
                },
                Step {
                    what: "unaligned size",
                    call: tdx(g, 8),
                    want: Want::Code(TDVMCALL_ALIGN_ERROR),
                    role: Role::Check,
                    from: "KVM",
                },
            ])
        }
        // KVM (`snp_begin_psc_msr`, arch/x86/kvm/svm/sev.c) answers an op
        // other than 1 (private) or 2 (shared) with GHCB_MSR_PSC_RESP_ERROR
        // before any exit; the page is left alone.
        #[cfg(target_arch = "x86_64")]
        SNP => {
            let psc = |op| RawCall::SnpPsc { gfn: g / 4096, op };
            Some(vec![
                Step {
                    what: "op 0",
                    call: psc(0),
                    want: Want::Code(PSC_RESP_ERROR),
                    role: Role::Check,
                    from: "KVM",
                },
                Step {
                    what: "op 15",
                    call: psc(15),
                    want: Want::Code(PSC_RESP_ERROR),
                    role: Role::Check,
                    from: "KVM",
                },
            ])
        }
        _ => None,
    }
}

/// The MAP_GPA_RANGE page-size hint a range must carry: the largest page
/// size both of its ends are aligned to (attrs bits 0..3: 0 = 4K, 1 = 2M,
/// 2 = 1G; docs/design.md §4).
fn hint(range: MemRange) -> u64 {
    let both = |a: u64| range.start.is_multiple_of(a) && range.end.is_multiple_of(a);
    if both(1 << 30) {
        2
    } else if both(2 << 20) {
        1
    } else {
        0
    }
}

/// How `abi` must issue a conversion of `range` to `to`.
pub fn issue(abi: &str, range: MemRange, to: Target, granule: u64) -> Option<Issued> {
    match abi {
        MAP_GPA_RANGE => {
            let enc = if to == Target::Private { ENC } else { 0 };
            let call = map(range.start, range.len() / 4096, hint(range) | enc);
            Some(Issued {
                count: 1,
                first: call,
                last: call,
            })
        }
        PKVM => {
            let fid = match to {
                Target::Shared => PKVM_MEM_SHARE,
                Target::Private => PKVM_MEM_UNSHARE,
            };
            Some(Issued {
                count: range.len() / granule,
                first: RawCall::Smccc {
                    fid,
                    x1: range.start,
                },
                last: RawCall::Smccc {
                    fid,
                    x1: range.end - granule,
                },
            })
        }
        // One MapGPA for the whole range, the shared alias when sharing
        // (the accepts after a MapGPA to private are not counted).
        #[cfg(target_arch = "x86_64")]
        TDX => {
            let call = RawCall::TdxMapGpa {
                gpa: range.start,
                size: range.len(),
                shared: to == Target::Shared,
            };
            Some(Issued {
                count: 1,
                first: call,
                last: call,
            })
        }
        // The MSR protocol changes one 4 KiB page per request (op 2 shared,
        // 1 private); the PVALIDATEs around them are not counted.
        #[cfg(target_arch = "x86_64")]
        SNP => {
            let op = if to == Target::Shared { 2 } else { 1 };
            Some(Issued {
                count: range.len() / 4096,
                first: RawCall::SnpPsc {
                    gfn: range.start / 4096,
                    op,
                },
                last: RawCall::SnpPsc {
                    gfn: (range.end - 4096) / 4096,
                    op,
                },
            })
        }
        _ => None,
    }
}

/// Calls a reset must make, at most, to make private exactly what is not:
/// MAP_GPA_RANGE takes any range in one call (one per RAM range); pKVM
/// converts one granule per call, and its ledger knows the shared ones.
pub fn reset_calls(abi: &str, ram: &[MemRange], shared: &[MemRange], granule: u64) -> Option<u64> {
    match abi {
        MAP_GPA_RANGE => Some(ram.len() as u64),
        PKVM => Some(shared.iter().map(|r| r.len() / granule).sum()),
        // One MapGPA per RAM range, then at most one accept per 4 KiB page
        // and one 2 MiB try per 2 MiB (a 2 MiB page split into 4 KiB).
        TDX => Some(
            ram.iter()
                .map(|r| 1 + r.len() / 4096 + r.len() / (2 << 20))
                .sum(),
        ),
        // A page state change per 4 KiB page, then the PVALIDATE probe: at
        // most one per page plus one 2 MiB try per 2 MiB.
        SNP => Some(
            ram.iter()
                .map(|r| 2 * (r.len() / 4096) + r.len() / (2 << 20))
                .sum(),
        ),
        _ => None,
    }
}

/// A call whose answer tells a private granule from a shared one, and what
/// a private granule at `ipa` must answer: pKVM refuses MEM_UNSHARE of a
/// granule that is not shared with INVALID_PARAMETER (and unshares a shared
/// one, so the probe also leaves it private). `None`: the ABI only asks and
/// never tells (MAP_GPA_RANGE converts whatever state the page was in).
pub fn private_probe(abi: &str, ipa: u64) -> Option<(RawCall, i64, &'static str)> {
    state_probe(abi, ipa, Target::Private)
}

/// The same for either state: a granule at `ipa` that is `state` must
/// answer the code. pKVM refuses MEM_SHARE of a granule already shared as
/// it refuses MEM_UNSHARE of a private one (measured: a second MEM_SHARE →
/// -3); a granule in the other state is converted by the probe, which
/// leaves it as the tracker has it.
pub fn state_probe(abi: &str, ipa: u64, state: Target) -> Option<(RawCall, i64, &'static str)> {
    let fid = match state {
        Target::Private => PKVM_MEM_UNSHARE,
        Target::Shared => PKVM_MEM_SHARE,
    };
    match abi {
        PKVM => Some((RawCall::Smccc { fid, x1: ipa }, INVALID_PARAMETER, "pKVM")),
        _ => None,
    }
}

/// How `abi` treats a storm's conversions of granules already in the state
/// asked for, and the code a refusal must carry: MAP_GPA_RANGE converts any
/// state in one call (`hypercalls.rst`: the range's attributes are set, not
/// toggled); pKVM refuses a granule already shared (MEM_SHARE) or already
/// private (MEM_UNSHARE) with INVALID_PARAMETER, one call per granule.
pub fn storm_rule(abi: &str) -> Option<(convtest_proto::storm::Rule, i64)> {
    use convtest_proto::storm::Rule;
    match abi {
        MAP_GPA_RANGE => Some((Rule::AnyState, 0)),
        PKVM => Some((Rule::RefuseSameState, INVALID_PARAMETER)),
        // MapGPA sets the range's attributes whatever they were (KVM hands
        // it to the VMM as MAP_GPA_RANGE); a page accepted already is
        // counted, not refused. SNP has no entry: re-validating a page
        // that never left sets CF=1, which ends the run by design.
        TDX => Some((Rule::AnyState, 0)),
        _ => None,
    }
}

/// What a conversion in one direction must leave in the page, by ABI,
/// when the plan names no VMM promise (`content=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentRule {
    Exactly(convtest_proto::plan::Content),
    /// Anything but the bytes written before: the conversion is destructive.
    NotPreserved,
    /// No claim can be made; the reason says why.
    Unspecified(&'static str),
}

/// TDX converts destructively: to shared, the private page is removed and
/// the shared one is another page (TDX Module spec, TDH.MEM.PAGE.REMOVE);
/// to private, TDG.MEM.PAGE.ACCEPT zeroes it. SEV-SNP: the shared page is
/// another page too; the page made private again holds what its new
/// encrypted page decrypts to, which no one promises.
pub fn content_rule(abi: &str, to: Target) -> Option<ContentRule> {
    use convtest_proto::plan::Content;
    match (abi, to) {
        (TDX, Target::Shared) | (SNP, Target::Shared) => Some(ContentRule::NotPreserved),
        (TDX, Target::Private) => Some(ContentRule::Exactly(Content::Zero)),
        (SNP, Target::Private) => Some(ContentRule::Unspecified(
            "SEV-SNP: a page made private again reads as whatever its new encrypted page decrypts to",
        )),
        _ => None,
    }
}

// ---- the hostile traffic's answers (`hostile.vmm`) ----

/// KVM's answer to a hypercall it does not know (-KVM_ENOSYS).
const KVM_ENOSYS: i64 = -1000;
/// PSCI INVALID_PARAMETERS and ALREADY_ON.
const PSCI_INVALID_PARAMETERS: i64 = -2;
const PSCI_ALREADY_ON: i64 = -4;

/// What a hostile hypercall must be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Left to KVM's feature set (the PV calls KVM implements).
    Unjudged,
    /// A MAP_GPA_RANGE that must be refused with `code`: by KVM before any
    /// exit (unaligned, empty, gfn overflow: arch/x86/kvm/x86.c), or by the
    /// convtest VMM (attribute bits it does not know, a page-size hint
    /// above 1G, a length that overflows, a range not all RAM).
    Refused { code: i64, by_vmm: bool },
    /// A MAP_GPA_RANGE the VMM must carry out (answer 0).
    Applied,
    /// Another fixed answer.
    Code(i64),
}

/// The hypercalls KVM x86 implements (include/uapi/linux/kvm_para.h).
const KVM_HYPERCALLS: [u64; 6] = [1, 5, 9, 10, 11, 12];

pub fn hostile_hypercall(nr: u64, args: [u64; 3], ram: &[MemRange]) -> Answer {
    if nr != convtest_proto::map_gpa::KVM_HC_MAP_GPA_RANGE {
        return if KVM_HYPERCALLS.contains(&nr) {
            Answer::Unjudged
        } else {
            Answer::Code(KVM_ENOSYS)
        };
    }
    let [gpa, npages, _] = args;
    let gfn = gpa >> 12;
    if !gpa.is_multiple_of(4096) || npages == 0 || gfn.wrapping_add(npages) <= gfn {
        return Answer::Refused {
            code: EINVAL,
            by_vmm: false,
        };
    }
    match convtest_proto::hostile::applies(args) {
        Some(r) if ram.iter().any(|m| m.covers(&r)) => Answer::Applied,
        _ => Answer::Refused {
            code: EINVAL,
            by_vmm: true,
        },
    }
}

/// pKVM's MEM_SHARE / MEM_UNSHARE (SMC64) of a granule of `scratch` with
/// x2 and x3 clear: the conversion direction. pKVM converts the granule
/// or refuses it by its state, which the caller's model predicts.
pub fn pkvm_mem_call(fid: u32, args: [u64; 3], scratch: MemRange) -> Option<Target> {
    let to = match fid {
        PKVM_MEM_SHARE => Target::Shared,
        PKVM_MEM_UNSHARE => Target::Private,
        _ => return None,
    };
    (args[1] == 0 && args[2] == 0 && scratch.contains(args[0])).then_some(to)
}

/// The fixed answer to a hostile SMCCC call, if it has one: pKVM refuses
/// MEM_SHARE / MEM_UNSHARE with x2 or x3 set before looking at the IPA
/// (arch/arm64/kvm/hyp/nvhe/pkvm.c, kvm_handle_pvm_hvc64); PSCI CPU_ON of
/// the running CPU answers ALREADY_ON, of a CPU that does not exist
/// INVALID_PARAMETERS (arch/arm64/kvm/psci.c; SMC32 narrows x1 to 32 bits).
pub fn hostile_smccc(fid: u32, args: [u64; 3], self_mpidr: u64) -> Option<(i64, &'static str)> {
    match fid {
        PKVM_MEM_SHARE | PKVM_MEM_UNSHARE if args[1] != 0 || args[2] != 0 => Some((
            INVALID_PARAMETER,
            "pKVM refuses MEM_SHARE/MEM_UNSHARE with x2 or x3 set",
        )),
        0x8400_0003 | 0xc400_0003 => {
            let x1 = if fid & 0x4000_0000 == 0 {
                args[0] & 0xffff_ffff
            } else {
                args[0]
            };
            let target = x1 & 0xff_00ff_ffff;
            Some(if x1 != target {
                (
                    PSCI_INVALID_PARAMETERS,
                    "PSCI CPU_ON of an MPIDR with bits outside the affinity fields",
                )
            } else if target == self_mpidr & 0xff_00ff_ffff {
                (PSCI_ALREADY_ON, "PSCI CPU_ON of the running CPU")
            } else {
                (
                    PSCI_INVALID_PARAMETERS,
                    "PSCI CPU_ON of a CPU that does not exist",
                )
            })
        }
        _ => None,
    }
}
