//! vCPU 0 as the arm64 boot protocol wants it: the host's preferred target
//! with PSCI 0.2+ (so SYSTEM_OFF/RESET become KVM_EXIT_SYSTEM_EVENT), reset
//! state (EL1h, DAIF masked, MMU off), PC at the Image, x0 = DTB.
//!
//! A guest reset re-runs KVM_ARM_VCPU_INIT with the same features on the
//! same vCPU: KVM then calls kvm_reset_vcpu (arch/arm64/kvm/arm.c
//! kvm_vcpu_set_target), which puts every register back to its reset value,
//! and the boot registers are set again.

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

/// Where the boot protocol starts the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRegs {
    pub entry: u64,
    pub dtb: u64,
}

/// vCPU 0 and the KVM_ARM_VCPU_INIT it was initialised with (a reset
/// repeats it: KVM refuses a second init with other features).
pub struct Vcpu {
    pub fd: VcpuFd,
    init: kvm_vcpu_init,
}

pub fn boot_vcpu(vm: &VmFd, regs: BootRegs) -> Result<Vcpu, VmmError> {
    let fd = vm
        .create_vcpu(0)
        .map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
    let mut init = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut init)
        .map_err(VmmError::kvm("KVM_ARM_PREFERRED_TARGET"))?;
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let v = Vcpu { fd, init };
    v.reset(regs)?;
    Ok(v)
}

impl Vcpu {
    /// KVM_ARM_VCPU_INIT (first time: set up; again: kvm_reset_vcpu) and
    /// the boot registers.
    pub fn reset(&self, regs: BootRegs) -> Result<(), VmmError> {
        self.fd
            .vcpu_init(&self.init)
            .map_err(VmmError::kvm("KVM_ARM_VCPU_INIT"))?;
        set(&self.fd, PC, regs.entry)?;
        // x1..x3 must be 0 (reserved); reset left them so.
        set(&self.fd, X0, regs.dtb)
    }
}
