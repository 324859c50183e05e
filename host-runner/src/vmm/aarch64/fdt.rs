//! The device tree the guest boots with (generated with vm-fdt): RAM, one
//! CPU, PSCI over HVC, the architected timer, a 16550 on MMIO and /chosen
//! with the plan. No interrupt controller: the convtest guest polls its UART
//! and counter, so there is no vGIC to describe (and no interrupt lines).

use super::super::VmmError;
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
    pub bootargs: &'a str,
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

    let cpus = w.begin_node("cpus").map_err(fdt_err)?;
    w.property_u32("#address-cells", 1)
        .and_then(|()| w.property_u32("#size-cells", 0))
        .map_err(fdt_err)?;
    let cpu = w.begin_node("cpu@0").map_err(fdt_err)?;
    w.property_string("device_type", "cpu")
        .and_then(|()| w.property_string("compatible", "arm,arm-v8"))
        .and_then(|()| w.property_u32("reg", 0))
        .and_then(|()| w.property_string("enable-method", "psci"))
        .and_then(|()| w.end_node(cpu))
        .and_then(|()| w.end_node(cpus))
        .map_err(fdt_err)?;

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

    #[test]
    fn blob_has_the_magic_and_carries_the_plan_and_uart() {
        let blob = build(&Layout {
            ram: MemRange::new(0x8000_0000, 0x9000_0000),
            uart: MemRange::new(0x900_0000, 0x900_1000),
            bootargs: "tests=all content=preserve",
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
        ] {
            assert!(text.contains(want), "{want}");
        }
    }
}
