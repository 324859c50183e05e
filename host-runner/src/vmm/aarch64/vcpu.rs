//! vCPU 0 as the arm64 boot protocol wants it: the host's preferred target
//! with PSCI 0.2+ (so SYSTEM_OFF/RESET become KVM_EXIT_SYSTEM_EVENT), reset
//! state (EL1h, DAIF masked, MMU off), PC at the Image, x0 = DTB.

use super::super::VmmError;
use kvm_bindings::{KVM_ARM_VCPU_PSCI_0_2, kvm_vcpu_init};
use kvm_ioctls::{VcpuFd, VmFd};

/// KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE, plus the register's
/// offset in `struct kvm_regs` counted in 32-bit words.
const fn core_reg(words: u64) -> u64 {
    0x6030_0000_0010_0000 | words
}
/// user_pt_regs: x0..x30 (31 × 8 bytes), sp, pc.
pub const X0: u64 = core_reg(0);
pub const PC: u64 = core_reg(64);

fn set(vcpu: &VcpuFd, reg: u64, v: u64) -> Result<(), VmmError> {
    vcpu.set_one_reg(reg, &v.to_le_bytes())
        .map(drop)
        .map_err(VmmError::kvm("KVM_SET_ONE_REG"))
}

pub fn get(vcpu: &VcpuFd, reg: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    vcpu.get_one_reg(reg, &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

pub fn boot_vcpu(vm: &VmFd, entry: u64, dtb: u64) -> Result<VcpuFd, VmmError> {
    let vcpu = vm
        .create_vcpu(0)
        .map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
    let mut kvi = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut kvi)
        .map_err(VmmError::kvm("KVM_ARM_PREFERRED_TARGET"))?;
    kvi.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    vcpu.vcpu_init(&kvi)
        .map_err(VmmError::kvm("KVM_ARM_VCPU_INIT"))?;
    set(&vcpu, PC, entry)?;
    // x1..x3 must be 0 (reserved); reset left them so.
    set(&vcpu, X0, dtb)?;
    Ok(vcpu)
}
