//! The fixed form of a measurement line (DESIGN.md §2):
//! `# bench: op=share pages=1 iters=200 ns_p50=… ns_p99=… cycles_p50=… cycles_p99=…`.
//! The guest writes it with `Display`; the runner reads it back with `parse`.

use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchLine<'a> {
    pub op: &'a str,
    pub pages: u64,
    pub iters: u64,
    pub cycles_p50: u64,
    pub cycles_p99: u64,
    /// Absent when the counter frequency is unknown.
    pub ns_p50: Option<u64>,
    pub ns_p99: Option<u64>,
}

impl fmt::Display for BenchLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}op={} pages={} iters={}",
            crate::ktap::BENCH_PREFIX,
            self.op,
            self.pages,
            self.iters
        )?;
        if let (Some(p50), Some(p99)) = (self.ns_p50, self.ns_p99) {
            write!(f, " ns_p50={p50} ns_p99={p99}")?;
        }
        write!(
            f,
            " cycles_p50={} cycles_p99={}",
            self.cycles_p50, self.cycles_p99
        )
    }
}

impl<'a> BenchLine<'a> {
    /// Parses the text after optional indentation; `None` if it is not a
    /// complete bench line.
    pub fn parse(line: &'a str) -> Option<Self> {
        let rest = line.trim_start().strip_prefix(crate::ktap::BENCH_PREFIX)?;
        let (mut op, mut pages, mut iters, mut c50, mut c99, mut n50, mut n99) =
            (None, None, None, None, None, None, None);
        for word in rest.split_ascii_whitespace() {
            let (k, v) = word.split_once('=')?;
            let num = || v.parse::<u64>().ok();
            match k {
                "op" => op = Some(v),
                "pages" => pages = num(),
                "iters" => iters = num(),
                "cycles_p50" => c50 = num(),
                "cycles_p99" => c99 = num(),
                "ns_p50" => n50 = num(),
                "ns_p99" => n99 = num(),
                _ => {}
            }
        }
        Some(BenchLine {
            op: op?,
            pages: pages?,
            iters: iters?,
            cycles_p50: c50?,
            cycles_p99: c99?,
            ns_p50: n50,
            ns_p99: n99,
        })
    }
}

/// The `pct`-th percentile (nearest rank) of `samples`, sorting them in place.
pub fn percentile(samples: &mut [u64], pct: u32) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = (u64::from(pct) * samples.len() as u64).div_ceil(100).max(1);
    samples.get(rank as usize - 1).copied()
}

/// Cycles to nanoseconds at `hz`, without overflow for realistic values.
pub fn cycles_to_ns(cycles: u64, hz: u64) -> u64 {
    ((u128::from(cycles) * 1_000_000_000) / u128::from(hz.max(1))) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn roundtrip() {
        let b = BenchLine {
            op: "share",
            pages: 1,
            iters: 200,
            cycles_p50: 10,
            cycles_p99: 20,
            ns_p50: Some(5),
            ns_p99: Some(9),
        };
        let s = b.to_string();
        assert_eq!(
            s,
            "# bench: op=share pages=1 iters=200 ns_p50=5 ns_p99=9 cycles_p50=10 cycles_p99=20"
        );
        assert_eq!(BenchLine::parse(&s), Some(b));
        assert_eq!(BenchLine::parse(&std::format!("    {s}")), Some(b));
        let no_ns = BenchLine {
            ns_p50: None,
            ns_p99: None,
            ..b
        };
        assert_eq!(BenchLine::parse(&no_ns.to_string()), Some(no_ns));
    }

    #[test]
    fn rejects_incomplete() {
        assert_eq!(BenchLine::parse("# bench: op=share pages=1"), None);
        assert_eq!(
            BenchLine::parse("# bench: op=share pages=x iters=1 cycles_p50=1 cycles_p99=1"),
            None
        );
        assert_eq!(BenchLine::parse("# other"), None);
    }

    #[test]
    fn percentiles() {
        let mut v: std::vec::Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50), Some(50));
        assert_eq!(percentile(&mut v, 99), Some(99));
        assert_eq!(percentile(&mut [7], 99), Some(7));
        assert_eq!(percentile(&mut [], 50), None);
        assert_eq!(cycles_to_ns(3_000, 3_000_000_000), 1_000);
    }
}
