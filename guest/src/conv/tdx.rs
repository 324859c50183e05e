//! `tdx`: conversion in a TDX trust domain. To shared, MapGPA of the
//! range's shared alias; to private, MapGPA of the private GPAs and then
//! `TDG.MEM.PAGE.ACCEPT` of every page. The walk, its RETRY rule and the
//! accept plan are `convtest_proto::tdx`'s state machines; this file
//! executes their calls with the arch layer's traps (the `tdx-guest` crate)
//! and keeps the count of pages the TDX module called already accepted,
//! which is reported, not hidden. Shared pages are reached through a second
//! mapping of RAM with the shared bit set (the suite's shared view).
//!
//! Never run in a real TD: the machines are proven against a model in
//! `cargo test` (proto/src/tdx/tests.rs).

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
use convtest_proto::range::MemRange;
use convtest_proto::size_walk::SIZE_4K;
use convtest_proto::tdx::abi::TDVMCALL_MAP_GPA;
use convtest_proto::tdx::accept::AcceptReport;
use convtest_proto::tdx::convert::{TdxAnswer, TdxCall, TdxConversion};
use convtest_proto::tracker::Target;
use core::cell::Cell;

const CALL: &str = "TDX MapGPA + ACCEPT";

/// The calls alone: the shared bit and the gate (every CPU may hold one).
#[derive(Clone, Copy)]
struct Traps {
    shared_bit: u64,
    gate: Gate,
}

impl Traps {
    /// Runs one conversion to its end; what its accepts counted.
    fn convert(&self, range: MemRange, to: Target) -> Result<AcceptReport, ConvError> {
        if self.gate.skips(Some(to)) {
            return Ok(AcceptReport::default());
        }
        let mut c = TdxConversion::new(range, to, self.shared_bit);
        while let Some(call) = c.call() {
            let answer = match call {
                TdxCall::MapGpa(m) => {
                    let (status, r11) = Current::tdx_map_gpa(m.gpa, m.size);
                    TdxAnswer::MapGpa { status, r11 }
                }
                TdxCall::Accept(a) => TdxAnswer::Accept(Current::tdx_accept(a.gpa, a.size)),
            };
            if let Err(e) = c.answer(answer) {
                return Err(ConvError {
                    call: CALL,
                    id: TDVMCALL_MAP_GPA,
                    range,
                    done: c.done(),
                    // MapGPA may have converted past what it confirmed, and
                    // pages mapped private but not accepted are unusable.
                    rest_unknown: true,
                    kind: ErrKind::Tdx(e),
                });
            }
        }
        Ok(c.accept_report())
    }
}

impl Calls for Traps {
    fn issue(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        self.convert(range, to).map(drop)
    }
}

pub struct Tdx {
    traps: Traps,
    view: SharedView,
    /// Accept counts not yet reported (a cell: `issue` takes `&self`).
    unreported: Cell<AcceptReport>,
}

impl Tdx {
    /// In a TD (the arch layer read its shared bit), with the shared view
    /// mapped over RAM below `ram_end`; why not otherwise.
    pub fn new(gate: Gate, ram_end: u64) -> Result<Tdx, &'static str> {
        let shared_bit = Current::tdx_shared_bit()
            .ok_or("TDG.VP.INFO gave no GPA width (the tdx-guest crate's init_tdx failed)")?;
        let offset = Current::map_alias(ram_end, shared_bit)
            .ok_or("no free page-table slot for the shared-alias mapping of RAM")?;
        Ok(Tdx {
            traps: Traps { shared_bit, gate },
            view: SharedView::at_offset(offset),
            unreported: Cell::new(AcceptReport::default()),
        })
    }

    fn convert(&self, range: MemRange, to: Target) -> Result<(), ConvError> {
        let r = self.traps.convert(range, to)?;
        let mut all = self.unreported.get();
        all.add(&r);
        self.unreported.set(all);
        Ok(())
    }
}

impl ConversionAbi for Tdx {
    fn name(&self) -> &'static str {
        "tdx"
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

    /// MapGPA(private) of each RAM range and the accept sweep over it: a
    /// page still private answers PAGE_ALREADY_ACCEPTED (counted), a page
    /// left shared is mapped back and accepted, i.e. zeroed.
    fn reset(&mut self, ram: &[MemRange]) -> Result<ResetOutcome, ConvError> {
        let mut report = ResetReport {
            method: "map-gpa-private+accept-sweep",
            ..ResetReport::default()
        };
        for &r in ram {
            let c = self.traps.convert(r, Target::Private)?;
            report.calls += 1 + c.calls;
            report.ranges += 1;
            report.pages += r.len() / SIZE_4K;
            let mut all = self.unreported.get();
            all.add(&c);
            self.unreported.set(all);
        }
        Ok(ResetOutcome {
            report,
            unknown: Vec::new(),
        })
    }

    fn raw(&mut self, call: RawCall) -> Result<i64, WrongAbi> {
        match call {
            RawCall::TdxMapGpa { gpa, size, shared } => {
                let alias = if shared { self.traps.shared_bit } else { 0 };
                let (status, _) = Current::tdx_map_gpa(gpa | alias, size);
                Ok(status.raw().map_or(-1, |c| c as i64))
            }
            _ => Err(WrongAbi),
        }
    }

    /// The first (and, without RETRY, only) MapGPA; a conversion to private
    /// adds one accept per page after it, not counted here.
    fn calls_for(&self, range: MemRange, to: Target) -> Issued {
        let call = RawCall::TdxMapGpa {
            gpa: range.start,
            size: range.len(),
            shared: to == Target::Shared,
        };
        Issued {
            count: 1,
            first: call,
            last: call,
        }
    }

    fn make_private(&mut self, range: MemRange) -> Result<(), ConvError> {
        self.convert(range, Target::Private)
    }

    /// MapGPA(private) of a private page: the VMM finds nothing to change.
    fn noop(&mut self, page: MemRange) -> Result<(), ConvError> {
        let (status, r11) = Current::tdx_map_gpa(page.start, page.len());
        let mut walk = convtest_proto::tdx::map_gpa::MapGpaWalk::new(page, 0);
        walk.answer(status, r11).map_err(|e| ConvError {
            call: CALL,
            id: TDVMCALL_MAP_GPA,
            range: page,
            done: 0,
            rest_unknown: false,
            kind: ErrKind::Tdx(convtest_proto::tdx::convert::TdxError::MapGpa(e)),
        })
    }

    fn noop_op(&self) -> &'static str {
        "noop_map_gpa_private"
    }

    fn shared_view(&self) -> Option<SharedView> {
        Some(self.view)
    }

    fn take_note(&mut self) -> Option<String> {
        let r = self.unreported.take();
        (r.calls > 0).then(|| {
            format!(
                "tdx: TDG.MEM.PAGE.ACCEPT calls={} accepted 2M={} 4K={} already-accepted 4K pages={} 2M split into 4K={}",
                r.calls, r.accepted_2m, r.accepted_4k, r.already_accepted_4k, r.splits
            )
        })
    }
}
