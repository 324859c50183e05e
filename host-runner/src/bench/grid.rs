//! A table of strings, laid out for a terminal (aligned columns) or as
//! Markdown (pipes): one model, two writers, so both always agree.

use std::fmt::Write;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grid {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    pub fn new(header: &[&str]) -> Grid {
        Grid {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, cell) in r.iter().enumerate() {
                if let Some(x) = w.get_mut(i) {
                    *x = (*x).max(cell.chars().count());
                }
            }
        }
        w
    }

    /// Columns two spaces apart, each line indented by `indent`; the first
    /// column left-aligned (sizes read as labels), the rest right-aligned
    /// (numbers line up on their units).
    pub fn to_text(&self, indent: &str) -> String {
        let widths = self.widths();
        let mut s = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
                if i == 0 {
                    let _ = write!(line, "{cell:<w$}");
                } else {
                    let _ = write!(line, "  {cell:>w$}");
                }
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }

    /// A GitHub-flavoured Markdown table, numbers right-aligned.
    pub fn to_markdown(&self) -> String {
        let cell = |c: &str| c.replace('|', "\\|");
        let mut s = String::new();
        let line = |s: &mut String, row: &[String]| {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        };
        line(&mut s, &self.header);
        let rule: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(s, "|{}|", rule.join("|"));
        for r in &self.rows {
            line(&mut s, r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        let mut g = Grid::new(&["size", "share"]);
        g.push(vec!["4 KiB".into(), "12.3 µs".into()]);
        g.push(vec!["2 MiB".into(), "1.20 ms".into()]);
        g
    }

    #[test]
    fn text_aligns_numbers_right_and_labels_left() {
        assert_eq!(
            grid().to_text("  "),
            "  size     share\n  4 KiB  12.3 µs\n  2 MiB  1.20 ms\n"
        );
    }

    #[test]
    fn markdown_has_a_rule_and_escapes_pipes() {
        let mut g = grid();
        g.push(vec!["a|b".into(), "-".into()]);
        assert_eq!(
            g.to_markdown(),
            "| size | share |\n|---|---:|\n| 4 KiB | 12.3 µs |\n| 2 MiB | 1.20 ms |\n| a\\|b | - |\n"
        );
    }
}
