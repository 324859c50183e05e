//! `snp`: conversion in an SEV-SNP guest. To shared: PVALIDATE-rescind
//! each page, then one GHCB MSR page state change per 4 KiB page; to
//! private: the page state changes, then PVALIDATE each page (2 MiB where
//! the RMP allows). The order, the 2 MiB → 4 KiB fallback, the encodings
//! and the meaning of CF=1 are `convtest_proto::snp`'s; this file executes
//! their calls with the arch layer's traps. PVALIDATE with CF=1 inside a
//! conversion means someone else changed the page: the run ends there,
//! loudly, and the call is never retried. Shared pages are reached through
//! a mapping without the C-bit (the suite's shared view).
//!
//! Never run in a real SNP guest: the machines are proven against a model
//! in `cargo test` (proto/src/snp/tests.rs).

use super::gate::Gate;
use super::seam::{
    Calls, ConvError, ConversionAbi, ErrKind, Issued, RawCall, ResetOutcome, ResetReport, WrongAbi,
};
use super::view::SharedView;
use crate::arch::{Current, Platform};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use convtest_proto::cpuid::SEV_LEAF;
use convtest_proto::range::MemRange;
use convtest_proto::size_walk::SIZE_4K;
use convtest_proto::snp::cbit::{c_bit_mask, c_bit_position};
use convtest_proto::snp::convert::{SnpAnswer, SnpCall, SnpConversion};
use convtest_proto::snp::ghcb::{PSC_REQ, PscOp, psc_request, psc_request_raw, psc_response};
use convtest_proto::snp::pvalidate::PvalidateReport;
use convtest_proto::tracker::Target;
use core::cell::Cell;

const CALL: &str = "SNP PVALIDATE + page state change";

#[derive(Clone, Copy)]
struct Traps {
    gate: Gate,
}

impl Traps {
    fn run(&self, mut c: SnpConversion, range: MemRange) -> Result<PvalidateReport, ConvError> {
        while let Some(call) = c.call() {
            let answer = match call {
                SnpCall::Pvalidate(p) => {
                    let (rax, cf) = Current::pvalidate(p.gpa, p.size, p.validate);
                    SnpAnswer::Pvalidate { rax, cf }
                }
                SnpCall::Psc { gfn, op } => SnpAnswer::Psc {
                    msr: Current::ghcb_msr_exchange(psc_request(gfn, op)),
                },
            };
            if let Err(e) = c.answer(answer) {
                if e.is_possible_attack() {
                    crate::report::crash(
                        format_args!("SEV-SNP conversion of {range}: {e}; the run ends here"),
                        None,
                    );
                }
                return Err(ConvError {
                    call: CALL,
                    id: PSC_REQ,
                    range,
                    done: c.done(),
                    rest_unknown: true,
                    kind: ErrKind::Snp(e),
                });
            }
        }
        Ok(c.pvalidate_report())
    }

    fn convert(&self, range: MemRange, to: Target) -> Result<PvalidateReport, ConvError> {
        if self.gate.skips(Some(to)) {
            return Ok(PvalidateReport::default());
        }
        self.run(SnpConversion::new(range, to), range)
    }
}

impl Calls for Traps {
    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.convert(range, to).map(drop)
    }
}

pub struct Snp {
    traps: Traps,
    view: SharedView,
    /// PVALIDATE counts not yet reported (a cell: `issue` takes `&self`).
    unreported: Cell<PvalidateReport>,
}

fn add(to: &Cell<PvalidateReport>, r: PvalidateReport) {
    let mut all = to.get();
    all.changed_2m += r.changed_2m;
    all.changed_4k += r.changed_4k;
    all.unchanged_4k += r.unchanged_4k;
    all.splits += r.splits;
    all.calls += r.calls;
    to.set(all);
}

impl Snp {
    /// With the shared view (RAM below `ram_end` mapped without the C-bit,
    /// whose position CPUID 0x8000001F EBX[5:0] gives).
    pub fn new(gate: Gate, ram_end: u64) -> Result<Snp, &'static str> {
        let c_bit = c_bit_position(Current::cpuid(SEV_LEAF, 0).ebx)
            .ok_or("CPUID 0x8000001F EBX names no usable C-bit position")?;
        if ram_end > c_bit_mask(c_bit) {
            return Err("RAM reaches the C-bit: its addresses cannot be mapped shared");
        }
        let offset = Current::map_alias(ram_end, 0)
            .ok_or("no free page-table slot for the C-bit-clear mapping of RAM")?;
        Ok(Snp {
            traps: Traps { gate },
            view: SharedView::at_offset(offset),
            unreported: Cell::new(PvalidateReport::default()),
        })
    }

    fn convert(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        let r = self.traps.convert(range, to)?;
        add(&self.unreported, r);
        Ok(())
    }
}

impl ConversionAbi for Snp {
    fn name(&self) -> &'static str {
        "snp"
    }

    fn granule(&self) -> u64 {
        SIZE_4K
    }

    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.convert(range, to)
    }

    fn calls(&self) -> Box<dyn Calls> {
        Box::new(self.traps)
    }

    /// Page state change to private of every page and the PVALIDATE probe:
    /// "already validated" is what a page that never left answers (counted);
    /// the GHCB page, which the #VC handler shares, is left out.
    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetOutcome, ConvError> {
        let mut report = ResetReport {
            method: "psc-private+pvalidate-probe",
            ..ResetReport::default()
        };
        let ghcb = Current::ghcb_gpa();
        for &r in ram {
            let mut parts = Vec::new();
            match ghcb.filter(|&g| r.contains(g)) {
                Some(g) => {
                    parts.push(MemRange::new(r.start, g));
                    parts.push(MemRange::new(g + SIZE_4K, r.end));
                }
                None => parts.push(r),
            }
            for p in parts.into_iter().filter(|p| !p.is_empty()) {
                let c = self.traps.run(SnpConversion::reset(p), p)?;
                report.calls += p.len() / SIZE_4K + c.calls;
                report.pages += p.len() / SIZE_4K;
                add(&self.unreported, c);
            }
            report.ranges += 1;
        }
        Ok(ResetOutcome {
            report,
            unknown: Vec::new(),
        })
    }

    fn raw(&mut self, call: RawCall) -> Result<i64, WrongAbi> {
        match call {
            RawCall::SnpPsc { gfn, op } => {
                Ok(Current::ghcb_msr_exchange(psc_request_raw(gfn, op)) as i64)
            }
            _ => Err(WrongAbi),
        }
    }

    /// The page state changes, one per 4 KiB page (the PVALIDATEs around
    /// them are not counted here).
    fn calls_for(&self, range: MemRange, to: Target) -> Issued {
        let op = match to {
            Target::Shared => PscOp::Shared,
            Target::Private => PscOp::Private,
        } as u8;
        Issued {
            count: range.len() / SIZE_4K,
            first: RawCall::SnpPsc {
                gfn: range.start / SIZE_4K,
                op,
            },
            last: RawCall::SnpPsc {
                gfn: (range.end - SIZE_4K) / SIZE_4K,
                op,
            },
        }
    }

    fn make_private(&mut self, range: MemRange) -> Result<(), ConvError> {
        let c = self.traps.run(SnpConversion::reset(range), range)?;
        add(&self.unreported, c);
        Ok(())
    }

    /// A page state change to private of a private page: the hypervisor
    /// finds nothing to change.
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        let gfn = page.start / SIZE_4K;
        psc_response(Current::ghcb_msr_exchange(psc_request(gfn, PscOp::Private))).map_err(
            |error| ConvError {
                call: CALL,
                id: PSC_REQ,
                range: page,
                done: 0,
                rest_unknown: false,
                kind: ErrKind::Snp(convtest_proto::snp::convert::SnpError::Psc {
                    gfn,
                    op: PscOp::Private,
                    error,
                }),
            },
        )
    }

    fn noop_op(&self) -> &'static str {
        "noop_psc_private"
    }

    fn shared_view(&self) -> Option<SharedView> {
        Some(self.view)
    }

    fn take_note(&mut self) -> Option<String> {
        let r = self.unreported.take();
        (r.calls > 0).then(|| {
            format!(
                "snp: PVALIDATE calls={} changed 2M={} 4K={} already-validated 4K pages={} 2M split into 4K={}",
                r.calls, r.changed_2m, r.changed_4k, r.unchanged_4k, r.splits
            )
        })
    }
}
