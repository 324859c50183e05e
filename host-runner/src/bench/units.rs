//! Latencies as the bench lines give them (ns when the guest knew its
//! counter frequency, cycles always) and the human units they print in.

use crate::ktap::Bench;

/// One op's p50 at one size. Ratios only ever compare like with like:
/// ns with ns, else cycles with cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub ns: Option<u64>,
    pub cycles: Option<u64>,
}

impl Latency {
    /// The p50 of a bench line; `None` when it carries neither number.
    /// An `ns_p50=0` is read as absent: older guests printed 0 when the
    /// counter frequency was unknown, and no op here takes under 1 ns.
    pub fn p50(b: &Bench) -> Option<Latency> {
        let l = Latency {
            ns: b.ns_p50.filter(|&n| n > 0),
            cycles: b.cycles_p50,
        };
        (l.ns.is_some() || l.cycles.is_some()).then_some(l)
    }

    /// `self / other`, in ns when both have ns, else in cycles when both
    /// have cycles; `None` when they share no unit or the divisor is 0.
    pub fn ratio(self, other: Latency) -> Option<f64> {
        let pair = match (self.ns, other.ns) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => self.cycles.zip(other.cycles),
        };
        pair.filter(|&(_, b)| b > 0)
            .map(|(a, b)| a as f64 / b as f64)
    }

    /// ns when known, else cycles labelled as cycles.
    pub fn show(self) -> String {
        match (self.ns, self.cycles) {
            (Some(ns), _) => ns_text(ns),
            (None, Some(c)) => cycles_text(c),
            (None, None) => "-".into(),
        }
    }
}

/// `850 ns`, `12.3 µs`, `1.23 ms`, `2.50 s`.
pub fn ns_text(ns: u64) -> String {
    scaled(ns, "ns", &[(1e3, " µs"), (1e6, " ms"), (1e9, " s")])
}

/// `950 cycles`, `48.2k cycles`, `1.25M cycles`.
pub fn cycles_text(c: u64) -> String {
    scaled(c, "cycles", &[(1e3, "k cycles"), (1e6, "M cycles")])
}

/// `v` in the largest unit it reaches after rounding to three
/// significant digits (so 999 999 ns is `1.00 ms`, not `1000 µs`).
fn scaled(v: u64, base: &str, units: &[(f64, &str)]) -> String {
    let x = v as f64;
    match units.iter().rev().find(|(scale, _)| x / scale >= 0.9995) {
        Some((scale, name)) => format!("{}{name}", three_digits(x / scale)),
        None => format!("{v} {base}"),
    }
}

/// Three significant digits for a value in [1, 1000): `1.23`, `12.3`, `123`.
fn three_digits(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// `4 KiB`, `2 MiB`, `1 GiB`, `6000 B` (not a whole KiB).
pub fn size_text(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    for (unit, name) in [(1 << 30, "GiB"), (1 << 20, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

/// A ratio as a factor: `425×`, `4.2×`, `0.42×`, `0.012×` (two
/// significant digits below 1, so a large win does not read as `0.01×`).
pub fn factor_text(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else if r >= 1.0 {
        format!("{r:.1}×")
    } else if r > 0.0 {
        let decimals = ((1.0 - r.log10().floor()) as usize).clamp(2, 6);
        format!("{r:.decimals$}×")
    } else {
        "0×".into()
    }
}

/// Decimal GB/s of `bytes` moved in `ns` (bytes per ns is GB/s).
pub fn gb_per_s(bytes: u64, ns: u64) -> Option<f64> {
    (ns > 0 && bytes > 0).then(|| bytes as f64 / ns as f64)
}

/// `0.0123 GB/s`, `1.23 GB/s`, `12.3 GB/s`: three significant digits.
pub fn gbps_text(g: f64) -> String {
    if g >= 1000.0 {
        format!("{g:.0} GB/s")
    } else if g >= 1.0 {
        format!("{} GB/s", three_digits(g))
    } else {
        // Small values: as many decimals as three significant digits need.
        let decimals = (2 - g.log10().floor() as i32).clamp(2, 9) as usize;
        format!("{g:.decimals$} GB/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(ns: Option<u64>, cycles: Option<u64>) -> Bench {
        Bench {
            op: "share".into(),
            ns_p50: ns,
            cycles_p50: cycles,
            ..Bench::default()
        }
    }

    #[test]
    fn ns_zero_is_absent_and_ratios_compare_like_units() {
        let a = Latency::p50(&bench(Some(0), Some(900))).expect("cycles");
        assert_eq!(a.ns, None);
        assert_eq!(a.show(), "900 cycles");
        assert_eq!(Latency::p50(&bench(None, None)), None);
        let b = Latency::p50(&bench(Some(2000), Some(300))).expect("both");
        assert_eq!(a.ratio(b), Some(3.0), "cycles with cycles");
        let ns_only = Latency {
            ns: Some(500),
            cycles: None,
        };
        assert_eq!(b.ratio(ns_only), Some(4.0), "ns with ns");
        assert_eq!(a.ratio(ns_only), None, "no common unit");
    }

    #[test]
    fn human_units() {
        assert_eq!(ns_text(850), "850 ns");
        assert_eq!(ns_text(12_345), "12.3 µs");
        assert_eq!(ns_text(1_234_567), "1.23 ms");
        assert_eq!(ns_text(250_000_000), "250 ms");
        assert_eq!(ns_text(2_500_000_000), "2.50 s");
        assert_eq!(ns_text(999_999), "1.00 ms");
        assert_eq!(ns_text(999), "999 ns");
        assert_eq!(cycles_text(48_210), "48.2k cycles");
        assert_eq!(cycles_text(950), "950 cycles");
        assert_eq!(size_text(4096), "4 KiB");
        assert_eq!(size_text(2 << 20), "2 MiB");
        assert_eq!(size_text(1 << 30), "1 GiB");
        assert_eq!(size_text(6000), "6000 B");
        assert_eq!(factor_text(425.2), "425×");
        assert_eq!(factor_text(4.25), "4.2×");
        assert_eq!(factor_text(0.4249), "0.42×");
        assert_eq!(factor_text(0.0118), "0.012×");
        assert_eq!(factor_text(0.094), "0.094×");
        assert_eq!(factor_text(0.0), "0×");
        assert_eq!(gb_per_s(4096, 1000), Some(4.096));
        assert_eq!(gb_per_s(4096, 0), None);
        assert_eq!(gbps_text(4.096), "4.10 GB/s");
        assert_eq!(gbps_text(0.0123), "0.0123 GB/s");
        assert_eq!(gbps_text(0.5), "0.500 GB/s");
    }
}
