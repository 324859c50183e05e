//! The console behind pKVM's MMIO guard, when the hypervisor offers one:
//! `convtest_proto::mmio_guard` decides from KVM_FEATURES which numbering
//! (Android's enrol-then-map, upstream's single call) and hands out the
//! calls; this file makes them over the SMCCC conduit, before the UART's
//! first access, and keeps the outcome for the header.

use super::smccc;
use super::uart::{Kind, Uart};
use convtest_proto::mmio_guard::{Guard, Offer, Outcome};
use convtest_proto::range::MemRange;
use convtest_proto::smccc::{SmcccAnswer, SmcccProbe, valid_granule};
use core::fmt;

static OUTCOME: spin::Once<Outcome> = spin::Once::new();

/// The bytes of the UART's register window: what must be mapped.
fn window(u: &Uart) -> MemRange {
    let len = match u.kind {
        // The PrimeCell's whole 4 KiB frame.
        Kind::Pl011 => 0x1000,
        Kind::Ns16550 { shift, .. } => 8 << shift,
    };
    MemRange::from_len(u.base, len)
}

/// Runs the guard's calls for `console` (or none, when not offered).
pub fn console(probe: &SmcccProbe, console: &Uart) {
    let meminfo = probe
        .meminfo
        .filter(|&g| valid_granule(g))
        .map(|g| g as u64);
    let mut guard = Guard::new(Offer::of(probe.features), meminfo, window(console));
    while let Some(c) = guard.next() {
        let x0 = match smccc::call(c.fid, c.x1, 0, 0) {
            Some(SmcccAnswer::Value(r)) => r[0],
            // Advertised but nothing answered: as NOT_SUPPORTED.
            Some(SmcccAnswer::Undefined) | None => u64::MAX,
        };
        guard.answer(x0);
    }
    if let Some(o) = guard.outcome() {
        OUTCOME.call_once(|| o);
    }
}

/// Whether the hypervisor offered a guard (so a device whose window was
/// not mapped through it must not be touched).
pub fn engaged() -> bool {
    !matches!(OUTCOME.get(), None | Some(Outcome::NotOffered { .. }))
}

/// The header's ` mmio_guard=` word.
pub fn word(out: &mut dyn fmt::Write) -> fmt::Result {
    match OUTCOME.get() {
        Some(o) => write!(out, " mmio_guard={o}"),
        None => out.write_str(" mmio_guard=not-asked(no-console)"),
    }
}
