//! `hostile.vmm`: the guest attacks the VMM through real exits with the
//! seeded traffic of `convtest_proto::hostile` (`hostile_ops=` operations),
//! checks every answer the ABI fixes (`expect.rs`), requires an answer to
//! every host-check line the VMM must answer, and leaves its scratch area
//! private — confirmed on the platform. Run before `conv.*`, it shows the
//! VMM still serves them; the VMM's facts count what it refused.
//!
//! Aimed at convtest's own VMM only (`vmm=convtest`): under QEMU the same
//! traffic would hit QEMU's devices (port 0x92 resets a PC), which are not
//! under test. One CPU: interrupts the traffic may raise (KVM's PV IPI)
//! would reach idle CPUs.

use super::expect;
use super::harness::{T, run_steps};
use crate::arch::{Current, Platform};
use crate::report::tdiag;
use crate::suite::verdict::{Verdict, fail};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::arch::Arch;
use convtest_proto::hostcheck::{AckReader, Fed};
use convtest_proto::hostile::{HostLine, Hostile, Layout, Op, flood_byte};
use convtest_proto::plan::VmmKind;
use convtest_proto::range::MemRange;
use convtest_proto::tracker::Target;

/// The scratch area: the only RAM the traffic converts.
pub(super) const SCRATCH: u64 = 4 << 20;
/// Lines between progress diagnostics.
const PROGRESS_EVERY: u64 = 100_000;
/// How long the VMM may take to answer one host-check line.
const ACK_SECS: u64 = 30;

/// What the traffic did, for the result line and the VMM's facts to be
/// held against.
#[derive(Default)]
struct Tally {
    hypercalls: u64,
    map_gpa: u64,
    /// MAP_GPA_RANGE calls KVM refuses before any exit.
    map_gpa_kvm_refused: u64,
    /// Calls that reached the VMM and that it must refuse (its `rejected=`).
    map_gpa_vmm_refused: u64,
    map_gpa_applied: u64,
    ports: u64,
    loads: u64,
    stores: u64,
    smccc: u64,
    smccc_judged: u64,
    host_lines: u64,
    answered: u64,
    floods: u64,
    flood_bytes: u64,
    judged: u64,
}

impl T<'_> {
    pub(super) fn hostile(&mut self, scratch: Result<MemRange, String>) -> Verdict {
        if self.plan.vmm != Some(VmmKind::Convtest) {
            return Verdict::Skip(
                "hostile traffic is aimed at convtest's own VMM (plan vmm=convtest); another VMM's devices are not under test"
                    .into(),
            );
        }
        if !self.plan.host {
            return Verdict::Skip("plan has host=off: the host-check lines need a host".into());
        }
        if crate::smp::cpus() > 1 {
            return Verdict::Skip(
                "hostile traffic runs with one CPU (interrupts it may raise would reach idle CPUs)"
                    .into(),
            );
        }
        let scratch = match scratch {
            Ok(s) => MemRange::from_len(s.start, SCRATCH),
            Err(why) => return fail!("{why}"),
        };
        run_steps(|| {
            let layout = self.hostile_layout(scratch);
            let budget = self.plan.hostile_len();
            let mut tally = Tally::default();
            let mut shared = SharedGranules::new(scratch, self.win.granule);
            let vendor = hypercall_vendor();
            let t0 = Current::cycles();
            for (i, op) in Hostile::new(self.plan.seed, budget, layout.clone()).enumerate() {
                let i = i as u64;
                if i > 0 && i.is_multiple_of(PROGRESS_EVERY) {
                    tdiag!("hostile: {i} of {budget} operations, every answer as expected so far");
                }
                self.hostile_op(&op, &layout, vendor, &mut shared, &mut tally)
                    .map_err(|why| fail!("operation {i} of {budget} ({op:x?}): {why}"))?;
            }
            let cycles = Current::cycles().wrapping_sub(t0);
            self.hostile_restore()?;
            let back = self.confirm(
                scratch,
                Target::Private,
                "after the hostile traffic the scratch area must be private",
            )?;
            tdiag!(
                "hostile: seed={:#x} ops={budget} hypercalls={} map_gpa={} by_kvm={} by_vmm={} applied={} ports={} loads={} stores={} smccc={} host_lines={} answered={} floods={} flood_bytes={} answers_checked={} cycles={cycles}",
                self.plan.seed,
                tally.hypercalls,
                tally.map_gpa,
                tally.map_gpa_kvm_refused,
                tally.map_gpa_vmm_refused,
                tally.map_gpa_applied,
                tally.ports,
                tally.loads,
                tally.stores,
                tally.smccc,
                tally.host_lines,
                tally.answered,
                tally.floods,
                tally.flood_bytes,
                tally.judged + tally.smccc_judged,
            );
            Ok(format!(
                "{budget} hostile operations served; every answer the ABI fixes as expected; scratch {back}"
            ))
        })
    }

    fn hostile_layout(&self, scratch: MemRange) -> Layout {
        let arch = match Current::NAME {
            "aarch64" => Arch::Aarch64,
            _ => Arch::X86_64,
        };
        let cpus: Vec<u64> = self.boot.cpus.ids().to_vec();
        Layout {
            arch,
            ram: self.boot.ram.iter().copied().collect(),
            scratch,
            consoles: Current::console_pages().into_iter().flatten().collect(),
            // x86: PVH's identity map covers the first 4 GiB (more only
            // where RAM reaches further); arm64: every VM's IPA space
            // covers 4 GiB (the Device window goes further).
            mapped_below: 4 << 30,
            self_mpidr: cpus.first().copied().unwrap_or(0),
            cpus,
        }
    }

    fn hostile_op(
        &mut self,
        op: &Op,
        layout: &Layout,
        vendor_amd: bool,
        shared: &mut SharedGranules,
        t: &mut Tally,
    ) -> Result<(), String> {
        match *op {
            Op::Hypercall { nr, args } => {
                t.hypercalls += 1;
                let got = hypercall(vendor_amd, nr, args);
                match expect::hostile_hypercall(nr, args, &self.conv.ram()) {
                    expect::Answer::Unjudged => {}
                    expect::Answer::Refused { code, by_vmm } => {
                        t.map_gpa += 1;
                        t.judged += 1;
                        if by_vmm {
                            t.map_gpa_vmm_refused += 1;
                        } else {
                            t.map_gpa_kvm_refused += 1;
                        }
                        check(got as i64, code)?;
                    }
                    expect::Answer::Code(code) => {
                        t.judged += 1;
                        check(got as i64, code)?;
                    }
                    expect::Answer::Applied => {
                        t.map_gpa += 1;
                        t.map_gpa_applied += 1;
                        t.judged += 1;
                        check(got as i64, 0)?;
                    }
                }
            }
            Op::PortIn { port, size } => {
                t.ports += 1;
                port_in(port, size);
            }
            Op::PortOut { port, size, value } => {
                t.ports += 1;
                port_out(port, size, value);
            }
            Op::Smccc { fid, args } => {
                t.smccc += 1;
                let got = self.hostile_smccc(fid, args, layout, shared)?;
                if let Some(j) = got {
                    t.smccc_judged += 1;
                    check(j.got, j.want).map_err(|e| format!("{}: {e}", j.what))?;
                }
            }
            Op::Load { pa, size } => {
                t.loads += 1;
                // SAFETY: the generator's addresses are mapped (below
                // `mapped_below`), aligned to `size` and no RAM (its tests
                // prove it).
                unsafe { Current::stray_load(self.boot.phys_to_virt(pa) as u64, size) };
            }
            Op::Store { pa, size, value } => {
                t.stores += 1;
                // SAFETY: as for the load.
                unsafe { Current::stray_store(self.boot.phys_to_virt(pa) as u64, size, value) };
            }
            Op::HostLine(ref line) => {
                t.host_lines += 1;
                if send_host_line(line)? {
                    t.answered += 1;
                }
            }
            Op::Flood { len, seed } => {
                t.floods += 1;
                t.flood_bytes += u64::from(len);
                flood(len, seed);
            }
        }
        Ok(())
    }

    /// One SMCCC call; pKVM's MEM_SHARE / MEM_UNSHARE of scratch granules
    /// go through the converter's raw path (which keeps the ledger true)
    /// and are judged against `shared`, the suite's own model.
    fn hostile_smccc(
        &mut self,
        fid: u32,
        args: [u64; 3],
        layout: &Layout,
        shared: &mut SharedGranules,
    ) -> Result<Option<Judged>, String> {
        if let Some(to) = expect::pkvm_mem_call(fid, args, layout.scratch) {
            let got = self
                .conv
                .raw(crate::conv::RawCall::Smccc { fid, x1: args[0] })
                .map_err(|_| String::from("the converter cannot issue an SMCCC call"))?;
            let want = shared.answer(args[0], to);
            return Ok(Some(Judged {
                got,
                want,
                what: "pKVM's answer for a scratch granule",
            }));
        }
        let got = match smccc(fid, args) {
            None => return Err("no SMCCC conduit".into()),
            Some(convtest_proto::smccc::SmcccAnswer::Undefined) => {
                return Ok(None);
            }
            Some(convtest_proto::smccc::SmcccAnswer::Value(r)) => r[0] as i64,
        };
        Ok(
            expect::hostile_smccc(fid, args, layout.self_mpidr).map(|(want, what)| Judged {
                got,
                want,
                what,
            }),
        )
    }

    /// Makes the scratch area private again, whatever the traffic left,
    /// through the firmware's own reset: scattered pKVM shares may overflow
    /// its shared-range ledger, which then asks for a sweep of all RAM
    /// until a reset starts a fresh record — the tests after this one would
    /// pay for it (and `conv.reset_private` says so).
    fn hostile_restore(&mut self) -> Result<(), Verdict> {
        let rep = self
            .conv
            .reset_to_private()
            .map_err(|e| fail!("making the scratch area private again: {e}"))?;
        tdiag!(
            "hostile: after the traffic the firmware's reset made {} call(s) ({})",
            rep.calls,
            rep.method
        );
        Ok(())
    }
}

/// An answer and what the suite expected of it.
struct Judged {
    got: i64,
    want: i64,
    what: &'static str,
}

fn check(got: i64, want: i64) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("answered {got}, expected {want}"))
    }
}

/// Whether hypercalls take `vmmcall` (AMD, Hygon) rather than `vmcall`.
#[cfg(target_arch = "x86_64")]
fn hypercall_vendor() -> bool {
    let v = Current::cpuid(0, 0);
    convtest_proto::cpuid::CpuVendor::from_cpuid0(v.ebx, v.edx, v.ecx).uses_vmmcall()
}

#[cfg(not(target_arch = "x86_64"))]
fn hypercall_vendor() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn hypercall(amd: bool, nr: u64, a: [u64; 3]) -> u64 {
    if amd {
        Current::vmmcall(nr, a[0], a[1], a[2])
    } else {
        Current::vmcall(nr, a[0], a[1], a[2])
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn hypercall(_: bool, _: u64, _: [u64; 3]) -> u64 {
    u64::MAX
}

#[cfg(target_arch = "aarch64")]
fn smccc(fid: u32, a: [u64; 3]) -> Option<convtest_proto::smccc::SmcccAnswer<[u64; 4]>> {
    Current::smccc_call(fid, a[0], a[1], a[2])
}

/// x86 has no SMCCC (the traffic there makes no such call).
#[cfg(not(target_arch = "aarch64"))]
fn smccc(_: u32, _: [u64; 3]) -> Option<convtest_proto::smccc::SmcccAnswer<[u64; 4]>> {
    None
}

#[cfg(target_arch = "x86_64")]
fn port_in(port: u16, size: u8) {
    Current::port_in(port, size);
}

#[cfg(target_arch = "x86_64")]
fn port_out(port: u16, size: u8, value: u32) {
    Current::port_out(port, size, value);
}

#[cfg(not(target_arch = "x86_64"))]
fn port_in(_: u16, _: u8) {}

#[cfg(not(target_arch = "x86_64"))]
fn port_out(_: u16, _: u8, _: u32) {}

/// Prints `line` as a host-check request and, when the VMM owes an answer,
/// waits for it. Ok(true): answered.
fn send_host_line(line: &HostLine) -> Result<bool, String> {
    Current::console_write(&line.bytes);
    Current::console_write(b"\n");
    let Some(id) = line.id else {
        return Ok(false);
    };
    let hz = Current::cycle_freq().unwrap_or(10_000_000_000);
    let deadline = Current::cycles().saturating_add(hz.saturating_mul(ACK_SECS));
    let mut reader = AckReader::new(id);
    loop {
        let Some(b) = Current::console_read_byte() else {
            if Current::cycles() > deadline {
                return Err(format!(
                    "the VMM sent no answer to host-check line {id} within {ACK_SECS} s: it must answer every request line, however malformed"
                ));
            }
            core::hint::spin_loop();
            continue;
        };
        if let Fed::Ack(_) = reader.feed(b) {
            return Ok(true);
        }
    }
}

/// `len` seeded bytes, no line break among them, then one.
fn flood(len: u32, seed: u64) {
    let mut buf = [0u8; 256];
    let mut i = 0u64;
    Current::console_write(b"# hostile-flood: ");
    while i < u64::from(len) {
        let n = (u64::from(len) - i).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = flood_byte(seed, i + k as u64);
        }
        Current::console_write(&buf[..n]);
        i += n as u64;
    }
    Current::console_write(b"\n");
}

/// The suite's model of which scratch granules pKVM holds shared, to judge
/// its answers to the traffic's MEM_SHARE / MEM_UNSHARE.
pub(super) struct SharedGranules {
    area: MemRange,
    granule: u64,
    shared: Vec<bool>,
}

impl SharedGranules {
    fn new(area: MemRange, granule: u64) -> Self {
        SharedGranules {
            area,
            granule,
            shared: alloc::vec![false; (area.len() / granule) as usize],
        }
    }

    /// What pKVM must answer to converting the granule at `ipa` to `to`
    /// (0, or INVALID_PARAMETER for an unaligned IPA or a granule already
    /// there); the model follows a success.
    fn answer(&mut self, ipa: u64, to: Target) -> i64 {
        if !ipa.is_multiple_of(self.granule) {
            return expect::INVALID_PARAMETER;
        }
        let i = ((ipa - self.area.start) / self.granule) as usize;
        let want_shared = to == Target::Shared;
        match self.shared.get_mut(i) {
            Some(s) if *s != want_shared => {
                *s = want_shared;
                0
            }
            _ => expect::INVALID_PARAMETER,
        }
    }
}
