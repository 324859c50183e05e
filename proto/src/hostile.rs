//! The hostile guest's traffic (`hostile.vmm`, plan `hostile_ops=`): a
//! seeded, bounded sequence of operations aimed at the VMM through real KVM
//! exits — random hypercalls (MAP_GPA_RANGE with every edge the ABI allows
//! and many it does not), port I/O swept over every port, loads and stores
//! to addresses that are not RAM, host-check lines that are malformed, too
//! long, binary or out of order, console floods without newlines, and on
//! arm64 random SMCCC calls (PSCI among them). The VMM must answer all of
//! it without dying, hanging or confusing the verdict.
//!
//! What the guest needs to go on living is kept out of reach, and the
//! tests below prove it for every operation of long seeded runs: the
//! ports that end the run (isa-debug-exit 0xf4, the reset register 0xcf9)
//! and the guest's own console (COM1 0x3f8–0x3ff, the arm64 UART page); any
//! conversion the platform would carry out (a well-formed MAP_GPA_RANGE or
//! pKVM MEM_SHARE/MEM_UNSHARE inside RAM) lies inside the test's scratch
//! area; pKVM MEM_SHARE/MEM_UNSHARE of an IPA outside RAM, which wedges the
//! vCPU for good (docs/lanes.md), is never made (those calls carry a
//! non-zero x2, which pKVM refuses first); KVM_HC_CLOCK_PAIRING writes
//! only into the scratch area; PSCI calls that stop, suspend or reset a CPU
//! or the system, and CPU_ON of a CPU that exists, are never made.
//! Loads and stores go to addresses the guest maps but no RAM is behind.

use crate::arch::Arch;
use crate::hostcheck::REQ_PREFIX;
use crate::map_gpa::{ATTR_ENC_STATUS, KVM_HC_MAP_GPA_RANGE, PAGE_4K};
use crate::prng::SplitMix64;
use crate::range::MemRange;
use alloc::format;
use alloc::vec::Vec;

/// isa-debug-exit: any write ends the run.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// The PC reset control register.
pub const RESET_PORT: u16 = 0xcf9;
/// COM1, the guest's console (its receive FIFO carries the host's acks).
pub const COM1: MemRange = MemRange {
    start: 0x3f8,
    end: 0x400,
};
/// KVM's x86 hypercall numbers (include/uapi/linux/kvm_para.h).
pub const KVM_HC_VAPIC_POLL_IRQ: u64 = 1;
pub const KVM_HC_KICK_CPU: u64 = 5;
pub const KVM_HC_CLOCK_PAIRING: u64 = 9;
pub const KVM_HC_SEND_IPI: u64 = 10;
pub const KVM_HC_SCHED_YIELD: u64 = 11;

/// PSCI function numbers (the low byte of 0x84000000 / 0xC4000000 ids)
/// that stop, suspend or reset a CPU or the system.
pub const PSCI_NEVER: [u32; 9] = [
    0x01, // CPU_SUSPEND
    0x02, // CPU_OFF
    0x08, // SYSTEM_OFF
    0x09, // SYSTEM_RESET
    0x0b, // CPU_FREEZE
    0x0c, // CPU_DEFAULT_SUSPEND
    0x0e, // SYSTEM_SUSPEND
    0x12, // SYSTEM_RESET2
    0x15, // SYSTEM_OFF2
];
/// PSCI CPU_ON's function number.
pub const PSCI_CPU_ON: u32 = 0x03;
/// The KVM vendor hypervisor service's MEM_SHARE / MEM_UNSHARE numbers.
pub const KVM_MEM_SHARE: u32 = 3;
pub const KVM_MEM_UNSHARE: u32 = 4;

/// Where the guest is, for the generator to stay out of its way.
#[derive(Clone, Debug)]
pub struct Layout {
    pub arch: Arch,
    /// Guest RAM.
    pub ram: Vec<MemRange>,
    /// The only RAM a hostile conversion may touch (whole 4 KiB pages).
    pub scratch: MemRange,
    /// MMIO the guest lives on (arm64: the UART's page, the word
    /// console's).
    pub consoles: Vec<MemRange>,
    /// Addresses below this are mapped by the guest (x86: its identity map;
    /// arm64: the Device window).
    pub mapped_below: u64,
    /// arm64: MPIDRs of the CPUs that exist (CPU_ON never names another one's).
    pub cpus: Vec<u64>,
    /// arm64: this CPU's MPIDR (CPU_ON of it answers ALREADY_ON).
    pub self_mpidr: u64,
}

impl Layout {
    fn in_ram(&self, r: MemRange) -> bool {
        self.ram.iter().any(|m| m.overlaps(&r))
    }

    fn ram_end(&self) -> u64 {
        self.ram.iter().map(|r| r.end).max().unwrap_or(0)
    }
}

/// A host-check line the VMM must answer (`id`: the ack it must send) or
/// may ignore (`None`: the line is no request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLine {
    pub bytes: Vec<u8>,
    pub id: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// x86: `vmcall`/`vmmcall` with rax = `nr`, rbx, rcx, rdx = `args`.
    Hypercall { nr: u64, args: [u64; 3] },
    /// x86: `out` of `size` bytes.
    PortOut { port: u16, size: u8, value: u32 },
    /// x86: `in` of `size` bytes.
    PortIn { port: u16, size: u8 },
    /// arm64: one SMCCC call over the conduit, x1..x3 = `args`.
    Smccc { fid: u32, args: [u64; 3] },
    /// A load of `size` bytes (1, 2, 4, 8; aligned) where no RAM is.
    Load { pa: u64, size: u8 },
    /// A store of `size` bytes where no RAM is.
    Store { pa: u64, size: u8, value: u64 },
    /// A line printed as a host-check request.
    HostLine(HostLine),
    /// `len` seeded bytes on the console without a line break, then one.
    Flood { len: u32, seed: u64 },
}

/// Kinds of host-check lines (`Hostile::host_line`).
pub const HOST_LINE_KINDS: u64 = 7;
/// One operation in this many is a host-check line (each costs a console
/// round trip: tens of ms nested on x86, hundreds on pKVM).
pub const HOST_LINE_ONE_IN: u64 = 2000;
/// One operation in this many is a console flood.
pub const FLOOD_ONE_IN: u64 = 4000;

pub struct Hostile {
    rng: SplitMix64,
    layout: Layout,
    /// The next port of the sweep (every port is visited in turn).
    port: u32,
    index: u64,
    budget: u64,
}

impl Hostile {
    /// `budget` operations from `seed` over `layout`.
    pub fn new(seed: u64, budget: u64, layout: Layout) -> Hostile {
        let mut rng = SplitMix64::fork(seed, "hostile");
        let port = (rng.next_u64() & 0xffff) as u32;
        Hostile {
            rng,
            layout,
            port,
            index: 0,
            budget,
        }
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n.max(1))
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    fn op(&mut self) -> Op {
        // Every kind of host line and flood once, first: a short budget
        // still sends each.
        if self.index <= HOST_LINE_KINDS {
            let kind = self.index - 1;
            return Op::HostLine(self.host_line(kind));
        }
        let floods = if self.budget >= 100_000 { 3 } else { 2 };
        if self.index <= HOST_LINE_KINDS + floods {
            let size = self.index - HOST_LINE_KINDS - 1;
            return self.flood(size);
        }
        let n = self.rng.next_u64();
        if n.is_multiple_of(HOST_LINE_ONE_IN) {
            let kind = self.below(HOST_LINE_KINDS);
            return Op::HostLine(self.host_line(kind));
        }
        if (n / HOST_LINE_ONE_IN).is_multiple_of(FLOOD_ONE_IN) {
            let size = u64::from(self.below(8) == 0);
            return self.flood(size);
        }
        match (self.layout.arch, self.below(3)) {
            (Arch::X86_64, 0) => self.hypercall(),
            (Arch::X86_64, 1) => self.port_io(),
            (Arch::Aarch64, 0 | 1) => self.smccc(),
            _ => self.stray_access(),
        }
    }

    // ---- x86 hypercalls ------------------------------------------------

    fn hypercall(&mut self) -> Op {
        match self.below(10) {
            0..=3 => {
                let args = self.map_gpa_args();
                Op::Hypercall {
                    nr: KVM_HC_MAP_GPA_RANGE,
                    args,
                }
            }
            4..=5 => {
                let nr = self.pick(&[
                    KVM_HC_VAPIC_POLL_IRQ,
                    KVM_HC_KICK_CPU,
                    KVM_HC_CLOCK_PAIRING,
                    KVM_HC_SEND_IPI,
                    KVM_HC_SCHED_YIELD,
                ]);
                let mut args = [self.wild(), self.wild(), self.wild()];
                if nr == KVM_HC_CLOCK_PAIRING {
                    // KVM writes its answer to the guest page at a0.
                    args[0] = self.scratch_page().start;
                }
                Op::Hypercall { nr, args }
            }
            _ => {
                let mut nr = self.wild();
                if nr == KVM_HC_MAP_GPA_RANGE || nr == KVM_HC_CLOCK_PAIRING {
                    nr ^= 1 << 40;
                }
                Op::Hypercall {
                    nr,
                    args: [self.wild(), self.wild(), self.wild()],
                }
            }
        }
    }

    /// A value from a mix of edges and noise.
    fn wild(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => 1 << self.below(64),
            3 => (1 << self.below(64)) - 1,
            4 => self.below(4096),
            _ => self.rng.next_u64(),
        }
    }

    fn scratch_page(&mut self) -> MemRange {
        let pages = (self.layout.scratch.len() / PAGE_4K).max(1);
        MemRange::from_len(
            self.layout.scratch.start + self.below(pages) * PAGE_4K,
            PAGE_4K,
        )
    }

    /// gpa, npages, attrs: edges the ABI allows and many it does not. A
    /// request the VMM would carry out (aligned, non-empty, no overflow,
    /// known attribute bits, inside RAM) is moved into the scratch area.
    fn map_gpa_args(&mut self) -> [u64; 3] {
        let ram_end = self.layout.ram_end();
        let gpa = match self.below(9) {
            0 => 0,
            1 => self.scratch_page().start + 8 * (1 + self.below(511)),
            2 => self.scratch_page().start,
            3 => ram_end,
            4 => ram_end.saturating_sub(PAGE_4K),
            5 => self.below(1 << 52) & !(PAGE_4K - 1),
            6 => !(PAGE_4K - 1),
            7 => self.layout.scratch.start,
            _ => self.rng.next_u64(),
        };
        let npages = match self.below(8) {
            0 => 0,
            1 => 1,
            2 => 512,
            3 => u64::MAX,
            4 => 1 << 40,
            5 => u64::MAX / PAGE_4K,
            _ => 1 + self.below(64),
        };
        let attrs = match self.below(6) {
            0 => 0,
            1 => ATTR_ENC_STATUS,
            2 => self.below(3) | self.pick(&[0, ATTR_ENC_STATUS]),
            3 => 3 | ATTR_ENC_STATUS,
            4 => 1 << (5 + self.below(59)),
            _ => self.rng.next_u64(),
        };
        let mut a = [gpa, npages, attrs];
        if let Some(r) = applies(a)
            && self.layout.in_ram(r)
            && !self.layout.scratch.covers(&r)
        {
            let page = self.scratch_page();
            let room = (self.layout.scratch.end - page.start) / PAGE_4K;
            a[0] = page.start;
            a[1] = a[1].clamp(1, room.max(1));
        }
        a
    }

    // ---- x86 port I/O ----------------------------------------------------

    fn port_io(&mut self) -> Op {
        let port = loop {
            let p = (self.port & 0xffff) as u16;
            self.port = self.port.wrapping_add(1);
            if !port_is_lifeline(p) {
                break p;
            }
        };
        let size = self.pick(&[1u8, 2, 4]);
        if self.below(2) == 0 {
            Op::PortIn { port, size }
        } else {
            Op::PortOut {
                port,
                size,
                value: self.rng.next_u64() as u32,
            }
        }
    }

    // ---- arm64 SMCCC -----------------------------------------------------

    fn smccc(&mut self) -> Op {
        let fast64 = self.pick(&[0x8000_0000u32, 0xc000_0000]);
        let (fid, mut args) = match self.below(8) {
            // PSCI.
            0..=2 => {
                let f = loop {
                    let f = self.below(0x20) as u32;
                    if !PSCI_NEVER.contains(&f) {
                        break f;
                    }
                };
                (
                    fast64 | 0x0400_0000 | f,
                    [self.wild(), self.wild(), self.wild()],
                )
            }
            // The SMCCC architecture calls (VERSION, ARCH_FEATURES, the
            // workarounds, SOC_ID) and a random one of the range.
            3 => {
                let f = self.pick(&[0x0000, 0x0001, 0x0002, 0x3fff, 0x7fff, 0x8000]);
                let f = if self.below(4) == 0 {
                    self.below(0x10000) as u32
                } else {
                    f
                };
                (0x8000_0000 | f, [self.wild(), self.wild(), self.wild()])
            }
            // The KVM vendor hypervisor service, pKVM's calls among them.
            4..=5 => {
                let f = self.below(64) as u32;
                (
                    fast64 | 0x0600_0000 | f,
                    [self.wild(), self.wild(), self.wild()],
                )
            }
            // Anything: other owners, yielding calls, SMC32.
            _ => (
                self.rng.next_u64() as u32,
                [self.wild(), self.wild(), self.wild()],
            ),
        };
        let number = fid & 0xffff;
        let owner = (fid >> 24) & 0x3f;
        if owner == 4 && number == PSCI_CPU_ON {
            // CPU_ON of this CPU (ALREADY_ON) or of one that does not exist.
            args[0] = if self.below(2) == 0 {
                self.layout.self_mpidr
            } else {
                loop {
                    let m = self.wild() & 0xff_00ff_ffff;
                    if !self.layout.cpus.contains(&m) || m == self.layout.self_mpidr {
                        break m;
                    }
                }
            };
        }
        if owner == 4 && PSCI_NEVER.contains(&number) {
            // Another owner's call never matches these; a random fid can.
            return Op::Smccc {
                fid: fid ^ 0x0100_0000,
                args,
            };
        }
        if owner == 6 && (number == KVM_MEM_SHARE || number == KVM_MEM_UNSHARE) {
            if self.below(2) == 0 {
                // Inside the scratch area, aligned or not, x2/x3 zero: pKVM
                // converts (or refuses) a granule of ours.
                let page = self.scratch_page().start;
                args = [page + self.pick(&[0, 0, 8, 0x800]), 0, 0];
            } else if args[1] == 0 && args[2] == 0 {
                // Anywhere else, but refused for x2 before the IPA is read.
                args[1] = 1;
            }
        }
        Op::Smccc { fid, args }
    }

    // ---- loads and stores where no RAM is ----------------------------------

    fn stray_access(&mut self) -> Op {
        let size = self.pick(&[1u8, 2, 4, 8]);
        let pa = loop {
            let base = match (self.layout.arch, self.below(6)) {
                (Arch::X86_64, 0) => 0xfee0_0000 + self.below(0x1000),
                (Arch::X86_64, 1) => 0xfec0_0000 + self.below(0x1000),
                (Arch::X86_64, 2) => 0xa0000 + self.below(0x60000),
                (_, 3) => self.layout.ram_end() + self.below(1 << 20),
                (Arch::Aarch64, 0..=2) => {
                    self.below(self.layout.ram.first().map_or(0, |r| r.start))
                }
                _ => self.below(self.layout.mapped_below),
            };
            let pa = base & !u64::from(size - 1);
            let r = MemRange::from_len(pa, u64::from(size));
            if pa < self.layout.mapped_below
                && !self.layout.in_ram(r)
                && !self.layout.consoles.iter().any(|c| c.overlaps(&r))
            {
                break pa;
            }
        };
        if self.below(2) == 0 {
            Op::Load { pa, size }
        } else {
            Op::Store {
                pa,
                size,
                value: self.rng.next_u64(),
            }
        }
    }

    // ---- the console -----------------------------------------------------

    /// Lines the VMM's console tap must answer (or ignore) without choking,
    /// of kind `kind` (below [`HOST_LINE_KINDS`]).
    fn host_line(&mut self, kind: u64) -> HostLine {
        let id = self.pick(&[0u32, 1, u32::MAX, 7, 0x8000_0000]) ^ (self.below(2) as u32 * 3);
        let mut bytes: Vec<u8> = format!("{REQ_PREFIX}{id} ").into_bytes();
        let due = Some(id);
        match kind {
            // An unknown verb.
            0 => bytes.extend_from_slice(b"dance 0x1 0x2"),
            // Binary: every byte but the line ends.
            1 => {
                for _ in 0..(1 + self.below(300)) {
                    let b = (self.rng.next_u64() & 0xff) as u8;
                    bytes.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
                }
            }
            // Longer than the VMM keeps (512 bytes): cut, still answered.
            2 => {
                bytes.extend_from_slice(b"scan 0x5");
                bytes.resize(bytes.len() + 600 + self.below(2000) as usize, b'7');
            }
            // Verbs with values the host must refuse, not crash on.
            3 => bytes.extend_from_slice(
                format!(
                    "verify {:#x} {:#x} {:#x}",
                    self.wild(),
                    self.wild(),
                    self.wild()
                )
                .as_bytes(),
            ),
            4 => bytes.extend_from_slice(
                format!(
                    "noread {:#x} {:#x} {:#x}",
                    self.wild(),
                    self.wild(),
                    self.wild()
                )
                .as_bytes(),
            ),
            5 => bytes.extend_from_slice(b"verify 0x1000"),
            // No request at all: a prefix without an id, or a bad one.
            _ => {
                let junk: &[u8] = self.pick(&[
                    &b"# convtest-req \x01\x02"[..],
                    b"# convtest-req x scan 0x1",
                    b"# convtest-req",
                ]);
                return HostLine {
                    bytes: junk.to_vec(),
                    id: None,
                };
            }
        }
        HostLine { bytes, id: due }
    }

    /// A flood past the VMM tap's line (512 bytes, size 0), the runner's
    /// kept line (4096, size 1) or the nested splitter's piece (64 KiB,
    /// size 2: once, in the prologue of a budget of 1e5 or more — at about
    /// a millisecond a byte on pKVM, more would dominate the run).
    fn flood(&mut self, size: u64) -> Op {
        Op::Flood {
            len: [600, 5_000, 70_000][size.min(2) as usize],
            seed: self.rng.next_u64(),
        }
    }
}

impl Iterator for Hostile {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        if self.index >= self.budget {
            return None;
        }
        self.index += 1;
        Some(self.op())
    }
}

/// The range a MAP_GPA_RANGE with these arguments converts if a VMM that
/// knows only the ABI's bits carries it out: aligned, non-empty, no
/// overflow, known attribute bits with a page-size hint up to 1G.
pub fn applies(args: [u64; 3]) -> Option<MemRange> {
    let [gpa, npages, attrs] = args;
    let known = 0xf | ATTR_ENC_STATUS;
    if gpa % PAGE_4K != 0 || npages == 0 || attrs & !known != 0 || attrs & 0xf > 2 {
        return None;
    }
    let end = npages
        .checked_mul(PAGE_4K)
        .and_then(|len| gpa.checked_add(len))?;
    Some(MemRange::new(gpa, end))
}

/// Ports the hostile traffic never touches: they end the run or carry the
/// guest's console.
pub fn port_is_lifeline(port: u16) -> bool {
    port == DEBUG_EXIT_PORT || port == RESET_PORT || COM1.contains(u64::from(port))
}

/// The flood's bytes: seeded, any value but a line break; escape
/// sequences and control bytes included.
pub fn flood_byte(seed: u64, i: u64) -> u8 {
    let b = (crate::prng::mix(seed ^ i) & 0xff) as u8;
    if b == b'\n' || b == b'\r' { b'~' } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    const MIB: u64 = 1 << 20;

    fn x86() -> Layout {
        Layout {
            arch: Arch::X86_64,
            ram: vec![MemRange::new(0, 0xa0000), MemRange::new(MIB, 256 * MIB)],
            scratch: MemRange::new(64 * MIB, 68 * MIB),
            consoles: Vec::new(),
            mapped_below: 4 << 30,
            cpus: vec![],
            self_mpidr: 0,
        }
    }

    fn arm() -> Layout {
        Layout {
            arch: Arch::Aarch64,
            ram: vec![MemRange::new(0x8000_0000, 0x9000_0000)],
            scratch: MemRange::new(0x8400_0000, 0x8440_0000),
            consoles: vec![
                MemRange::new(0x900_0000, 0x900_1000),
                MemRange::new(0x900_1000, 0x900_2000),
            ],
            mapped_below: 512 << 30,
            cpus: vec![0x8000_0000, 0x8000_0001],
            self_mpidr: 0x8000_0000,
        }
    }

    /// Every operation of a long seeded run keeps off the guest's lifelines.
    #[test]
    fn no_operation_touches_what_the_guest_lives_on() {
        for (layout, seed) in [(x86(), 1), (x86(), 2), (arm(), 3), (arm(), 4)] {
            let mut seen = [0u64; 8];
            let mut ports = std::collections::HashSet::new();
            for op in Hostile::new(seed, 200_000, layout.clone()) {
                match &op {
                    Op::Hypercall { nr, args } => {
                        seen[0] += 1;
                        if *nr == KVM_HC_MAP_GPA_RANGE
                            && let Some(r) = applies(*args)
                            && layout.in_ram(r)
                        {
                            assert!(layout.scratch.covers(&r), "{op:x?}");
                        }
                        if *nr == KVM_HC_CLOCK_PAIRING {
                            assert!(layout.scratch.contains(args[0]), "{op:x?}");
                        }
                    }
                    Op::PortIn { port, .. } | Op::PortOut { port, .. } => {
                        seen[1] += 1;
                        assert!(!port_is_lifeline(*port), "{op:x?}");
                        ports.insert(*port);
                    }
                    Op::Smccc { fid, args } => {
                        seen[2] += 1;
                        let (owner, number) = ((fid >> 24) & 0x3f, fid & 0xffff);
                        let fast = fid & 0x8000_0000 != 0;
                        if fast && owner == 4 {
                            assert!(!PSCI_NEVER.contains(&number), "{op:x?}");
                            if number == PSCI_CPU_ON {
                                assert!(
                                    args[0] == layout.self_mpidr || !layout.cpus.contains(&args[0]),
                                    "{op:x?}"
                                );
                            }
                        }
                        if fast
                            && owner == 6
                            && (number == KVM_MEM_SHARE || number == KVM_MEM_UNSHARE)
                            && args[1] == 0
                            && args[2] == 0
                        {
                            assert!(layout.scratch.contains(args[0]), "{op:x?}");
                        }
                    }
                    Op::Load { pa, size } | Op::Store { pa, size, .. } => {
                        seen[3] += 1;
                        let r = MemRange::from_len(*pa, u64::from(*size));
                        assert!(!layout.in_ram(r) && *pa < layout.mapped_below, "{op:x?}");
                        assert!(pa % u64::from(*size) == 0, "aligned: {op:x?}");
                        assert!(!layout.consoles.iter().any(|c| c.overlaps(&r)), "{op:x?}");
                    }
                    Op::HostLine(l) => {
                        seen[4] += 1;
                        assert!(!l.bytes.contains(&b'\n') && !l.bytes.contains(&b'\r'));
                    }
                    Op::Flood { len, seed } => {
                        seen[5] += 1;
                        assert!(*len >= 600);
                        assert!(
                            (0..u64::from(*len))
                                .all(|i| !matches!(flood_byte(*seed, i), b'\n' | b'\r'))
                        );
                    }
                }
            }
            // Every kind ran, and the sweep reached every port but the lifelines.
            match layout.arch {
                Arch::X86_64 => {
                    assert!(
                        seen[0] > 10_000 && seen[1] > 10_000 && seen[3] > 10_000,
                        "{seen:?}"
                    );
                    assert_eq!(ports.len(), 65536 - 10, "every port");
                }
                Arch::Aarch64 => assert!(seen[2] > 10_000 && seen[3] > 10_000, "{seen:?}"),
            }
            assert!(seen[4] > 20 && seen[5] > 10, "{seen:?}");
        }
    }

    #[test]
    fn a_short_budget_still_sends_every_kind_of_line_and_flood() {
        let ops: Vec<Op> = Hostile::new(5, 20, x86()).collect();
        let lines: Vec<&HostLine> = ops
            .iter()
            .filter_map(|o| match o {
                Op::HostLine(l) => Some(l),
                _ => None,
            })
            .collect();
        assert!(lines.len() >= HOST_LINE_KINDS as usize);
        assert!(lines.iter().any(|l| l.bytes.len() > 512), "too long");
        assert!(lines.iter().any(|l| l.id.is_none()), "no request");
        assert!(
            lines.iter().any(|l| l.bytes.iter().any(|b| !b.is_ascii())),
            "binary"
        );
        let floods: Vec<u32> = ops
            .iter()
            .filter_map(|o| match o {
                Op::Flood { len, .. } => Some(*len),
                _ => None,
            })
            .collect();
        assert_eq!(floods, [600, 5000]);
    }

    #[test]
    fn the_same_seed_is_the_same_traffic() {
        let a: Vec<Op> = Hostile::new(9, 500, x86()).collect();
        let b: Vec<Op> = Hostile::new(9, 500, x86()).collect();
        assert_eq!(a.len(), 500);
        assert_eq!(a, b);
        let c: Vec<Op> = Hostile::new(10, 500, x86()).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn what_a_vmm_would_carry_out() {
        assert_eq!(applies([0x1000, 2, 0]), Some(MemRange::new(0x1000, 0x3000)));
        assert_eq!(
            applies([0x1000, 2, ATTR_ENC_STATUS | 1]),
            Some(MemRange::new(0x1000, 0x3000))
        );
        for bad in [
            [0x1008, 1, 0],
            [0x1000, 0, 0],
            [0x1000, u64::MAX, 0],
            [0x1000, 1, 3],
            [0x1000, 1, 1 << 5],
            [!0xfff, 2, 0],
        ] {
            assert_eq!(applies(bad), None, "{bad:x?}");
        }
    }
}
