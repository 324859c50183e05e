//! The outer QEMU: TCG with the virtualization extensions KVM needs inside
//! (x86: `-cpu max` is an AMD CPU with SVM + NPT; arm64: EL2 with GICv3, which
//! pKVM requires), the L1 kernel and initramfs, and the L1 console on stdio.

use convtest_proto::arch::Arch;
use std::ffi::OsString;
use std::path::Path;

/// L1 RAM: the L1 kernel, the inner VMM and the guest's RAM inside it —
/// at least 2 GiB, and the guest's RAM plus 1.5 GiB for larger guests
/// (`convtest bench`'s 1 GiB conversion needs a guest of 2.5 GiB).
pub fn l1_memory_mib(guest_mib: u32) -> u32 {
    2048.max(guest_mib.saturating_add(1536))
}
/// L1 vCPUs: as many as the inner guest has, so each of its vCPU threads
/// gets one of the L1's. One for a one-vCPU guest: the VMM's other threads
/// and /init's relays only wake now and then, and a second L1 vCPU cost
/// more than it gave (measured on the nested lanes with a warm cache,
/// whole run: pKVM 8.65 → 8.00 s, x86 sw-protected 8.35 → 7.75 s — the
/// second vCPU's share of pKVM's broadcast TLB maintenance and of the SMP
/// bring-up — and one host core less taken).
pub fn l1_cpus(guest_vcpus: u32) -> u32 {
    guest_vcpus.max(1)
}

/// The outer accelerator. x86: single-threaded TCG, all L1 vCPUs on one
/// host thread in turn. With multi-threaded TCG an inner vCPU on QEMU's
/// emulated SVM now and then ends in a triple fault the guest never
/// raised, whenever another L1 vCPU runs at the same time — an inner vCPU
/// spinning, or busy threads in the L1 beside a one-CPU guest
/// (docs/known-problems.md: the platform's, not the guest's — the guest took no
/// exception; QEMU's or the L1 KVM's, not isolated). Single-threaded it never
/// did, and on two host cores the four-vCPU storm ran faster (82.2 s
/// against 169 s: five L1 vCPU threads no longer fight over two cores).
/// arm64 (pKVM) shows nothing of the kind and keeps its threads.
pub fn l1_accel(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "tcg,thread=single",
        Arch::Aarch64 => "tcg",
    }
}

/// The L1 kernel command line: quiet so the console carries little but the
/// guest's KTAP; panic=-1 with -no-reboot turns any L1 panic into an exit.
pub fn kernel_cmdline(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "console=ttyS0 quiet loglevel=1 panic=-1",
        // pKVM: the host kernel drops to EL1 and KVM's hypervisor keeps EL2.
        Arch::Aarch64 => "console=ttyAMA0 quiet loglevel=1 panic=-1 kvm-arm.mode=protected",
    }
}

pub fn args(
    arch: Arch,
    kernel: &Path,
    initrd: &Path,
    guest_mib: u32,
    guest_vcpus: u32,
) -> Vec<OsString> {
    let memory = format!("{}M", l1_memory_mib(guest_mib));
    let cpus = l1_cpus(guest_vcpus).to_string();
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    if arch == Arch::Aarch64 {
        push(&["-M", "virt,virtualization=on,gic-version=3"]);
    }
    push(&[
        "-accel",
        l1_accel(arch),
        "-cpu",
        "max",
        "-smp",
        &cpus,
        "-m",
        &memory,
        "-no-reboot",
    ]);
    push(&crate::backend::qemu::HEADLESS_SERIAL_STDIO);
    a.push("-kernel".into());
    a.push(kernel.into());
    a.push("-initrd".into());
    a.push(initrd.into());
    a.push("-append".into());
    a.push(kernel_cmdline(arch).into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::shell_line;

    #[test]
    fn larger_guests_get_a_larger_l1() {
        assert_eq!(l1_memory_mib(256), 2048);
        assert_eq!(l1_memory_mib(2560), 4096);
    }

    #[test]
    fn command_lines() {
        let line = |arch| {
            shell_line(
                OsString::from("qemu"),
                args(
                    arch,
                    Path::new("/c/vmlinuz"),
                    Path::new("/t/initramfs"),
                    256,
                    1,
                ),
            )
        };
        assert_eq!(
            line(Arch::X86_64),
            "qemu -accel tcg,thread=single -cpu max -smp 1 -m 2048M -no-reboot -nodefaults -no-user-config \
             -display none -serial stdio -kernel /c/vmlinuz -initrd /t/initramfs \
             -append 'console=ttyS0 quiet loglevel=1 panic=-1'"
        );
        assert_eq!(l1_cpus(4), 4, "an inner vCPU per L1 vCPU");
        let arm = line(Arch::Aarch64);
        assert!(arm.starts_with("qemu -M virt,virtualization=on,gic-version=3 -accel tcg"));
        assert!(arm.ends_with(
            "-append 'console=ttyAMA0 quiet loglevel=1 panic=-1 kvm-arm.mode=protected'"
        ));
    }
}
