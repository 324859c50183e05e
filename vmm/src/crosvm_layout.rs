//! crosvm's arm64 machine, as the own VMM reproduces it for `--layout
//! crosvm`: the memory map and the device tree crosvm gives a guest, so a
//! guest that passes here meets the same addresses, nodes and properties
//! on an Android board (docs/design.md §4, docs/vmm.md).
//!
//! Facts, not code, from crosvm's `aarch64/src/lib.rs` and `fdt.rs` and
//! `arch/src/{fdt,serial}.rs` (google/crosvm, read at f1e797a, 2026-08):
//!
//! - RAM at 0x8000_0000; the Image at RAM + text_offset; the FDT at the end
//!   of RAM: `(ram_end - 2 MiB)` rounded down to 2 MiB, at most 2 MiB.
//! - The first 16550 on the MMIO bus at 0x3f8 (8 bytes, `U6_16550A@3f8`,
//!   `ns16550a`, clock-frequency 1843200, SPI 0 rising edge, no
//!   `reg-shift`/`reg-io-width`: byte registers one byte apart), the
//!   `/chosen` stdout-path.
//! - PSCI 1.0/0.2 over `hvc`; the boot CPU's x0 = FDT address.
//! - GICv3: distributor at 0x3fff_0000 (64 KiB), redistributors right
//!   below it (128 KiB per vCPU); the timer's PPIs 13, 14, 11, 10
//!   (level-low, one CPU-mask bit per vCPU).
//! - A PCI CAM host at 0x1_0000 (16 MiB; low MMIO window 0x200_0000 +
//!   32 MiB, high window from RAM end + 1 GiB to the IPA limit), a PL030
//!   RTC at 0x2000 with a fixed 3.14 MHz clock node, the vCPU stall
//!   detector at 0x3000, a `virtual,kvm-cpufreq` node.
//! - `/chosen`: `linux,pci-probe-only`, `bootargs` (crosvm's own
//!   `panic=-1` first), `kaslr-seed`, a 256-byte `rng-seed`; `/config`
//!   with the kernel's address and size.
//! - A protected VM gets a 64 MiB swiotlb: a `restricted-dma-pool` child of
//!   `/reserved-memory` with only `size` and `alignment` (64 KiB) under
//!   KVM, which the guest places itself, and the PCI host's
//!   `memory-region` names it.
//!
//! Left out: crosvm's `__symbols__` node (labels for device-tree overlays;
//! vm-fdt refuses a node name starting with `_`), the PMU node (crosvm's
//! `--no-pmu`) and the pvtime region.
//!
//! The own VMM backs only RAM, the UART and PSCI (KVM's): the other nodes
//! are described exactly as crosvm does and an access to one is a stray
//! MMIO exit, counted in the VMM's facts. The convtest guest touches none.

use convtest_proto::range::{MemRange, align_down};
use vm_fdt::FdtWriter;

pub const RAM_BASE: u64 = 0x8000_0000;
pub const FDT_MAX: u64 = 2 << 20;
const FDT_ALIGN: u64 = 2 << 20;
/// The first 16550 (`--serial …,num=1`): COM1's port number, on MMIO.
pub const SERIAL: MemRange = MemRange::new(0x3f8, 0x3f8 + 8);
const SERIAL_CLOCK: u32 = 1_843_200;
const SERIAL_SPI: u32 = 0;
const GIC_DIST: MemRange = MemRange::new(0x3fff_0000, 0x4000_0000);
const GIC_REDIST_PER_CPU: u64 = 0x2_0000;
const PCI_CAM: MemRange = MemRange::new(0x1_0000, 0x1_0000 + 0x100_0000);
const PCI_LOW_MMIO: MemRange = MemRange::new(0x200_0000, 0x400_0000);
const PLATFORM_MMIO_BYTES: u64 = 1 << 30;
const RTC: MemRange = MemRange::new(0x2000, 0x3000);
const RTC_SPI: u32 = 1;
const PL030_AMBA_ID: u32 = 0x0004_1030;
const VMWDT: MemRange = MemRange::new(0x3000, 0x4000);
const VMWDT_PPI: u32 = 15;
const VMWDT_CLOCK_HZ: u32 = 2;
const VMWDT_TIMEOUT_S: u32 = 10;
const SWIOTLB_BYTES: u64 = 64 << 20;
const SWIOTLB_ALIGN: u64 = 64 << 10;

const PHANDLE_GIC: u32 = 1;
const PHANDLE_DMA_POOL: u32 = 2;
const PHANDLE_CLOCK: u32 = 24;
const PHANDLE_CPU0: u32 = 0x100;

// The GIC binding's interrupt specifier.
const SPI: u32 = 0;
const PPI: u32 = 1;
const EDGE_RISING: u32 = 1;
const LEVEL_HIGH: u32 = 4;
const LEVEL_LOW: u32 = 8;

/// crosvm's kernel command line before the user's `--params`.
pub const BASE_CMDLINE: &str = "panic=-1";

/// What one boot's tree is made from.
pub struct Machine<'a> {
    pub ram: MemRange,
    /// The loaded Image, text through image_size (`/config`).
    pub kernel: MemRange,
    /// The guest's plan; crosvm's own words go first.
    pub plan: &'a str,
    /// MPIDR_EL1 of each vCPU, the boot CPU first.
    pub mpidrs: &'a [u64],
    /// A protected VM: crosvm adds the 64 MiB swiotlb pool.
    pub protected: bool,
    /// Fills `kaslr-seed` and `rng-seed` (crosvm draws them at random).
    pub seed: u64,
    /// The VM's IPA size in bits (the top of the high PCI window).
    pub ipa_bits: u32,
}

/// Where crosvm puts the FDT in `ram`.
pub fn fdt_address(ram: MemRange) -> u64 {
    align_down(ram.end.saturating_sub(FDT_MAX), FDT_ALIGN)
}

/// MPIDR_EL1's affinity fields, as a cpu node's `reg`.
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

fn err(e: vm_fdt::Error) -> String {
    format!("building crosvm's device tree: {e}")
}

fn seed_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = convtest_proto::prng::mix(x);
            x as u8
        })
        .collect()
}

/// The blob crosvm would give this guest.
pub fn fdt(m: &Machine<'_>) -> Result<Vec<u8>, String> {
    let cpus = u32::try_from(m.mpidrs.len()).map_err(|_| "too many vCPUs".to_string())?;
    if cpus == 0 || cpus > 8 {
        // The timer's CPU mask is 8 bits wide (and so is crosvm's).
        return Err(format!("crosvm's tree describes 1 to 8 vCPUs, not {cpus}"));
    }
    let mut w = FdtWriter::new().map_err(err)?;
    let root = w.begin_node("").map_err(err)?;
    w.property_u32("interrupt-parent", PHANDLE_GIC)
        .map_err(err)?;
    w.property_string("compatible", "linux,dummy-virt")
        .map_err(err)?;
    w.property_u32("#address-cells", 2).map_err(err)?;
    w.property_u32("#size-cells", 2).map_err(err)?;

    let serial = format!("U6_16550A@{:x}", SERIAL.start);
    let chosen = w.begin_node("chosen").map_err(err)?;
    w.property_u32("linux,pci-probe-only", 1).map_err(err)?;
    w.property_string("bootargs", &format!("{BASE_CMDLINE} {}", m.plan))
        .map_err(err)?;
    w.property_string("stdout-path", &format!("/{serial}"))
        .map_err(err)?;
    w.property_u64("kaslr-seed", convtest_proto::prng::mix(m.seed))
        .map_err(err)?;
    w.property("rng-seed", &seed_bytes(m.seed ^ 1, 256))
        .map_err(err)?;
    w.end_node(chosen).map_err(err)?;

    let config = w.begin_node("config").map_err(err)?;
    let k32 = |v: u64| u32::try_from(v).map_err(|_| format!("{v:#x} does not fit /config's u32"));
    w.property_u32("kernel-address", k32(m.kernel.start)?)
        .map_err(err)?;
    w.property_u32("kernel-size", k32(m.kernel.len())?)
        .map_err(err)?;
    w.end_node(config).map_err(err)?;

    let memory = w.begin_node("memory").map_err(err)?;
    w.property_string("device_type", "memory").map_err(err)?;
    w.property_array_u64("reg", &[m.ram.start, m.ram.len()])
        .map_err(err)?;
    w.end_node(memory).map_err(err)?;

    if m.protected {
        let rm = w.begin_node("reserved-memory").map_err(err)?;
        w.property_u32("#address-cells", 2).map_err(err)?;
        w.property_u32("#size-cells", 2).map_err(err)?;
        w.property_null("ranges").map_err(err)?;
        let pool = w.begin_node("restricted_dma_reserved").map_err(err)?;
        w.property_u64("size", SWIOTLB_BYTES).map_err(err)?;
        w.property_u32("phandle", PHANDLE_DMA_POOL).map_err(err)?;
        w.property_string("compatible", "restricted-dma-pool")
            .map_err(err)?;
        w.property_u64("alignment", SWIOTLB_ALIGN).map_err(err)?;
        w.end_node(pool).map_err(err)?;
        w.end_node(rm).map_err(err)?;
    }

    let cpus_node = w.begin_node("cpus").map_err(err)?;
    w.property_u32("#address-cells", 1).map_err(err)?;
    w.property_u32("#size-cells", 0).map_err(err)?;
    for (i, &mpidr) in m.mpidrs.iter().enumerate() {
        let reg = u32::try_from(mpidr & MPIDR_AFFINITY).map_err(|_| {
            format!("MPIDR {mpidr:#x} has Aff3, which crosvm's cpu nodes cannot say")
        })?;
        let cpu = w.begin_node(&format!("cpu@{reg:x}")).map_err(err)?;
        w.property_string("device_type", "cpu").map_err(err)?;
        w.property_string("compatible", "arm,armv8").map_err(err)?;
        if cpus > 1 {
            w.property_string("enable-method", "psci").map_err(err)?;
        }
        w.property_u32("reg", reg).map_err(err)?;
        w.property_u32("phandle", PHANDLE_CPU0 + i as u32)
            .map_err(err)?;
        w.end_node(cpu).map_err(err)?;
    }
    w.end_node(cpus_node).map_err(err)?;

    let redist = GIC_REDIST_PER_CPU * u64::from(cpus);
    let intc = w.begin_node("intc").map_err(err)?;
    w.property_string("compatible", "arm,gic-v3").map_err(err)?;
    w.property_u32("#interrupt-cells", 3).map_err(err)?;
    w.property_null("interrupt-controller").map_err(err)?;
    w.property_array_u64(
        "reg",
        &[
            GIC_DIST.start,
            GIC_DIST.len(),
            GIC_DIST.start - redist,
            redist,
        ],
    )
    .map_err(err)?;
    w.property_u32("phandle", PHANDLE_GIC).map_err(err)?;
    w.property_u32("#address-cells", 2).map_err(err)?;
    w.property_u32("#size-cells", 2).map_err(err)?;
    w.end_node(intc).map_err(err)?;

    let cpu_mask = ((1u32 << cpus) - 1) << 8;
    let timer = w.begin_node("timer").map_err(err)?;
    w.property_string("compatible", "arm,armv8-timer")
        .map_err(err)?;
    let ppis: Vec<u32> = [13, 14, 11, 10]
        .iter()
        .flat_map(|&irq| [PPI, irq, cpu_mask | LEVEL_LOW])
        .collect();
    w.property_array_u32("interrupts", &ppis).map_err(err)?;
    w.property_null("always-on").map_err(err)?;
    w.end_node(timer).map_err(err)?;

    let uart = w.begin_node(&serial).map_err(err)?;
    w.property_string("compatible", "ns16550a").map_err(err)?;
    w.property_array_u64("reg", &[SERIAL.start, SERIAL.len()])
        .map_err(err)?;
    w.property_u32("clock-frequency", SERIAL_CLOCK)
        .map_err(err)?;
    w.property_array_u32("interrupts", &[SPI, SERIAL_SPI, EDGE_RISING])
        .map_err(err)?;
    w.end_node(uart).map_err(err)?;

    let psci = w.begin_node("psci").map_err(err)?;
    w.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )
    .map_err(err)?;
    w.property_string("method", "hvc").map_err(err)?;
    w.end_node(psci).map_err(err)?;

    pci(&mut w, m).map_err(err)?;
    platform_devices(&mut w, cpu_mask).map_err(err)?;

    w.end_node(root).map_err(err)?;
    let blob = w.finish().map_err(err)?;
    if blob.len() as u64 > FDT_MAX {
        return Err(format!(
            "crosvm's tree is {} bytes, more than {FDT_MAX}",
            blob.len()
        ));
    }
    Ok(blob)
}

/// The generic CAM host with crosvm's two windows and no devices.
fn pci(w: &mut FdtWriter, m: &Machine<'_>) -> Result<(), vm_fdt::Error> {
    let high_start = m.ram.end + PLATFORM_MMIO_BYTES;
    let high_end = 1u64 << m.ipa_bits;
    // (space, prefetchable, start, size): 32-bit memory, 64-bit memory.
    let mut ranges = Vec::new();
    for (space, prefetch, start, size) in [
        (0b10u32, 0u32, PCI_LOW_MMIO.start, PCI_LOW_MMIO.len()),
        (0b11, 1, high_start, high_end.saturating_sub(high_start)),
    ] {
        ranges.extend([
            (space << 24) | (prefetch << 30),
            (start >> 32) as u32,
            start as u32,
            (start >> 32) as u32,
            start as u32,
            (size >> 32) as u32,
            size as u32,
        ]);
    }
    let node = w.begin_node("pci")?;
    w.property_string("compatible", "pci-host-cam-generic")?;
    w.property_string("device_type", "pci")?;
    w.property_array_u32("ranges", &ranges)?;
    w.property_array_u32("bus-range", &[0, 0])?;
    w.property_u32("#address-cells", 3)?;
    w.property_u32("#size-cells", 2)?;
    w.property_array_u64("reg", &[PCI_CAM.start, PCI_CAM.len()])?;
    w.property_u32("#interrupt-cells", 1)?;
    w.property("interrupt-map", &[])?;
    w.property_array_u32("interrupt-map-mask", &[0xf800, 0, 0, 7])?;
    w.property_null("dma-coherent")?;
    if m.protected {
        w.property_u32("memory-region", PHANDLE_DMA_POOL)?;
    }
    w.end_node(node)
}

/// The RTC (and the clock it insists on), the stall detector, cpufreq.
fn platform_devices(w: &mut FdtWriter, cpu_mask: u32) -> Result<(), vm_fdt::Error> {
    let clock = w.begin_node("pclk@3M")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("clock-frequency", 3_141_592)?;
    w.property_u32("phandle", PHANDLE_CLOCK)?;
    w.end_node(clock)?;

    let rtc = w.begin_node(&format!("rtc@{:x}", RTC.start))?;
    w.property_string("compatible", "arm,primecell")?;
    w.property_u32("arm,primecell-periphid", PL030_AMBA_ID)?;
    w.property_array_u64("reg", &[RTC.start, RTC.len()])?;
    w.property_array_u32("interrupts", &[SPI, RTC_SPI, LEVEL_HIGH])?;
    w.property_u32("clocks", PHANDLE_CLOCK)?;
    w.property_string("clock-names", "apb_pclk")?;
    w.end_node(rtc)?;

    let wdt = w.begin_node(&format!("vmwdt@{:x}", VMWDT.start))?;
    w.property_string("compatible", "qemu,vcpu-stall-detector")?;
    w.property_array_u64("reg", &[VMWDT.start, VMWDT.len()])?;
    w.property_u32("clock-frequency", VMWDT_CLOCK_HZ)?;
    w.property_u32("timeout-sec", VMWDT_TIMEOUT_S)?;
    w.property_array_u32("interrupts", &[PPI, VMWDT_PPI, cpu_mask | EDGE_RISING])?;
    w.end_node(wdt)?;

    let cpufreq = w.begin_node("cpufreq")?;
    w.property_string("compatible", "virtual,kvm-cpufreq")?;
    w.end_node(cpufreq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt_props::props;
    fn prop<'a>(all: &'a [(String, String, Vec<u8>)], node: &str, name: &str) -> &'a [u8] {
        all.iter()
            .find(|(p, n, _)| p == node && n == name)
            .map(|(_, _, v)| v.as_slice())
            .unwrap_or_else(|| panic!("{node} {name}"))
    }

    fn u64s(v: &[u8]) -> Vec<u64> {
        v.chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u32s(v: &[u8]) -> Vec<u32> {
        v.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn machine(protected: bool, mpidrs: &[u64]) -> Vec<(String, String, Vec<u8>)> {
        let blob = fdt(&Machine {
            ram: MemRange::new(RAM_BASE, RAM_BASE + (256 << 20)),
            kernel: MemRange::new(RAM_BASE, RAM_BASE + 0xc9000),
            plan: "tests=conv.* host=off",
            mpidrs,
            protected,
            seed: 7,
            ipa_bits: 40,
        })
        .unwrap();
        assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        props(&blob)
    }

    #[test]
    fn memory_map_is_crosvms() {
        let ram = MemRange::new(RAM_BASE, RAM_BASE + (256 << 20));
        assert_eq!(fdt_address(ram), 0x8fe0_0000, "last 2 MiB of RAM");
        // RAM that is not a 2 MiB multiple: rounded down, still inside.
        assert_eq!(
            fdt_address(MemRange::new(RAM_BASE, RAM_BASE + 0x30_1000)),
            0x8000_0000
        );
        let all = machine(false, &[0x8000_0000]);
        assert_eq!(u64s(prop(&all, "/memory", "reg")), [RAM_BASE, 256 << 20]);
        assert_eq!(prop(&all, "/memory", "device_type"), b"memory\0");
        assert_eq!(u32s(prop(&all, "/config", "kernel-address")), [0x8000_0000]);
        assert_eq!(u32s(prop(&all, "/config", "kernel-size")), [0xc9000]);
    }

    #[test]
    fn the_console_is_a_16550_at_0x3f8_without_reg_shift() {
        let all = machine(false, &[0x8000_0000]);
        let uart = "/U6_16550A@3f8";
        assert_eq!(prop(&all, uart, "compatible"), b"ns16550a\0");
        assert_eq!(u64s(prop(&all, uart, "reg")), [0x3f8, 8]);
        assert_eq!(u32s(prop(&all, uart, "clock-frequency")), [1_843_200]);
        assert_eq!(u32s(prop(&all, uart, "interrupts")), [SPI, 0, EDGE_RISING]);
        assert!(
            !all.iter()
                .any(|(p, n, _)| p == uart && n.starts_with("reg-"))
        );
        assert_eq!(prop(&all, "/chosen", "stdout-path"), b"/U6_16550A@3f8\0");
        assert_eq!(
            prop(&all, "/chosen", "bootargs"),
            b"panic=-1 tests=conv.* host=off\0"
        );
        assert_eq!(prop(&all, "/chosen", "rng-seed").len(), 256);
        assert_eq!(prop(&all, "/psci", "method"), b"hvc\0");
    }

    #[test]
    fn cpus_gic_and_timer_follow_the_vcpu_count() {
        let one = machine(false, &[0x8000_0000]);
        assert!(
            !one.iter().any(|(_, n, _)| n == "enable-method"),
            "one vCPU: no enable-method"
        );
        let two = machine(false, &[0x8000_0000, 0x8000_0001]);
        assert_eq!(prop(&two, "/cpus/cpu@1", "enable-method"), b"psci\0");
        assert_eq!(u32s(prop(&two, "/cpus/cpu@1", "phandle")), [0x101]);
        assert_eq!(
            u64s(prop(&two, "/intc", "reg")),
            [0x3fff_0000, 0x1_0000, 0x3ffb_0000, 0x4_0000]
        );
        let timer = u32s(prop(&two, "/timer", "interrupts"));
        assert_eq!(&timer[..3], [PPI, 13, 0x300 | LEVEL_LOW]);
        assert!(
            fdt(&Machine {
                ram: MemRange::new(RAM_BASE, RAM_BASE + (64 << 20)),
                kernel: MemRange::new(RAM_BASE, RAM_BASE + 0x1000),
                plan: "",
                mpidrs: &[0; 9],
                protected: false,
                seed: 0,
                ipa_bits: 40,
            })
            .is_err()
        );
    }

    #[test]
    fn a_protected_vm_gets_the_swiotlb_pool_without_an_address() {
        assert!(
            !machine(false, &[0])
                .iter()
                .any(|(p, _, _)| p.starts_with("/reserved-memory"))
        );
        let all = machine(true, &[0]);
        let pool = "/reserved-memory/restricted_dma_reserved";
        assert_eq!(prop(&all, pool, "compatible"), b"restricted-dma-pool\0");
        assert_eq!(u64s(prop(&all, pool, "size")), [64 << 20]);
        assert_eq!(u64s(prop(&all, pool, "alignment")), [64 << 10]);
        assert!(!all.iter().any(|(p, n, _)| p == pool && n == "reg"));
        assert_eq!(
            u32s(prop(&all, "/pci", "memory-region")),
            [PHANDLE_DMA_POOL]
        );
        assert_eq!(prop(&all, "/rtc@2000", "clock-names"), b"apb_pclk\0");
        assert_eq!(u64s(prop(&all, "/vmwdt@3000", "reg")), [0x3000, 0x1000]);
    }
}
