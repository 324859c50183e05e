//! The device tree the guest boots with (generated with vm-fdt): RAM, one
//! cpu node per vCPU, PSCI over HVC, the architected timer, a 16550 on MMIO,
//! the word console (when the VMM has one) and /chosen with the plan. No
//! interrupt controller: the convtest guest
//! polls its UART and counter and its CPUs meet in memory (no IPIs), so the
//! VMM creates no vGIC and there is none to describe (and no interrupt
//! lines). KVM needs none for more than one vCPU either: without an
//! in-kernel irqchip it keeps user-irqchip semantics (arm.c
//! `kvm_arch_vcpu_precreate` only refuses new vCPUs once a vGIC is
//! initialised), and PSCI CPU_ON wakes its target without one.
//!
//! /cpus follows the arm cpus binding (Documentation/devicetree/bindings/
//! arm/cpus.yaml): `reg` is MPIDR_EL1's affinity fields (Aff2..Aff0 in one
//! cell; Aff3 in the first of two cells only when some CPU has it), every
//! other bit 0 (so not MPIDR's RES1 bit 31), and `enable-method = "psci"`
//! for all of them, the boot CPU included.

use crate::error::VmmError;
use convtest_proto::range::MemRange;
use vm_fdt::FdtWriter;

/// The blob may use this much; the boot protocol allows 2 MiB.
pub const FDT_MAX: u64 = 2 << 20;
/// 16550 input clock, as PC UARTs (1.8432 MHz); the guest never sets a baud
/// rate, so this is only for completeness.
const UART_CLOCK: u32 = 1_843_200;

pub struct Layout<'a> {
    pub ram: MemRange,
    pub uart: MemRange,
    /// The word console's registers, when the VMM has one.
    pub word_console: Option<MemRange>,
    pub bootargs: &'a str,
    /// MPIDR_EL1 of each vCPU, vCPU 0 (the boot CPU) first.
    pub mpidrs: &'a [u64],
}

/// MPIDR_EL1's affinity fields, Aff3 (39:32) and Aff2..Aff0 (23:0): what a
/// cpu node's `reg` holds.
pub const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// The cpu node `reg` of a CPU with this MPIDR_EL1.
pub fn cpu_reg(mpidr: u64) -> u64 {
    mpidr & MPIDR_AFFINITY
}

fn fdt_err(e: vm_fdt::Error) -> VmmError {
    VmmError::Config(format!("building the device tree: {e}"))
}

fn reg(r: MemRange) -> [u64; 2] {
    [r.start, r.len()]
}

pub fn build(l: &Layout<'_>) -> Result<Vec<u8>, VmmError> {
    let mut w = FdtWriter::new().map_err(fdt_err)?;
    let root = w.begin_node("").map_err(fdt_err)?;
    w.property_string("compatible", "linux,dummy-virt")
        .and_then(|()| w.property_u32("#address-cells", 2))
        .and_then(|()| w.property_u32("#size-cells", 2))
        .map_err(fdt_err)?;

    let mem = w
        .begin_node(&format!("memory@{:x}", l.ram.start))
        .map_err(fdt_err)?;
    w.property_string("device_type", "memory")
        .and_then(|()| w.property_array_u64("reg", &reg(l.ram)))
        .and_then(|()| w.end_node(mem))
        .map_err(fdt_err)?;

    if l.mpidrs.is_empty() {
        return Err(VmmError::Config("a device tree without CPUs".into()));
    }
    let regs: Vec<u64> = l.mpidrs.iter().map(|&m| cpu_reg(m)).collect();
    let two_cells = regs.iter().any(|&r| r > u64::from(u32::MAX));
    let cpus = w.begin_node("cpus").map_err(fdt_err)?;
    w.property_u32("#address-cells", if two_cells { 2 } else { 1 })
        .and_then(|()| w.property_u32("#size-cells", 0))
        .map_err(fdt_err)?;
    for &r in &regs {
        let cpu = w.begin_node(&format!("cpu@{r:x}")).map_err(fdt_err)?;
        w.property_string("device_type", "cpu")
            .and_then(|()| w.property_string("compatible", "arm,arm-v8"))
            .and_then(|()| {
                if two_cells {
                    w.property_u64("reg", r)
                } else {
                    // Fits: no CPU has Aff3.
                    w.property_u32("reg", r as u32)
                }
            })
            .and_then(|()| w.property_string("enable-method", "psci"))
            .and_then(|()| w.end_node(cpu))
            .map_err(fdt_err)?;
    }
    w.end_node(cpus).map_err(fdt_err)?;

    // KVM's PSCI (vCPU feature PSCI_0_2) reports version 1.x.
    let psci = w.begin_node("psci").map_err(fdt_err)?;
    w.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )
    .and_then(|()| w.property_string("method", "hvc"))
    .and_then(|()| w.end_node(psci))
    .map_err(fdt_err)?;

    // The counter is what the guest uses; without a GIC the timer has no
    // interrupt lines to list.
    let timer = w.begin_node("timer").map_err(fdt_err)?;
    w.property_string("compatible", "arm,armv8-timer")
        .and_then(|()| w.property_null("always-on"))
        .and_then(|()| w.end_node(timer))
        .map_err(fdt_err)?;

    let uart_name = format!("serial@{:x}", l.uart.start);
    let uart = w.begin_node(&uart_name).map_err(fdt_err)?;
    w.property_string("compatible", "ns16550a")
        .and_then(|()| w.property_array_u64("reg", &reg(l.uart)))
        .and_then(|()| w.property_u32("reg-shift", 0))
        .and_then(|()| w.property_u32("reg-io-width", 1))
        .and_then(|()| w.property_u32("clock-frequency", UART_CLOCK))
        .and_then(|()| w.end_node(uart))
        .map_err(fdt_err)?;

    if let Some(r) = l.word_console {
        let node = w
            .begin_node(&format!("console@{:x}", r.start))
            .map_err(fdt_err)?;
        w.property_string("compatible", convtest_proto::word_console::COMPATIBLE)
            .and_then(|()| w.property_array_u64("reg", &reg(r)))
            .and_then(|()| w.end_node(node))
            .map_err(fdt_err)?;
    }

    let chosen = w.begin_node("chosen").map_err(fdt_err)?;
    w.property_string("bootargs", l.bootargs)
        .and_then(|()| w.property_string("stdout-path", &format!("/{uart_name}")))
        .and_then(|()| w.end_node(chosen))
        .and_then(|()| w.end_node(root))
        .map_err(fdt_err)?;
    let blob = w.finish().map_err(fdt_err)?;
    if blob.len() as u64 > FDT_MAX {
        return Err(VmmError::Config(format!(
            "device tree is {} bytes, more than {FDT_MAX}",
            blob.len()
        )));
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt_props::props;

    #[test]
    fn blob_has_the_magic_and_carries_the_plan_and_uart() {
        let blob = build(&Layout {
            ram: MemRange::new(0x8000_0000, 0x9000_0000),
            uart: MemRange::new(0x900_0000, 0x900_1000),
            word_console: Some(MemRange::new(0x900_1000, 0x900_2000)),
            bootargs: "tests=all content=preserve",
            mpidrs: &[0x8000_0000],
        })
        .unwrap();
        assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        let text = String::from_utf8_lossy(&blob);
        for want in [
            "tests=all content=preserve",
            "/serial@9000000",
            "ns16550a",
            "arm,psci-0.2",
            "hvc",
            "console@9001000",
            "convtest,word-console",
        ] {
            assert!(text.contains(want), "{want}");
        }
    }
    fn prop<'a>(all: &'a [(String, String, Vec<u8>)], node: &str, name: &str) -> Option<&'a [u8]> {
        all.iter()
            .find(|(p, n, _)| p == node && n == name)
            .map(|(_, _, v)| v.as_slice())
    }

    fn cpu_blob(mpidrs: &[u64]) -> Vec<u8> {
        build(&Layout {
            ram: MemRange::new(0x8000_0000, 0x9000_0000),
            uart: MemRange::new(0x900_0000, 0x900_1000),
            word_console: None,
            bootargs: "cpus=4",
            mpidrs,
        })
        .unwrap()
    }

    #[test]
    fn one_psci_cpu_node_per_vcpu_with_its_mpidr_affinity() {
        use super::super::vcpu::kvm_mpidr;
        let mpidrs: Vec<u64> = (0..18).map(kvm_mpidr).collect();
        let all = props(&cpu_blob(&mpidrs));
        assert_eq!(
            prop(&all, "/cpus", "#address-cells"),
            Some(&[0, 0, 0, 1][..])
        );
        assert_eq!(prop(&all, "/cpus", "#size-cells"), Some(&[0, 0, 0, 0][..]));
        let cpus: Vec<&String> = all
            .iter()
            .filter(|(p, n, v)| p.starts_with("/cpus/") && n == "device_type" && v == b"cpu\0")
            .map(|(p, _, _)| p)
            .collect();
        assert_eq!(cpus.len(), 18);
        assert_eq!(cpus[0], "/cpus/cpu@0", "the boot CPU first");
        assert_eq!(cpus[17], "/cpus/cpu@101", "vCPU 17: Aff1 1, Aff0 1");
        for (id, node) in cpus.iter().enumerate() {
            let want = (kvm_mpidr(id as u64) & 0xff_ffff) as u32;
            assert_eq!(
                prop(&all, node, "reg"),
                Some(&want.to_be_bytes()[..]),
                "{node}: RES1 bit 31 is not part of reg"
            );
            assert_eq!(prop(&all, node, "enable-method"), Some(&b"psci\0"[..]));
        }
        assert_eq!(prop(&all, "/psci", "method"), Some(&b"hvc\0"[..]));
    }

    #[test]
    fn aff3_takes_two_address_cells_and_no_cpu_is_refused() {
        let all = props(&cpu_blob(&[0x8000_0000, 0x1_8000_0002]));
        assert_eq!(
            prop(&all, "/cpus", "#address-cells"),
            Some(&[0, 0, 0, 2][..])
        );
        assert_eq!(
            prop(&all, "/cpus/cpu@100000002", "reg"),
            Some(&0x1_0000_0002_u64.to_be_bytes()[..])
        );
        assert_eq!(prop(&all, "/cpus/cpu@0", "reg"), Some(&[0u8; 8][..]));
        assert!(
            build(&Layout {
                ram: MemRange::new(0x8000_0000, 0x9000_0000),
                uart: MemRange::new(0x900_0000, 0x900_1000),
                word_console: None,
                bootargs: "",
                mpidrs: &[],
            })
            .is_err()
        );
    }
}
