//! The vCPU state a boot starts from: captured from the fresh vCPU 0 at the
//! first boot and put back at every planned reset (reset.rs says what is
//! and is not put back), and the wait for INIT/SIPI a secondary goes back to.

use crate::error::VmmError;
use kvm_bindings::{
    KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED, kvm_fpu, kvm_lapic_state, kvm_mp_state,
    kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::VcpuFd;

/// The vCPU state the first boot entered with.
pub struct BootCpu {
    regs: kvm_regs,
    sregs: kvm_sregs,
    fpu: kvm_fpu,
    xsave: Option<kvm_xsave>,
    xcrs: Option<kvm_xcrs>,
    events: Option<kvm_vcpu_events>,
    /// The fresh local APIC, when KVM emulates one (in-kernel irqchip).
    lapic: Option<kvm_lapic_state>,
}

impl BootCpu {
    /// Reads a fresh vCPU's state (the parts KVM may refuse, e.g. XSAVE on
    /// a CPU without it, are left out) with the PVH entry registers.
    pub fn capture(vcpu: &VcpuFd, entry: u64) -> Result<Self, VmmError> {
        let sregs = vcpu.get_sregs().map_err(VmmError::kvm("KVM_GET_SREGS"))?;
        Ok(BootCpu {
            regs: super::pvh_boot::entry_regs(entry),
            sregs: super::pvh_boot::entry_sregs(sregs),
            fpu: vcpu.get_fpu().map_err(VmmError::kvm("KVM_GET_FPU"))?,
            xsave: vcpu.get_xsave().ok(),
            xcrs: vcpu.get_xcrs().ok(),
            events: vcpu.get_vcpu_events().ok(),
            lapic: vcpu.get_lapic().ok(),
        })
    }

    /// Puts `vcpu` in that state (at the first boot: the entry registers).
    pub fn apply(&self, vcpu: &VcpuFd) -> Result<(), VmmError> {
        // The APIC base first (in sregs): the local APIC's registers below
        // are in the fresh, xAPIC-mode layout.
        vcpu.set_sregs(&self.sregs)
            .map_err(VmmError::kvm("KVM_SET_SREGS"))?;
        if let Some(l) = &self.lapic {
            vcpu.set_lapic(l).map_err(VmmError::kvm("KVM_SET_LAPIC"))?;
            vcpu.set_mp_state(kvm_mp_state {
                mp_state: KVM_MP_STATE_RUNNABLE,
            })
            .map_err(VmmError::kvm("KVM_SET_MP_STATE"))?;
        }
        vcpu.set_regs(&self.regs)
            .map_err(VmmError::kvm("KVM_SET_REGS"))?;
        if let Some(x) = &self.xcrs {
            vcpu.set_xcrs(x).map_err(VmmError::kvm("KVM_SET_XCRS"))?;
        }
        match &self.xsave {
            // SAFETY: this area came from KVM_GET_XSAVE on this vCPU, so
            // its XSTATE header names only features KVM fits in the
            // 4 KiB kvm_xsave (this process enables no dynamic features,
            // e.g. AMX, that would need KVM_SET_XSAVE2's larger buffer).
            Some(x) => unsafe { vcpu.set_xsave(x) }.map_err(VmmError::kvm("KVM_SET_XSAVE"))?,
            None => vcpu
                .set_fpu(&self.fpu)
                .map_err(VmmError::kvm("KVM_SET_FPU"))?,
        }
        if let Some(e) = &self.events {
            vcpu.set_vcpu_events(e)
                .map_err(VmmError::kvm("KVM_SET_VCPU_EVENTS"))?;
        }
        Ok(())
    }
}

/// Puts a secondary vCPU back where a fresh one is: waiting for INIT/SIPI.
pub fn park_ap(vcpu: &VcpuFd) -> Result<(), VmmError> {
    vcpu.set_mp_state(kvm_mp_state {
        mp_state: KVM_MP_STATE_UNINITIALIZED,
    })
    .map_err(VmmError::kvm("KVM_SET_MP_STATE(UNINITIALIZED)"))
}
