//! What the VMM makes of the host's capabilities (caps.rs): the strongest
//! memory mode the host can give, how slots are registered, whether the
//! guest is offered MAP_GPA_RANGE, and the content promise. Decided by the
//! capabilities alone, never by a kernel version, and every step down is
//! named (the `memory_why=` / `map_gpa_range_why=` facts).
//!
//! Strongest first:
//! 1. `sw-protected`: a KVM_X86_SW_PROTECTED_VM with guest_memfd private
//!    memory — needs USER_MEMORY2 and the VM type on /dev/kvm, then
//!    GUEST_MEMFD and MEMORY_ATTRIBUTES(PRIVATE) on that VM;
//! 2. `emulated-private` on an mmap'd guest_memfd — USER_MEMORY2 and, on
//!    the default VM, GUEST_MEMFD with flags MMAP|INIT_SHARED (6.18+);
//! 3. `emulated-private` on anonymous memory — anything with KVM; without
//!    USER_MEMORY2 (before 6.8) through KVM_SET_USER_MEMORY_REGION.
//!
//! MAP_GPA_RANGE exits (KVM_CAP_EXIT_HYPERCALL bit 12, since 5.x) are
//! independent of all of that: conversions are served on every mode.

use super::super::facts::Probed;
use super::caps::{KvmCaps, VM_TYPES, VmCaps};
use super::platform::SlotApi;
use super::platform::{GMEM_FLAG_INIT_SHARED, GMEM_FLAG_MMAP};
use crate::config::MemoryKind;
use crate::error::VmmError;
use convtest_proto::map_gpa::KVM_HC_MAP_GPA_RANGE;
use convtest_proto::plan::Content;
use std::fmt;

/// KVM_X86_SW_PROTECTED_VM's bit in KVM_CAP_VM_TYPES.
pub const VM_TYPE_SW_PROTECTED: u64 = kvm_bindings::KVM_X86_SW_PROTECTED_VM as u64;
const ATTR_PRIVATE: i32 = kvm_bindings::KVM_MEMORY_ATTRIBUTE_PRIVATE as i32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmKind {
    Default,
    SwProtected,
}

/// The memory mode, before the image says where the boot slot ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    SwProtected,
    /// emulated-private on an mmap'd guest_memfd.
    GmemMmap,
    /// emulated-private on anonymous memory.
    Anonymous,
}

/// A capability that does not say what a mode needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missing {
    pub probed: Probed,
    /// What the value lacks, in words.
    pub needs: &'static str,
}

impl fmt::Display for Missing {
    /// `KVM_CAP_VM_TYPES=0x1@kvm needs bit 1 (KVM_X86_SW_PROTECTED_VM)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.probed;
        write!(
            f,
            "{}={}@{} needs {}",
            p.cap.name,
            super::super::facts::SignedHex(p.value),
            p.on.as_str(),
            self.needs
        )
    }
}

/// `p` unless it is positive with every bit of `bits`.
fn need(p: Probed, bits: i32, needs: &'static str) -> Option<Missing> {
    (!p.has(bits)).then_some(Missing { probed: p, needs })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub kind: VmKind,
    pub memory: Memory,
    pub slots: SlotApi,
    /// Why no stronger mode was taken, strongest first ("asked" when the
    /// user chose emulated-private).
    pub why: Vec<String>,
}

/// What sw-protected needs on /dev/kvm.
fn sw_on_kvm(k: &KvmCaps) -> Vec<Missing> {
    [
        need(
            k.user_memory2,
            0,
            "1 (KVM_SET_USER_MEMORY_REGION2 binds guest_memfd)",
        ),
        need(
            k.vm_types,
            1 << VM_TYPE_SW_PROTECTED,
            "bit 1 (KVM_X86_SW_PROTECTED_VM)",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What sw-protected needs on the SW_PROTECTED VM itself.
fn sw_on_vm(v: &VmCaps) -> Vec<Missing> {
    [
        need(v.guest_memfd, 0, "1 (KVM_CREATE_GUEST_MEMFD)"),
        need(
            v.memory_attributes,
            ATTR_PRIVATE,
            "bit 3 (KVM_MEMORY_ATTRIBUTE_PRIVATE)",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What an mmap'd guest_memfd backing needs (default VM).
fn gmem_mmap(k: &KvmCaps, v: &VmCaps) -> Vec<Missing> {
    [
        need(
            k.user_memory2,
            0,
            "1 (KVM_SET_USER_MEMORY_REGION2 binds guest_memfd)",
        ),
        need(v.guest_memfd, 0, "1 (KVM_CREATE_GUEST_MEMFD)"),
        need(
            v.guest_memfd_flags,
            (GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED) as i32,
            "bits 0-1 (GUEST_MEMFD_FLAG_MMAP|GUEST_MEMFD_FLAG_INIT_SHARED)",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn refuse(missing: &[Missing]) -> VmmError {
    let list: Vec<String> = missing.iter().map(Missing::to_string).collect();
    let hint = if missing.iter().any(|m| m.probed.cap == VM_TYPES) {
        "; the VM type needs kvm.ko built with CONFIG_KVM_SW_PROTECTED_VM (convtest run \
         --backend nested --l1-swprot does that)"
    } else {
        ""
    };
    VmmError::Config(format!(
        "--vmm-memory sw-protected: this host's KVM cannot give it: {}{hint}",
        list.join("; ")
    ))
}

/// Adds `m` to `why` unless a reason about the same capability is there.
fn note(why: &mut Vec<String>, seen: &mut Vec<u32>, m: &[Missing]) {
    for x in m {
        if !seen.contains(&x.probed.cap.number) {
            seen.push(x.probed.cap.number);
            why.push(x.to_string());
        }
    }
}

/// Chooses the VM and its memory. `create` makes a VM of a kind and asks
/// it its capabilities; it runs once, or twice when `auto` picked
/// sw-protected from /dev/kvm and the SW_PROTECTED VM then lacks a
/// capability (the second VM is a default one). An explicit
/// `--vmm-memory sw-protected` the host cannot give is a config error
/// naming every missing capability.
pub fn decide<V>(
    k: &KvmCaps,
    asked: MemoryKind,
    mut create: impl FnMut(VmKind) -> Result<(V, VmCaps), VmmError>,
) -> Result<(V, VmCaps, Choice), VmmError> {
    let mut why = Vec::new();
    let mut seen = Vec::new();
    let on_kvm = sw_on_kvm(k);
    let mut kind = match asked {
        MemoryKind::EmulatedPrivate => {
            why.push("asked --vmm-memory emulated-private".to_string());
            VmKind::Default
        }
        MemoryKind::SwProtected if !on_kvm.is_empty() => return Err(refuse(&on_kvm)),
        MemoryKind::SwProtected => VmKind::SwProtected,
        MemoryKind::Auto if on_kvm.is_empty() => VmKind::SwProtected,
        MemoryKind::Auto => {
            note(&mut why, &mut seen, &on_kvm);
            VmKind::Default
        }
    };
    loop {
        let (vm, v) = create(kind)?;
        let (memory, slots) = match kind {
            VmKind::SwProtected => {
                let on_vm = sw_on_vm(&v);
                if !on_vm.is_empty() {
                    if asked == MemoryKind::SwProtected {
                        return Err(refuse(&on_vm));
                    }
                    note(&mut why, &mut seen, &on_vm);
                    kind = VmKind::Default;
                    // The SW_PROTECTED VM closes here, before the next.
                    drop(vm);
                    continue;
                }
                (Memory::SwProtected, SlotApi::Region2)
            }
            VmKind::Default => {
                let lacks = gmem_mmap(k, &v);
                note(&mut why, &mut seen, &lacks);
                match (lacks.is_empty(), k.user_memory2.has(0)) {
                    (true, _) => (Memory::GmemMmap, SlotApi::Region2),
                    (false, true) => (Memory::Anonymous, SlotApi::Region2),
                    (false, false) => (Memory::Anonymous, SlotApi::Region),
                }
            }
        };
        let choice = Choice {
            kind,
            memory,
            slots,
            why,
        };
        return Ok((vm, v, choice));
    }
}

/// Whether the VMM can serve MAP_GPA_RANGE; Err says which bit is missing
/// (the guest then skips conv.* because CPUID 0x40000001 lacks bit 16).
pub fn map_gpa_range(v: &VmCaps) -> Result<(), Missing> {
    need(
        v.exit_hypercall,
        1 << KVM_HC_MAP_GPA_RANGE,
        "bit 12 (KVM_HC_MAP_GPA_RANGE exits)",
    )
    .map_or(Ok(()), Err)
}

/// The content promise the memory can keep.
pub fn content(memory: Memory, asked: Option<Content>) -> Result<Content, VmmError> {
    match (memory, asked) {
        (Memory::SwProtected, Some(Content::Preserve)) => Err(VmmError::Config(
            "--content preserve: in sw-protected memory private and shared are different pages \
             and private ones have no host mapping, so the VMM cannot carry bytes across a \
             conversion; use --content zero or --vmm-memory emulated-private"
                .into(),
        )),
        (Memory::SwProtected, _) => Ok(Content::Zero),
        (_, c) => Ok(c.unwrap_or(Content::Preserve)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::caps::tests::{kvm_caps, vm_caps};
    use super::*;

    /// One host: its /dev/kvm answers and what each VM kind would answer.
    struct Host {
        kvm: KvmCaps,
        default_vm: VmCaps,
        sw_vm: VmCaps,
    }

    const MAP: i32 = 0x1000;
    /// Measured (docs/lanes.md and the runs in this change's report).
    fn stock_7_3() -> Host {
        Host {
            kvm: kvm_caps(1, 0x1),
            default_vm: vm_caps(MAP, 0, 1, 0x3),
            sw_vm: vm_caps(MAP, 0, 0, 0),
        }
    }
    fn swprot_7_3() -> Host {
        Host {
            kvm: kvm_caps(1, 0x3),
            default_vm: vm_caps(MAP, 0, 1, 0x3),
            sw_vm: vm_caps(MAP, 0x8, 1, 0x1),
        }
    }
    fn debian_6_12() -> Host {
        Host {
            kvm: kvm_caps(1, 0x1),
            default_vm: vm_caps(MAP, 0, 0, 0),
            sw_vm: vm_caps(MAP, 0, 0, 0),
        }
    }
    /// 6.1: none of USER_MEMORY2, VM_TYPES, guest_memfd; EXIT_HYPERCALL yes.
    fn debian_6_1() -> Host {
        Host {
            kvm: kvm_caps(0, 0),
            default_vm: vm_caps(MAP, 0, 0, 0),
            sw_vm: vm_caps(MAP, 0, 0, 0),
        }
    }

    /// The choice and the VM kinds created, in order.
    fn run(h: &Host, asked: MemoryKind) -> Result<(Choice, Vec<VmKind>), String> {
        let mut made = Vec::new();
        decide(&h.kvm, asked, |kind| {
            made.push(kind);
            Ok((
                (),
                match kind {
                    VmKind::Default => h.default_vm,
                    VmKind::SwProtected => h.sw_vm,
                },
            ))
        })
        .map(|((), _, c)| (c, made))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn auto_takes_the_strongest_mode_each_measured_host_gives() {
        use Memory::*;
        use SlotApi::*;
        use VmKind as K;
        for (name, host, memory, slots, kinds) in [
            ("7.3.4", stock_7_3(), GmemMmap, Region2, vec![K::Default]),
            (
                "7.3.4 swprot",
                swprot_7_3(),
                SwProtected,
                Region2,
                vec![K::SwProtected],
            ),
            (
                "6.12.117",
                debian_6_12(),
                Anonymous,
                Region2,
                vec![K::Default],
            ),
            ("6.1", debian_6_1(), Anonymous, Region, vec![K::Default]),
        ] {
            let (c, made) = run(&host, MemoryKind::Auto).unwrap();
            assert_eq!((c.memory, c.slots, made), (memory, slots, kinds), "{name}");
            assert_eq!(map_gpa_range(&host.default_vm), Ok(()), "{name}");
        }
    }

    #[test]
    fn every_step_down_names_the_capability() {
        let (c, _) = run(&stock_7_3(), MemoryKind::Auto).unwrap();
        assert_eq!(
            c.why,
            ["KVM_CAP_VM_TYPES=0x1@kvm needs bit 1 (KVM_X86_SW_PROTECTED_VM)"]
        );
        let (c, _) = run(&debian_6_1(), MemoryKind::Auto).unwrap();
        let caps: Vec<&str> = c.why.iter().map(|w| w.split('=').next().unwrap()).collect();
        assert_eq!(
            caps,
            [
                "KVM_CAP_USER_MEMORY2",
                "KVM_CAP_VM_TYPES",
                "KVM_CAP_GUEST_MEMFD",
                "KVM_CAP_GUEST_MEMFD_FLAGS"
            ],
            "each once, strongest mode's first: {:?}",
            c.why
        );
        let (c, _) = run(&swprot_7_3(), MemoryKind::Auto).unwrap();
        assert!(c.why.is_empty(), "{:?}", c.why);
    }

    #[test]
    fn asking_for_emulated_private_gets_the_best_backing_and_says_it_was_asked() {
        let (c, made) = run(&swprot_7_3(), MemoryKind::EmulatedPrivate).unwrap();
        assert_eq!((c.memory, made), (Memory::GmemMmap, vec![VmKind::Default]));
        assert_eq!(c.why, ["asked --vmm-memory emulated-private"]);
        let (c, _) = run(&debian_6_1(), MemoryKind::EmulatedPrivate).unwrap();
        assert_eq!((c.memory, c.slots), (Memory::Anonymous, SlotApi::Region));
    }

    #[test]
    fn sw_protected_the_host_cannot_give_is_a_config_error_naming_the_capability() {
        let e = run(&stock_7_3(), MemoryKind::SwProtected).unwrap_err();
        assert!(
            e.contains("KVM_CAP_VM_TYPES=0x1@kvm needs bit 1 (KVM_X86_SW_PROTECTED_VM)")
                && e.contains("--l1-swprot"),
            "{e}"
        );
        let e = run(&debian_6_1(), MemoryKind::SwProtected).unwrap_err();
        assert!(
            e.contains("KVM_CAP_USER_MEMORY2=0x0@kvm") && e.contains("KVM_CAP_VM_TYPES=0x0@kvm"),
            "{e}"
        );
        // The type exists but the VM of that type lacks guest_memfd: no VM
        // of the other kind is made behind the user's back.
        let mut h = swprot_7_3();
        h.sw_vm = vm_caps(MAP, 0x8, 0, 0);
        let e = run(&h, MemoryKind::SwProtected).unwrap_err();
        assert!(
            e.contains("KVM_CAP_GUEST_MEMFD=0x0@vm") && !e.contains("--l1-swprot"),
            "{e}"
        );
    }

    #[test]
    fn auto_falls_back_to_a_default_vm_when_the_sw_protected_one_lacks_a_capability() {
        let mut h = swprot_7_3();
        h.sw_vm = vm_caps(MAP, 0, 1, 0x1);
        let (c, made) = run(&h, MemoryKind::Auto).unwrap();
        assert_eq!(made, [VmKind::SwProtected, VmKind::Default]);
        assert_eq!((c.kind, c.memory), (VmKind::Default, Memory::GmemMmap));
        assert_eq!(
            c.why,
            ["KVM_CAP_MEMORY_ATTRIBUTES=0x0@vm needs bit 3 (KVM_MEMORY_ATTRIBUTE_PRIVATE)"]
        );
    }

    #[test]
    fn a_failed_vm_creation_is_the_vmm_error() {
        let h = debian_6_12();
        let r = decide(&h.kvm, MemoryKind::Auto, |_| {
            Err::<((), VmCaps), _>(VmmError::Config("no".into()))
        });
        assert!(r.is_err());
    }

    #[test]
    fn map_gpa_range_needs_bit_12() {
        for (value, ok) in [
            (0x1000, true),
            (0x1001, true),
            (0, false),
            (0x1, false),
            (-25, false),
        ] {
            let v = vm_caps(value, 0, 0, 0);
            assert_eq!(map_gpa_range(&v).is_ok(), ok, "{value:#x}");
        }
        let e = map_gpa_range(&vm_caps(0, 0, 0, 0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "KVM_CAP_EXIT_HYPERCALL=0x0@vm needs bit 12 (KVM_HC_MAP_GPA_RANGE exits)"
        );
    }

    #[test]
    fn content_follows_the_memory() {
        assert_eq!(content(Memory::SwProtected, None).unwrap(), Content::Zero);
        assert!(content(Memory::SwProtected, Some(Content::Preserve)).is_err());
        for m in [Memory::GmemMmap, Memory::Anonymous] {
            assert_eq!(content(m, None).unwrap(), Content::Preserve);
            assert_eq!(content(m, Some(Content::Zero)).unwrap(), Content::Zero);
        }
    }
}
