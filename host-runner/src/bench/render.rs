//! The lane views written out: for the terminal and as Markdown (the
//! cost tables in docs/bench.md are pasted from `--md`).

use super::judged::Judged;
use super::view::LaneView;
use std::fmt::Write;

const INDENT: &str = "  ";

/// Every lane, one block each, for the terminal.
pub fn text(lanes: &[Judged]) -> String {
    let mut s = String::new();
    for (i, j) in lanes.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let v = LaneView::of(j);
        let _ = writeln!(s, "{}", v.title);
        for p in &v.problems {
            // Loud: a lane that cannot run or is incomplete must not read
            // like a quiet footnote.
            let _ = writeln!(s, "{INDENT}!! {p}");
        }
        if let Some(g) = &v.costs {
            let _ = writeln!(s, "{INDENT}p50 latency per range size");
            s.push_str(&g.to_text(INDENT));
        }
        if let Some(g) = &v.throughput {
            let _ = writeln!(
                s,
                "{INDENT}throughput (decimal GB/s: range size / p50 time)"
            );
            s.push_str(&g.to_text(INDENT));
        }
        for n in &v.notes {
            let _ = writeln!(s, "{INDENT}{n}");
        }
    }
    s
}

/// Every lane as a Markdown section.
pub fn markdown(lanes: &[Judged]) -> String {
    let mut s = String::new();
    for j in lanes {
        let v = LaneView::of(j);
        let _ = writeln!(s, "### {}\n", v.title);
        for p in &v.problems {
            let _ = writeln!(s, "> **{}**\n", p);
        }
        if let Some(g) = &v.costs {
            let _ = writeln!(s, "p50 latency per range size:\n");
            s.push_str(&g.to_markdown());
            s.push('\n');
        }
        if let Some(g) = &v.throughput {
            let _ = writeln!(s, "Throughput (decimal GB/s: range size / p50 time):\n");
            s.push_str(&g.to_markdown());
            s.push('\n');
        }
        for n in &v.notes {
            let _ = writeln!(s, "- {n}");
        }
        if !v.notes.is_empty() {
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::judged::{LaneResult, RunOutcome};
    use super::super::sample;
    use super::*;

    fn lanes() -> Vec<Judged> {
        let mut v: Vec<Judged> = sample::three_passed(90_000);
        v[0] = Judged::of(LaneResult {
            lane: "nested-x86-swprot".into(),
            outcome: RunOutcome::CannotRun("pahole missing".into()),
            bench: Vec::new(),
        });
        v
    }

    #[test]
    fn text_has_one_block_per_lane_and_shouts_what_cannot_run() {
        let t = text(&lanes());
        assert!(
            t.starts_with(
                "nested-x86-swprot: CANNOT RUN HERE\n  !! cannot run here: pahole missing\n"
            ),
            "{t}"
        );
        assert!(t.contains("\nnested-x86: PASS"), "{t}");
        assert!(t.contains("\nnested-arm64-pkvm: PASS"), "{t}");
        let header = t
            .lines()
            .find(|l| l.trim_start().starts_with("size  "))
            .expect("a table header");
        for col in [
            "share",
            "unshare",
            "round trip with touch",
            "bounce (warm)",
            "bounce (cold)",
            "null exit",
            "VMM part: share",
            "round trip / bounce (warm)",
        ] {
            assert!(header.contains(col), "{col}: {header}");
        }
        assert!(t.contains("  2 MiB "), "{t}");
        assert!(t.contains("break-even: "), "{t}");
        assert!(t.contains("GB/s"), "{t}");
    }

    #[test]
    fn markdown_has_the_same_tables() {
        let m = markdown(&lanes());
        assert!(
            m.starts_with(
                "### nested-x86-swprot: CANNOT RUN HERE\n\n> **cannot run here: pahole missing**\n"
            ),
            "{m}"
        );
        assert_eq!(m.matches("| size | share | unshare |").count(), 2, "{m}");
        assert!(m.contains("|---|---:|"), "{m}");
        assert!(m.contains("- break-even: "), "{m}");
    }
}
