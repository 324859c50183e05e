//! Everything the platform tells us, from the flattened device tree the
//! loader passed in x0: RAM, reserved memory, the command line, the CPUs,
//! the PSCI conduit and the console UART. The conduit and console are looked up on
//! their own so a run can still print and power off when the rest is bad.
//!
//! Runs with the MMU off. The target has `+strict-align`, so neither this code
//! nor the `fdt` crate issues the unaligned accesses Device memory forbids.
//! The blob stays reserved, so `&'static` strings may point into it.

use super::uart::{Kind, Uart};
use crate::boot::CpuList;
use convtest_proto::range::{MemRange, RangeError, RangeList};
use convtest_proto::smccc::Conduit;
use core::fmt;
use fdt::Fdt;
use fdt::node::FdtNode;

pub struct Platform {
    /// `/memory` nodes, trimmed inward to whole 4 KiB pages.
    pub ram: RangeList,
    /// The blob itself, /memreserve/ entries and `/reserved-memory` children,
    /// merged so no two overlap.
    pub reserved: RangeList,
    pub cmdline: &'static str,
}

#[derive(Debug)]
pub enum DtbError {
    /// More RAM or reserved ranges than a `RangeList` holds.
    Ranges(&'static str, RangeError),
    NoRam,
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtbError::Ranges(what, e) => write!(f, "{what} ranges: {e}"),
            DtbError::NoRam => f.write_str("no enabled /memory node with a non-empty reg"),
        }
    }
}

/// The UARTs we can drive, by `compatible`.
const PL011: &[&str] = &["arm,pl011"];
const NS16550: &[&str] = &["ns16550a", "ns16550", "ns8250", "snps,dw-apb-uart"];
const PAGE: u64 = 4096;

/// # Safety
/// `addr` must be the DTB pointer the loader passed (readable, and left
/// untouched for the rest of the run).
pub unsafe fn open(addr: u64) -> Result<Fdt<'static>, fdt::FdtError> {
    // SAFETY: per the caller's contract the header and `totalsize` bytes after
    // it are a DTB we only read and never free.
    unsafe { Fdt::from_ptr(addr as *const u8) }
}

/// The console, found even when the rest of the tree is unusable, so that
/// what went wrong can be printed.
pub fn console(fdt: &Fdt<'static>) -> Option<Uart> {
    let chosen = fdt.find_node("/chosen");
    let stdout = chosen
        .and_then(|c| c.property("stdout-path"))
        .and_then(fdt::node::NodeProperty::as_str)
        // `serial0:115200n8`: options follow the path after a colon.
        .and_then(|path| path.split(':').next())
        .and_then(|path| fdt.find_node(path))
        .and_then(uart_of);
    stdout.or_else(|| fdt.all_nodes().filter(enabled).find_map(uart_of))
}

pub fn parse(fdt: &Fdt<'static>, dtb_addr: u64) -> Result<Platform, DtbError> {
    let mut ram = RangeList::new();
    for node in fdt
        .all_nodes()
        .filter(|n| prop_str(*n, "device_type") == Some("memory"))
        .filter(enabled)
    {
        for r in node.reg().into_iter().flatten() {
            let start = r.starting_address as u64;
            let end = start.saturating_add(r.size.unwrap_or(0) as u64);
            let page_aligned = MemRange::new(start, end).align_inward(PAGE);
            if !page_aligned.is_empty() {
                ram.push(page_aligned)
                    .map_err(|e| DtbError::Ranges("RAM", e))?;
            }
        }
    }
    if ram.is_empty() {
        return Err(DtbError::NoRam);
    }

    let mut reserved = RangeList::new();
    let blob = MemRange::from_len(dtb_addr, fdt.total_size() as u64);
    add_merged(&mut reserved, blob).map_err(|e| DtbError::Ranges("reserved", e))?;
    for m in fdt.memory_reservations() {
        let r = MemRange::from_len(m.address() as u64, m.size() as u64);
        add_merged(&mut reserved, r).map_err(|e| DtbError::Ranges("reserved", e))?;
    }
    if let Some(rm) = fdt.find_node("/reserved-memory") {
        // Children with only `size` are pools nobody allocated yet: no RAM to keep clear.
        for child in rm.children().filter(enabled) {
            for r in child.reg().into_iter().flatten() {
                let r = MemRange::from_len(r.starting_address as u64, r.size.unwrap_or(0) as u64);
                add_merged(&mut reserved, r).map_err(|e| DtbError::Ranges("reserved", e))?;
            }
        }
    }

    let cmdline = fdt
        .find_node("/chosen")
        .and_then(|c| prop_str(c, "bootargs"))
        .unwrap_or("");
    Ok(Platform {
        ram,
        reserved,
        cmdline,
    })
}

/// The SMCCC/PSCI conduit: `/psci` `method`.
pub fn conduit(fdt: &Fdt<'static>) -> Conduit {
    let psci = fdt
        .find_node("/psci")
        .or_else(|| fdt.find_compatible(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]));
    psci.and_then(|p| prop_str(p, "method"))
        .map_or(Conduit::None, Conduit::from_psci_method)
}

/// The affinity fields of MPIDR_EL1 (Aff3 in 39:32, Aff2..Aff0 in 23:0):
/// what a /cpus/cpu node's `reg` holds and PSCI CPU_ON takes.
pub const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// The enabled `device_type = "cpu"` children of /cpus, as their `reg`
/// (MPIDR affinity; /cpus `#address-cells` 1 or 2): the one matching
/// `mpidr` (this CPU's MPIDR_EL1) first, the rest in tree order. If none
/// matches (a DTB that omits the boot CPU) all are in tree order and entry
/// 0, taken for the boot CPU, is never started. Empty when /cpus is missing
/// or its `#address-cells` is neither 1 nor 2; a cpu node without a
/// readable `reg` is left out.
pub fn cpus(fdt: &Fdt<'static>, mpidr: u64) -> CpuList {
    let mut list = CpuList::EMPTY;
    let Some(parent) = fdt.find_node("/cpus") else {
        return list;
    };
    // The devicetree spec's default #address-cells is 2; /cpus must name it.
    let cells = prop_u32(parent, "#address-cells").unwrap_or(2) as usize;
    if !matches!(cells, 1 | 2) {
        return list;
    }
    let boot = mpidr & MPIDR_AFFINITY;
    let ids = || {
        parent
            .children()
            .filter(|n| prop_str(*n, "device_type") == Some("cpu"))
            .filter(enabled)
            .filter_map(move |n| {
                let reg = n.property("reg")?.value.get(..cells * 4)?;
                Some(reg.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
            })
    };
    if ids().any(|id| id & MPIDR_AFFINITY == boot) {
        list.push(boot);
    }
    for id in ids().filter(|id| id & MPIDR_AFFINITY != boot) {
        list.push(id);
    }
    list
}

/// Adds `r` (rounded out to whole pages) to `list`, absorbing every range it
/// overlaps or touches, so the list stays disjoint.
pub fn add_merged(list: &mut RangeList, r: MemRange) -> Result<(), RangeError> {
    list.insert_merged(r.align_outward(PAGE))
}

fn uart_of(node: FdtNode<'_, 'static>) -> Option<Uart> {
    let compatible = node.compatible()?;
    let base = node.reg()?.next()?.starting_address as u64;
    let kind = if compatible.all().any(|c| PL011.contains(&c)) {
        Kind::Pl011
    } else if compatible.all().any(|c| NS16550.contains(&c)) {
        let shift = prop_u32(node, "reg-shift").unwrap_or(0);
        let width = prop_u32(node, "reg-io-width").unwrap_or(1);
        Kind::Ns16550 {
            shift: shift.min(4) as u8,
            width: if width == 4 { 4 } else { 1 },
        }
    } else {
        return None;
    };
    Some(Uart { kind, base })
}

fn enabled(node: &FdtNode<'_, 'static>) -> bool {
    matches!(prop_str(*node, "status"), None | Some("okay" | "ok"))
}

fn prop_str(node: FdtNode<'_, 'static>, name: &str) -> Option<&'static str> {
    node.property(name)
        .and_then(fdt::node::NodeProperty::as_str)
}

fn prop_u32(node: FdtNode<'_, 'static>, name: &str) -> Option<u32> {
    let v = node.property(name)?.value;
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}
