//! The VM's vCPUs as the arm64 boot protocol wants them: the host's
//! preferred target with PSCI 0.2+ (so SYSTEM_OFF/RESET become
//! KVM_EXIT_SYSTEM_EVENT and KVM answers CPU_ON itself), reset state (EL1h,
//! DAIF masked, MMU off). vCPU 0 starts at the Image with x0 = DTB; every
//! other vCPU is initialised with KVM_ARM_VCPU_POWER_OFF and stays off until
//! the guest's PSCI CPU_ON names its MPIDR: KVM (arch/arm64/kvm/psci.c
//! kvm_psci_vcpu_on) then sets its PC and x0 from the call and wakes it, all
//! in the kernel, without a VMM exit.
//!
//! All vCPUs are created before any of them runs. pKVM needs it: the first
//! KVM_RUN of any vCPU creates the VM at EL2 sized for `kvm->created_vcpus`
//! at that moment (arch/arm64/kvm/pkvm.c `__pkvm_create_hyp_vm`,
//! hyp/nvhe/pkvm.c `__pkvm_init_vm`), and a vCPU whose index is not below
//! that count is refused when its own first KVM_RUN registers it at EL2
//! (hyp/nvhe/pkvm.c `register_hyp_vcpu`: -EINVAL). Plain KVM wants it too:
//! the first run builds the MPIDR → vCPU table CPU_ON looks targets up in
//! (arm.c `kvm_init_mpidr_data`), once. pKVM lets protected vCPUs have
//! KVM_ARM_VCPU_PSCI_0_2 (hyp/nvhe/pkvm.c `pkvm_init_features_from_host`)
//! and punts PSCI HVCs to the host's KVM (`kvm_handle_pvm_hvc64`: "Punt
//! everything else back to the host"), whose register state it copies into
//! the protected vCPU on every entry (hyp-main.c `flush_hyp_vcpu`), so
//! CPU_ON works there as in a normal VM.
//!
//! A guest reset re-runs KVM_ARM_VCPU_INIT with the same features on every
//! vCPU (POWER_OFF again for the secondaries: the flag is not part of the
//! feature set KVM compares, arm.c `kvm_arch_vcpu_ioctl_vcpu_init`): KVM
//! then calls kvm_reset_vcpu (`kvm_vcpu_set_target`), which puts every
//! register back to its reset value, and vCPU 0's boot registers are set
//! again.

use crate::error::VmmError;
use kvm_bindings::{KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, kvm_vcpu_init};
use kvm_ioctls::{VcpuFd, VmFd};

/// KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE, plus the register's
/// offset in `struct kvm_regs` counted in 32-bit words.
const fn core_reg(words: u64) -> u64 {
    0x6030_0000_0010_0000 | words
}
/// user_pt_regs: x0..x30 (31 × 8 bytes), sp, pc.
pub const X0: u64 = core_reg(0);
pub const PC: u64 = core_reg(64);

/// KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG with the
/// register's op0, op1, CRn, CRm, op2 (uapi asm/kvm.h ARM64_SYS_REG).
const fn sys_reg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    0x6030_0000_0013_0000 | op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2
}
/// MPIDR_EL1 (S3_0_C0_C0_5).
pub const MPIDR_EL1: u64 = sys_reg(3, 0, 0, 0, 5);

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

/// One vCPU, the KVM_ARM_VCPU_INIT it was initialised with (a reset repeats
/// it: KVM refuses a second init with other features) and its MPIDR_EL1 as
/// KVM reset it (what the DTB's cpu node and the guest's CPU_ON name).
pub struct Vcpu {
    pub fd: VcpuFd,
    pub id: u64,
    pub mpidr: u64,
    init: kvm_vcpu_init,
}

/// KVM's own numbering (sys_regs.h `kvm_calculate_mpidr`: Aff0 = id % 16,
/// Aff1 = id / 16 % 256, Aff2 = id / 4096 % 256, bit 31 RES1). Only for the
/// tests and the error message: the VMM reads the register back.
pub const fn kvm_mpidr(id: u64) -> u64 {
    (id & 0xf) | ((id >> 4) & 0xff) << 8 | ((id >> 12) & 0xff) << 16 | 1 << 31
}

/// Creates vCPUs 0..n (all before any runs, see the module comment),
/// initialises them (1..n powered off) and reads back their MPIDRs.
pub fn create_all(vm: &VmFd, n: u32) -> Result<Vec<Vcpu>, VmmError> {
    let mut init = kvm_vcpu_init::default();
    vm.get_preferred_target(&mut init)
        .map_err(VmmError::kvm("KVM_ARM_PREFERRED_TARGET"))?;
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let mut vcpus = Vec::with_capacity(n as usize);
    for id in 0..u64::from(n) {
        let fd = vm
            .create_vcpu(id)
            .map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
        vcpus.push(Vcpu {
            fd,
            id,
            mpidr: 0,
            init,
        });
    }
    for v in &mut vcpus {
        v.init()?;
        v.mpidr = get(&v.fd, MPIDR_EL1).ok_or_else(|| {
            VmmError::Config(format!(
                "KVM_GET_ONE_REG(MPIDR_EL1) of vCPU {} failed after KVM_ARM_VCPU_INIT \
                 (KVM would number it {:#x}): the DTB's cpu node cannot name it",
                v.id,
                kvm_mpidr(v.id)
            ))
        })?;
    }
    Ok(vcpus)
}

/// Every vCPU back to its reset state (KVM_ARM_VCPU_INIT again: kvm_reset_vcpu),
/// the secondaries off, vCPU 0 at the boot registers.
pub fn reset_all(vcpus: &[Vcpu], regs: BootRegs) -> Result<(), VmmError> {
    for v in vcpus {
        v.init()?;
    }
    vcpus
        .first()
        .ok_or_else(|| VmmError::Config("no vCPU".into()))?
        .set_boot(regs)
}

impl Vcpu {
    /// KVM_ARM_VCPU_INIT (first time: set up; again: kvm_reset_vcpu), with
    /// KVM_ARM_VCPU_POWER_OFF for every vCPU but 0.
    fn init(&self) -> Result<(), VmmError> {
        let mut init = self.init;
        if self.id != 0 {
            init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        self.fd
            .vcpu_init(&init)
            .map_err(VmmError::kvm("KVM_ARM_VCPU_INIT"))
    }

    /// The boot protocol's registers (vCPU 0 only; the others get theirs
    /// from CPU_ON).
    pub fn set_boot(&self, regs: BootRegs) -> Result<(), VmmError> {
        set(&self.fd, PC, regs.entry)?;
        // x1..x3 must be 0 (reserved); reset left them so.
        set(&self.fd, X0, regs.dtb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_numbers_sixteen_vcpus_per_cluster() {
        assert_eq!(kvm_mpidr(0), 0x8000_0000);
        assert_eq!(kvm_mpidr(3), 0x8000_0003);
        assert_eq!(kvm_mpidr(17), 0x8000_0101);
        assert_eq!(MPIDR_EL1, 0x6030_0000_0013_c005);
    }
}
