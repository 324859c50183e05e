//! What one lane's bench lines say: the per-size table, where converting
//! in place starts to beat bouncing, throughput of both paths, the
//! one-page round trip next to the no-op exit, and what is missing. Pure:
//! from `&[Bench]` to numbers, so every rule here is unit-tested.

use super::ops;
use super::units::{Latency, gb_per_s};
use crate::ktap::Bench;
use serde::Serialize;

/// A size counts when it has every op of `ops::REQUIRED_PER_SIZE`; a lane
/// needs this many such sizes (1 … 512 granules are ten).
pub const MIN_SIZES: usize = 10;

/// One row of the lane table: every per-size op's p50 at `size`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SizeRow {
    pub size: u64,
    pub share: Option<Latency>,
    pub unshare: Option<Latency>,
    pub io_round_trip: Option<Latency>,
    pub bounce_warm: Option<Latency>,
    pub bounce_cold: Option<Latency>,
    pub vmm_share: Option<Latency>,
    pub vmm_unshare: Option<Latency>,
    pub bookkeeping: Option<Latency>,
}

impl SizeRow {
    /// In place vs bounce at this size: `io_round_trip / bounce`.
    pub fn round_trip_per_bounce(&self, bounce: Option<Latency>) -> Option<f64> {
        self.io_round_trip?.ratio(bounce?)
    }

    fn get(&self, op: &str) -> Option<Latency> {
        match op {
            ops::SHARE => self.share,
            ops::UNSHARE => self.unshare,
            ops::IO_ROUND_TRIP => self.io_round_trip,
            ops::BOUNCE_WARM => self.bounce_warm,
            ops::BOUNCE_COLD => self.bounce_cold,
            ops::VMM_SHARE => self.vmm_share,
            ops::VMM_UNSHARE => self.vmm_unshare,
            ops::BOOKKEEPING => self.bookkeeping,
            _ => None,
        }
    }
}

/// Where in-place conversion starts to beat bouncing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakEven {
    /// From this size up to the largest measured, in place is faster.
    From(u64),
    /// Bouncing is faster at the largest size measured (this one).
    Never { up_to: u64 },
    /// No size has both numbers in a common unit.
    NotMeasured,
}

impl BreakEven {
    pub fn bytes(self) -> Option<u64> {
        match self {
            BreakEven::From(b) => Some(b),
            _ => None,
        }
    }
}

/// Both paths' throughput at one size, decimal GB/s (ns needed).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Throughput {
    pub size_bytes: u64,
    pub in_place_gbps: Option<f64>,
    pub bounce_warm_gbps: Option<f64>,
    pub bounce_cold_gbps: Option<f64>,
}

/// `conv.cost`'s share+unshare of one granule next to its no-op call.
#[derive(Clone, Debug, PartialEq)]
pub struct OnePage {
    pub round_trip: Latency,
    /// `noop_map_gpa_private`, `noop_kvm_features`, …
    pub noop_op: String,
    pub noop: Latency,
    pub ratio: Option<f64>,
}

/// One aligned range with the ABI's size hint, next to the plain share of
/// the same size when there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct Hinted {
    pub op: &'static str,
    pub size: u64,
    pub latency: Latency,
    /// The unhinted op of the same size (`share` for `share_2m`).
    pub plain: Option<Latency>,
}

/// Everything the report shows about one lane.
#[derive(Clone, Debug, PartialEq)]
pub struct LaneAnalysis {
    pub rows: Vec<SizeRow>,
    pub null_exit: Option<Latency>,
    pub vs_warm: BreakEven,
    pub vs_cold: BreakEven,
    pub throughput: Vec<Throughput>,
    pub one_page: Option<OnePage>,
    pub hinted: Vec<Hinted>,
    /// Hinted ops the lane did not print (share_1g needs RAM).
    pub hinted_missing: Vec<&'static str>,
    /// `vmm_*` ops other than share/unshare, at the largest size each has.
    pub vmm_breakdown: Vec<(String, u64, Latency)>,
    /// Ops this command does not know: kept in the JSON, named here.
    pub unknown_ops: Vec<String>,
    /// Every guest time is in cycles only (counter frequency unknown).
    pub cycles_only: bool,
}

/// The first line for `op` at `size` (a repeated line is the same
/// measurement printed twice; the first is kept).
fn find<'a>(bench: &'a [Bench], op: &str, size: u64) -> Option<&'a Bench> {
    bench
        .iter()
        .find(|b| b.op == op && b.size_bytes == Some(size))
}

fn first<'a>(bench: &'a [Bench], op: &str) -> Option<&'a Bench> {
    bench.iter().find(|b| b.op == op)
}

impl LaneAnalysis {
    pub fn of(bench: &[Bench]) -> LaneAnalysis {
        let mut sizes: Vec<u64> = bench
            .iter()
            .filter(|b| ops::SIZED.contains(&b.op.as_str()))
            .filter_map(|b| b.size_bytes)
            .filter(|&s| s > 0)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let at = |op, size| find(bench, op, size).and_then(Latency::p50);
        let rows: Vec<SizeRow> = sizes
            .iter()
            .map(|&size| SizeRow {
                size,
                share: at(ops::SHARE, size),
                unshare: at(ops::UNSHARE, size),
                io_round_trip: at(ops::IO_ROUND_TRIP, size),
                bounce_warm: at(ops::BOUNCE_WARM, size),
                bounce_cold: at(ops::BOUNCE_COLD, size),
                vmm_share: at(ops::VMM_SHARE, size),
                vmm_unshare: at(ops::VMM_UNSHARE, size),
                bookkeeping: at(ops::BOOKKEEPING, size),
            })
            .collect();
        let throughput = rows
            .iter()
            .map(|r| {
                let gbps =
                    |l: Option<Latency>| l.and_then(|l| l.ns).and_then(|ns| gb_per_s(r.size, ns));
                Throughput {
                    size_bytes: r.size,
                    in_place_gbps: gbps(r.io_round_trip),
                    bounce_warm_gbps: gbps(r.bounce_warm),
                    bounce_cold_gbps: gbps(r.bounce_cold),
                }
            })
            .collect();
        let one_page = first(bench, ops::SHARE_UNSHARE)
            .and_then(Latency::p50)
            .zip(
                bench
                    .iter()
                    .find(|b| b.op.starts_with(ops::NOOP_PREFIX))
                    .and_then(|b| Some((b.op.clone(), Latency::p50(b)?))),
            )
            .map(|(round_trip, (noop_op, noop))| OnePage {
                round_trip,
                ratio: round_trip.ratio(noop),
                noop_op,
                noop,
            });
        let (hinted, hinted_missing) = hinted(bench);
        let mut vmm_breakdown: Vec<(String, u64, Latency)> = Vec::new();
        for b in bench.iter().filter(|b| {
            b.op.starts_with(ops::VMM_OP_PREFIX) && !ops::SIZED.contains(&b.op.as_str())
        }) {
            let (Some(l), size) = (Latency::p50(b), b.size_bytes.unwrap_or(0)) else {
                continue;
            };
            match vmm_breakdown.iter_mut().find(|(op, ..)| *op == b.op) {
                Some(e) if size > e.1 => *e = (b.op.clone(), size, l),
                Some(_) => {}
                None => vmm_breakdown.push((b.op.clone(), size, l)),
            }
        }
        let mut unknown_ops: Vec<String> = bench
            .iter()
            .filter(|b| !ops::is_known(&b.op))
            .map(|b| b.op.clone())
            .collect();
        unknown_ops.sort();
        unknown_ops.dedup();
        let guest = bench
            .iter()
            .filter(|b| !b.op.starts_with(ops::VMM_OP_PREFIX))
            .filter_map(Latency::p50);
        let cycles_only = {
            let mut any = false;
            let mut all = true;
            for l in guest {
                any = true;
                all &= l.ns.is_none();
            }
            any && all
        };
        LaneAnalysis {
            vs_warm: break_even(&rows, |r| r.bounce_warm),
            vs_cold: break_even(&rows, |r| r.bounce_cold),
            null_exit: first(bench, ops::NULL_EXIT).and_then(Latency::p50),
            rows,
            throughput,
            one_page,
            hinted,
            hinted_missing,
            vmm_breakdown,
            unknown_ops,
            cycles_only,
        }
    }

    /// Sizes that have every required op.
    pub fn complete_sizes(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| ops::REQUIRED_PER_SIZE.iter().all(|op| r.get(op).is_some()))
            .count()
    }

    pub fn has_vmm_part(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.vmm_share.is_some() || r.vmm_unshare.is_some())
    }

    /// What keeps this lane's data from answering the question; empty
    /// when it has a null exit and `MIN_SIZES` complete sizes.
    pub fn missing(&self) -> Vec<String> {
        let mut m = Vec::new();
        let complete = self.complete_sizes();
        if complete < MIN_SIZES {
            let gaps: Vec<String> = ops::REQUIRED_PER_SIZE
                .iter()
                .filter_map(|op| {
                    let have = self.rows.iter().filter(|r| r.get(op).is_some()).count();
                    (have < MIN_SIZES).then(|| format!("{op} at {have}"))
                })
                .collect();
            m.push(format!(
                "{complete} size(s) with share, unshare, io_round_trip, bounce_warm and \
                 bounce_cold, need {MIN_SIZES}{}",
                if gaps.is_empty() {
                    String::new()
                } else {
                    format!(" ({} size(s))", gaps.join(", "))
                }
            ));
        }
        if self.null_exit.is_none() {
            m.push("no null_exit line".into());
        }
        m
    }
}

/// The smallest size from which `io_round_trip` beats `bounce` at every
/// larger size measured too: a crossing that flips back (noise, a cache
/// edge) does not count as the break-even.
fn break_even(rows: &[SizeRow], bounce: impl Fn(&SizeRow) -> Option<Latency>) -> BreakEven {
    let compared: Vec<(u64, bool)> = rows
        .iter()
        .filter_map(|r| Some((r.size, r.round_trip_per_bounce(bounce(r))? < 1.0)))
        .collect();
    let Some(&(largest, wins_at_largest)) = compared.last() else {
        return BreakEven::NotMeasured;
    };
    if !wins_at_largest {
        return BreakEven::Never { up_to: largest };
    }
    let from = compared
        .iter()
        .rev()
        .take_while(|(_, wins)| *wins)
        .last()
        .map_or(largest, |&(size, _)| size);
    BreakEven::From(from)
}

/// The hinted ops: share_2m/unshare_2m, share_1g/unshare_1g.
fn hinted(bench: &[Bench]) -> (Vec<Hinted>, Vec<&'static str>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (op, plain) in [
        (ops::SHARE_2M, ops::SHARE),
        (ops::UNSHARE_2M, ops::UNSHARE),
        (ops::SHARE_1G, ops::SHARE),
        (ops::UNSHARE_1G, ops::UNSHARE),
    ] {
        match first(bench, op).and_then(|b| Some((b.size_bytes?, Latency::p50(b)?))) {
            Some((size, latency)) => found.push(Hinted {
                op,
                size,
                latency,
                plain: find(bench, plain, size).and_then(Latency::p50),
            }),
            None => missing.push(op),
        }
    }
    (found, missing)
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    #[test]
    fn rows_cover_every_size_in_order_with_every_op() {
        let a = LaneAnalysis::of(&sample::lane("nested-x86", sample::Shape::X86Stock));
        assert_eq!(a.rows.len(), 10);
        assert_eq!(a.rows[0].size, 4096);
        assert_eq!(a.rows[9].size, 2 << 20);
        assert_eq!(a.complete_sizes(), 10);
        assert!(a.missing().is_empty(), "{:?}", a.missing());
        assert!(a.has_vmm_part() && a.null_exit.is_some() && !a.cycles_only);
        let one = a.one_page.expect("conv.cost lines");
        assert_eq!(one.noop_op, "noop_map_gpa_private");
        assert!(one.ratio.is_some_and(|r| r > 1.0));
        assert!(a.unknown_ops.is_empty(), "{:?}", a.unknown_ops);
        assert_eq!(
            a.vmm_breakdown
                .iter()
                .map(|(op, ..)| op.as_str())
                .collect::<Vec<_>>(),
            ["vmm_model"]
        );
        assert_eq!(a.vmm_breakdown[0].1, 2 << 20, "at the largest size");
    }

    fn row(size: u64, rt: u64, bounce: u64) -> SizeRow {
        let ns = |n| {
            Some(Latency {
                ns: Some(n),
                cycles: None,
            })
        };
        SizeRow {
            size,
            io_round_trip: ns(rt),
            bounce_warm: ns(bounce),
            ..SizeRow::default()
        }
    }

    #[test]
    fn break_even_is_where_in_place_wins_from_then_on() {
        let warm = |r: &SizeRow| r.bounce_warm;
        let rows = [
            row(4096, 100, 10),
            row(8192, 100, 200), // a win that does not last
            row(16384, 100, 50),
            row(32768, 100, 150),
            row(65536, 100, 300),
        ];
        assert_eq!(break_even(&rows, warm), BreakEven::From(32768));
        assert_eq!(
            break_even(&rows[..3], warm),
            BreakEven::Never { up_to: 16384 }
        );
        assert_eq!(break_even(&rows[1..2], warm), BreakEven::From(8192));
        assert_eq!(break_even(&[], warm), BreakEven::NotMeasured);
        let cycles_vs_ns = SizeRow {
            bounce_warm: Some(Latency {
                ns: None,
                cycles: Some(5),
            }),
            ..row(4096, 100, 0)
        };
        assert_eq!(
            break_even(&[cycles_vs_ns], warm),
            BreakEven::NotMeasured,
            "no common unit: no comparison"
        );
    }

    #[test]
    fn missing_names_the_ops_and_the_null_exit() {
        let mut bench = sample::lane("nested-x86", sample::Shape::X86Stock);
        bench.retain(|b| {
            b.op != "null_exit" && !(b.op == "bounce_cold" && b.size_bytes > Some(64 << 10))
        });
        bench.push(Bench {
            op: "mystery".into(),
            ..Bench::default()
        });
        let a = LaneAnalysis::of(&bench);
        let m = a.missing();
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].starts_with("5 size(s)") && m[0].contains("bounce_cold at 5"),
            "{}",
            m[0]
        );
        assert_eq!(m[1], "no null_exit line");
        assert_eq!(a.unknown_ops, ["mystery"]);
    }

    #[test]
    fn hints_without_1g_and_throughput_needs_ns() {
        let a = LaneAnalysis::of(&sample::lane(
            "nested-arm64-pkvm",
            sample::Shape::Arm64CyclesOnly,
        ));
        assert!(a.cycles_only);
        assert_eq!(a.hinted_missing, ["share_1g", "unshare_1g"]);
        assert_eq!(a.hinted.len(), 2);
        assert!(
            a.hinted[0].plain.is_some(),
            "share of 2 MiB to compare with"
        );
        assert!(a.throughput.iter().all(|t| t.in_place_gbps.is_none()));
        assert!(!a.has_vmm_part());
        let x = LaneAnalysis::of(&sample::lane("nested-x86", sample::Shape::X86Stock));
        let last = x.throughput.last().expect("sizes");
        assert_eq!(last.size_bytes, 2 << 20);
        assert!(last.in_place_gbps.is_some() && last.bounce_cold_gbps.is_some());
    }
}
