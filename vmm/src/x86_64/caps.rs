//! What this host's KVM offers the x86 VMM, asked once at start. The
//! numbers are uapi `include/uapi/linux/kvm.h` (Linux 7.3). Each capability
//! is asked where its answer decides something: the two that choose the VM
//! type on /dev/kvm (no VM exists yet), the rest on the VM fd, because KVM
//! answers them per VM type (a default VM has no private memory, so
//! MEMORY_ATTRIBUTES is 0x8 on /dev/kvm but 0 there; 6.12 says
//! GUEST_MEMFD=0 for it; a SW_PROTECTED VM gets fewer guest_memfd flags).
//! Degrading is decided by these answers alone, never by a kernel version
//! (choose.rs).

use super::super::facts::{self, Probed};
use kvm_ioctls::{Kvm, VmFd};

pub use super::super::facts::cap::{
    EXIT_HYPERCALL, GUEST_MEMFD, GUEST_MEMFD_FLAGS, MEMORY_ATTRIBUTES, USER_MEMORY2, VM_TYPES,
};

/// Asked on /dev/kvm, before the VM is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvmCaps {
    /// KVM_SET_USER_MEMORY_REGION2 (6.8+): the only way to bind a
    /// guest_memfd to a slot.
    pub user_memory2: Probed,
    /// Bit n: VM type n can be created (1 = KVM_X86_SW_PROTECTED_VM).
    pub vm_types: Probed,
}

/// Asked on the VM fd of the VM that runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmCaps {
    /// Bit n: hypercall n may exit to userspace (12 = MAP_GPA_RANGE).
    pub exit_hypercall: Probed,
    /// Attribute bits KVM_SET_MEMORY_ATTRIBUTES takes (bit 3 = PRIVATE).
    pub memory_attributes: Probed,
    pub guest_memfd: Probed,
    /// KVM_CREATE_GUEST_MEMFD flags (1 = MMAP, 2 = INIT_SHARED).
    pub guest_memfd_flags: Probed,
}

impl KvmCaps {
    pub fn probe(kvm: &Kvm) -> Self {
        KvmCaps {
            user_memory2: facts::probe(kvm, USER_MEMORY2),
            vm_types: facts::probe(kvm, VM_TYPES),
        }
    }
}

impl VmCaps {
    pub fn probe(vm: &VmFd) -> Self {
        VmCaps {
            exit_hypercall: facts::probe(vm, EXIT_HYPERCALL),
            memory_attributes: facts::probe(vm, MEMORY_ATTRIBUTES),
            guest_memfd: facts::probe(vm, GUEST_MEMFD),
            guest_memfd_flags: facts::probe(vm, GUEST_MEMFD_FLAGS),
        }
    }
}

/// Everything probed, by number, for the `cap.*` facts.
pub fn all(k: &KvmCaps, v: &VmCaps) -> [Probed; 6] {
    [
        v.exit_hypercall,
        k.user_memory2,
        v.memory_attributes,
        v.guest_memfd,
        k.vm_types,
        v.guest_memfd_flags,
    ]
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::facts::Cap;
    use convtest_proto::wire::AskedOn;

    pub fn on_kvm(cap: Cap, value: i32) -> Probed {
        Probed {
            cap,
            value,
            on: AskedOn::Kvm,
        }
    }

    pub fn on_vm(cap: Cap, value: i32) -> Probed {
        Probed {
            cap,
            value,
            on: AskedOn::Vm,
        }
    }

    /// The answers measured in the nested lane (docs/lanes.md), per L1.
    pub fn kvm_caps(user_memory2: i32, vm_types: i32) -> KvmCaps {
        KvmCaps {
            user_memory2: on_kvm(USER_MEMORY2, user_memory2),
            vm_types: on_kvm(VM_TYPES, vm_types),
        }
    }

    pub fn vm_caps(exit_hc: i32, attrs: i32, gmem: i32, gmem_flags: i32) -> VmCaps {
        VmCaps {
            exit_hypercall: on_vm(EXIT_HYPERCALL, exit_hc),
            memory_attributes: on_vm(MEMORY_ATTRIBUTES, attrs),
            guest_memfd: on_vm(GUEST_MEMFD, gmem),
            guest_memfd_flags: on_vm(GUEST_MEMFD_FLAGS, gmem_flags),
        }
    }

    #[test]
    fn the_capability_facts_name_every_cap() {
        // 6.12.117 as measured.
        let (k, v) = (kvm_caps(1, 0x1), vm_caps(0x1000, 0, 0, 0));
        let mut f = facts::Facts::default();
        f.caps(&all(&k, &v));
        assert_eq!(
            f.line(),
            "# convtest-vmm: cap.KVM_CAP_EXIT_HYPERCALL=201:0x1000@vm \
             cap.KVM_CAP_USER_MEMORY2=231:0x1@kvm cap.KVM_CAP_MEMORY_ATTRIBUTES=233:0x0@vm \
             cap.KVM_CAP_GUEST_MEMFD=234:0x0@vm cap.KVM_CAP_VM_TYPES=235:0x1@kvm \
             cap.KVM_CAP_GUEST_MEMFD_FLAGS=244:0x0@vm\n"
        );
    }
}
