//! What a person reads about one lane, independent of where it is
//! written: a title, the cost table, the throughput table, the findings.
//! `render.rs` lays it out for the terminal or as Markdown.

use super::analysis::{BreakEven, LaneAnalysis, SizeRow};
use super::grid::Grid;
use super::judged::{Judged, RunOutcome};
use super::units::{Latency, factor_text, gbps_text, size_text};

/// Said under every lane: the nested lanes run under TCG.
pub const TCG_NOTE: &str = "absolute times under TCG are not hardware times (every guest and L1 \
instruction is emulated); compare within a lane: the ratios are the point";

pub struct LaneView {
    pub title: String,
    pub costs: Option<Grid>,
    pub throughput: Option<Grid>,
    /// Findings, one sentence each (break-even first).
    pub notes: Vec<String>,
    /// Why the lane fails, one item each.
    pub problems: Vec<String>,
}

fn cell(l: Option<Latency>) -> String {
    l.map_or_else(|| "-".into(), Latency::show)
}

impl LaneView {
    pub fn of(j: &Judged) -> LaneView {
        let a = &j.analysis;
        let title = match &j.result.outcome {
            RunOutcome::CannotRun(_) => format!("{}: {}", j.result.lane, j.verdict.label()),
            RunOutcome::Ran { total_ms, .. } => format!(
                "{}: {}, {} bench line(s), run {:.0} s",
                j.result.lane,
                j.verdict.label(),
                j.result.bench.len(),
                *total_ms as f64 / 1000.0
            ),
        };
        let mut notes = Vec::new();
        if !a.rows.is_empty() {
            notes.push(break_even_sentence(a));
        }
        if let Some(one) = &a.one_page {
            notes.push(format!(
                "one page (conv.cost, same harness): share+unshare {} = {} the null exit ({} {})",
                one.round_trip.show(),
                one.ratio.map_or_else(|| "-".into(), factor_text),
                one.noop_op,
                one.noop.show()
            ));
        }
        // Lane names say the arch (`run::lane_name`): nested-arm64-…
        let pkvm = j.result.lane.contains("arm64");
        notes.extend(hint_sentences(a, pkvm));
        if let Some(s) = bookkeeping_sentence(&a.rows) {
            notes.push(s);
        }
        if !a.rows.is_empty() && !a.has_vmm_part() {
            notes.push(if pkvm {
                "VMM part: none (pKVM converts at EL2 without a VMM exit)".into()
            } else {
                "VMM part: the VMM printed no vmm_share/vmm_unshare lines (a VMM that does \
                 not time its own part of each exit)"
                    .into()
            });
        }
        if !a.vmm_breakdown.is_empty() {
            let parts: Vec<String> = a
                .vmm_breakdown
                .iter()
                .map(|(op, size, l)| format!("{op} {} at {}", l.show(), size_text(*size)))
                .collect();
            notes.push(format!(
                "VMM breakdown (largest size): {}",
                parts.join(", ")
            ));
        }
        if a.cycles_only {
            notes.push(
                "times in cycles: the guest did not know its counter frequency (no ns), so \
                 no throughput"
                    .into(),
            );
        }
        if !a.unknown_ops.is_empty() {
            notes.push(format!(
                "not shown (ops this convtest does not know, kept in --json): {}",
                a.unknown_ops.join(", ")
            ));
        }
        if !a.rows.is_empty() {
            notes.push(TCG_NOTE.into());
        }
        LaneView {
            title,
            costs: (!a.rows.is_empty()).then(|| cost_grid(a)),
            throughput: throughput_grid(a),
            notes,
            problems: j.problems.clone(),
        }
    }
}

fn cost_grid(a: &LaneAnalysis) -> Grid {
    let vmm = a.has_vmm_part();
    let mut header = vec![
        "size",
        "share",
        "unshare",
        "round trip with touch",
        "bounce (warm)",
        "bounce (cold)",
        "null exit",
    ];
    if vmm {
        header.extend(["VMM part: share", "VMM part: unshare"]);
    }
    header.push("round trip / bounce (warm)");
    let mut g = Grid::new(&header);
    for r in &a.rows {
        let mut row = vec![
            size_text(r.size),
            cell(r.share),
            cell(r.unshare),
            cell(r.io_round_trip),
            cell(r.bounce_warm),
            cell(r.bounce_cold),
            cell(a.null_exit),
        ];
        if vmm {
            row.extend([cell(r.vmm_share), cell(r.vmm_unshare)]);
        }
        row.push(
            r.round_trip_per_bounce(r.bounce_warm)
                .map_or_else(|| "-".into(), factor_text),
        );
        g.push(row);
    }
    g
}

fn throughput_grid(a: &LaneAnalysis) -> Option<Grid> {
    let any = a.throughput.iter().any(|t| {
        t.in_place_gbps.is_some() || t.bounce_warm_gbps.is_some() || t.bounce_cold_gbps.is_some()
    });
    if !any {
        return None;
    }
    let mut g = Grid::new(&[
        "size",
        "in place (share + touch + unshare)",
        "bounce (warm)",
        "bounce (cold)",
    ]);
    let show = |g: Option<f64>| g.map_or_else(|| "-".into(), gbps_text);
    for t in &a.throughput {
        g.push(vec![
            size_text(t.size_bytes),
            show(t.in_place_gbps),
            show(t.bounce_warm_gbps),
            show(t.bounce_cold_gbps),
        ]);
    }
    Some(g)
}

/// What in place does against one kind of bounce, as a clause.
fn break_even_clause(b: BreakEven, bounce: &str) -> String {
    match b {
        BreakEven::From(size) => format!("beats {bounce} from {} up", size_text(size)),
        BreakEven::Never { up_to } => format!("never beats {bounce} up to {}", size_text(up_to)),
        BreakEven::NotMeasured => {
            format!("cannot be held against {bounce} (no size has both in one unit)")
        }
    }
}

/// The answer to the question, in one sentence.
fn break_even_sentence(a: &LaneAnalysis) -> String {
    format!(
        "break-even: in place (io_round_trip) {}; it {}",
        break_even_clause(a.vs_warm, "a warm bounce (bounce_warm)"),
        break_even_clause(a.vs_cold, "a cold bounce (bounce_cold)")
    )
}

fn hint_sentences(a: &LaneAnalysis, pkvm: bool) -> Vec<String> {
    let mut v = Vec::new();
    let parts: Vec<String> = a
        .hinted
        .iter()
        .map(|h| {
            let vs = h.plain.and_then(|p| {
                let r = h.latency.ratio(p)?;
                Some(format!(" ({} the unhinted {})", factor_text(r), p.show()))
            });
            format!(
                "{} of {} {}{}",
                h.op,
                size_text(h.size),
                h.latency.show(),
                vs.unwrap_or_default()
            )
        })
        .collect();
    if !parts.is_empty() {
        v.push(format!("size hints: {}", parts.join("; ")));
    }
    if !a.hinted_missing.is_empty() && !a.rows.is_empty() {
        v.push(format!(
            "not measured: {} ({})",
            a.hinted_missing.join(", "),
            if pkvm {
                "pKVM has no page-size hints: the guest SKIPs them"
            } else {
                "the guest SKIPs a hint it cannot align: 1 GiB needs a 1 GiB-aligned free GiB, \
                 --memory 2560"
            }
        ));
    }
    v
}

fn bookkeeping_sentence(rows: &[SizeRow]) -> Option<String> {
    let with: Vec<(u64, Latency)> = rows
        .iter()
        .filter_map(|r| Some((r.size, r.bookkeeping?)))
        .collect();
    let (first, last) = (with.first()?, with.last()?);
    Some(format!(
        "guest bookkeeping (page tracker/ledger, part of each conversion): {} at {} … {} at {}",
        first.1.show(),
        size_text(first.0),
        last.1.show(),
        size_text(last.0)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    fn judged(lane: &str, shape: sample::Shape) -> Judged {
        sample::passed(lane, sample::lane(lane, shape), 61_000)
    }

    #[test]
    fn x86_shows_the_vmm_part_and_a_break_even() {
        let v = LaneView::of(&judged("nested-x86", sample::Shape::X86Stock));
        assert_eq!(v.title, "nested-x86: PASS, 95 bench line(s), run 61 s");
        let g = v.costs.expect("table");
        assert_eq!(g.header.len(), 10);
        assert_eq!(g.header[7], "VMM part: share");
        assert_eq!(g.rows.len(), 10);
        assert_eq!(g.rows[0][0], "4 KiB");
        assert_eq!(g.rows[0][6], "120 µs", "the null exit on every row");
        assert!(
            v.notes[0]
                == "break-even: in place (io_round_trip) beats a warm bounce (bounce_warm) \
                    from 512 KiB up; it beats a cold bounce (bounce_cold) from 256 KiB up",
            "{}",
            v.notes[0]
        );
        assert!(
            v.notes[1].starts_with("one page (conv.cost"),
            "{}",
            v.notes[1]
        );
        assert!(v.notes.iter().any(|n| n.starts_with("VMM breakdown")));
        assert_eq!(v.notes.last().map(String::as_str), Some(TCG_NOTE));
        assert!(v.throughput.is_some_and(|t| t.rows.len() == 10));
    }

    #[test]
    fn an_x86_vmm_that_does_not_time_itself_is_named() {
        let mut j = judged("nested-x86", sample::Shape::X86Stock);
        j.result.bench.retain(|b| !b.op.starts_with("vmm_"));
        let v = LaneView::of(&Judged::of(j.result));
        assert_eq!(v.costs.expect("table").header.len(), 8);
        assert!(
            v.notes
                .iter()
                .any(|n| n.starts_with("VMM part: the VMM printed no vmm_share")),
            "{:?}",
            v.notes
        );
        assert!(v.notes.iter().any(|n| n.contains("--memory 2560")));
    }

    #[test]
    fn pkvm_never_breaks_even_and_has_no_vmm_columns() {
        let v = LaneView::of(&judged("nested-arm64-pkvm", sample::Shape::Arm64));
        let g = v.costs.expect("table");
        assert_eq!(g.header.len(), 8, "{:?}", g.header);
        assert!(
            v.notes[0].contains("never beats a warm bounce (bounce_warm) up to 2 MiB"),
            "{}",
            v.notes[0]
        );
        assert!(
            v.notes
                .iter()
                .any(|n| n.starts_with("VMM part: none (pKVM"))
        );
        assert!(
            v.notes
                .iter()
                .any(|n| n.starts_with("not measured: share_1g, unshare_1g (pKVM has no"))
        );
        let c = LaneView::of(&judged("nested-arm64-pkvm", sample::Shape::Arm64CyclesOnly));
        assert!(c.costs.expect("table").rows[0][1].ends_with("cycles"));
        assert!(c.throughput.is_none());
        assert!(c.notes.iter().any(|n| n.starts_with("times in cycles")));
    }
}
