//! Cuts the L1 console into whole lines and says which part each belongs
//! to: the L1 (its boot, /init's facts, anything between runs) or one inner
//! run, from its run_begin line to its run_end line (both included).
//!
//! Chunks arrive cut anywhere, so a line is held until its newline. A marker
//! only counts where it fits: the run_begin of a run not yet begun with the
//! label the caller gave it, the run_end of the run in progress; anything
//! else (a guest printing look-alikes) is an ordinary line of the part it
//! is in.

use convtest_proto::l1::marker::{self, Marker, VmmExit};

/// A line longer than this is handed on in pieces: no marker is that long,
/// and a guest flooding without newlines must not grow memory. Only the
/// first piece starts a line: the rest is never read for a marker or a fact.
const MAX_PENDING: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The L1's own lines: boot, /init's facts, its errors, the power-off.
    L1,
    /// The inner run at this index.
    Run(usize),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Run `i`'s run_begin line arrived; its `Line` follows.
    Begin(usize),
    /// A line with its line ending (the last one may lack it), unchanged.
    Line(Part, &'a [u8]),
    /// More of a line too long to hold, handed on in pieces: console text,
    /// never a line start.
    Rest(Part, &'a [u8]),
    /// Run `i`'s run_end line, after its `Line`.
    End {
        index: usize,
        exit: VmmExit,
        run_ms: Option<u64>,
    },
}

pub struct Splitter {
    labels: Vec<String>,
    pending: Vec<u8>,
    /// The run in progress.
    current: Option<usize>,
    /// The lowest index a run_begin may have: runs only go forward.
    next: usize,
    /// The line in progress was too long and its start went on already.
    continued: bool,
}

impl Splitter {
    pub fn new(labels: Vec<String>) -> Self {
        Splitter {
            labels,
            pending: Vec::new(),
            current: None,
            next: 0,
            continued: false,
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut dyn FnMut(Event<'_>)) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&bytes[..=nl]);
            bytes = &bytes[nl + 1..];
            let line = std::mem::take(&mut self.pending);
            self.line(&line, sink);
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() > MAX_PENDING {
            let piece = std::mem::take(&mut self.pending);
            if std::mem::replace(&mut self.continued, true) {
                sink(Event::Rest(self.part(), &piece));
            } else {
                sink(Event::Line(self.part(), &piece));
            }
        }
    }

    /// The console ended: a last line without its newline goes where the
    /// console was (the L1's dying words belong to the run it cut short).
    pub fn finish(&mut self, sink: &mut dyn FnMut(Event<'_>)) {
        let line = std::mem::take(&mut self.pending);
        if !line.is_empty() {
            self.line(&line, sink);
        }
    }

    fn part(&self) -> Part {
        self.current.map_or(Part::L1, Part::Run)
    }

    fn line(&mut self, line: &[u8], sink: &mut dyn FnMut(Event<'_>)) {
        if std::mem::take(&mut self.continued) {
            sink(Event::Rest(self.part(), line));
            return;
        }
        let marker = std::str::from_utf8(line).ok().and_then(marker::parse);
        match marker {
            Some(Marker::Begin { label, index, .. })
                if index >= self.next && self.labels.get(index) == Some(&label) =>
            {
                // A run still in progress here never got its end line: it
                // stays unended, which its ending reports.
                self.current = Some(index);
                self.next = index + 1;
                sink(Event::Begin(index));
                sink(Event::Line(Part::Run(index), line));
            }
            Some(Marker::End {
                label,
                exit,
                run_ms,
            }) if self.current.is_some_and(|i| self.labels[i] == label) => {
                let index = self.current.take().unwrap_or_default();
                sink(Event::Line(Part::Run(index), line));
                sink(Event::End {
                    index,
                    exit,
                    run_ms,
                });
            }
            _ => sink(Event::Line(self.part(), line)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events as owned values: (part or marker, text).
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Begin(usize),
        Line(Part, String),
        Rest(Part, String),
        End(usize, VmmExit),
    }

    fn split(labels: &[&str], chunks: &[&[u8]]) -> Vec<Seen> {
        let mut s = Splitter::new(labels.iter().map(|l| l.to_string()).collect());
        let mut seen = Vec::new();
        let mut sink = |ev: Event<'_>| {
            seen.push(match ev {
                Event::Begin(i) => Seen::Begin(i),
                Event::Line(p, b) => Seen::Line(p, String::from_utf8_lossy(b).into()),
                Event::Rest(p, b) => Seen::Rest(p, String::from_utf8_lossy(b).into()),
                Event::End { index, exit, .. } => Seen::End(index, exit),
            })
        };
        for c in chunks {
            s.feed(c, &mut sink);
        }
        s.finish(&mut sink);
        seen
    }

    fn line(p: Part, s: &str) -> Seen {
        Seen::Line(p, s.into())
    }

    const TWO_RUNS: &str = "\
# convtest-l1: kernel=7.3.4 boot_ms=3000\r\n\
# convtest-l1: run_begin=clean run_index=0 runs=2\r\n\
KTAP version 1\r\n\
ok 1 boot.plan\r\n\
# convtest-l1: run_end=clean vmm_exit=33 run_ms=900\r\n\
# convtest-l1: run_begin=vmm-ignore run_index=1 runs=2\r\n\
not ok 1 conv.share_verify\r\n\
# convtest-l1: run_end=vmm-ignore vmm_exit=35 run_ms=800\r\n";

    fn two_runs_expected() -> Vec<Seen> {
        let (l1, r0, r1) = (Part::L1, Part::Run(0), Part::Run(1));
        vec![
            line(l1, "# convtest-l1: kernel=7.3.4 boot_ms=3000\r\n"),
            Seen::Begin(0),
            line(r0, "# convtest-l1: run_begin=clean run_index=0 runs=2\r\n"),
            line(r0, "KTAP version 1\r\n"),
            line(r0, "ok 1 boot.plan\r\n"),
            line(
                r0,
                "# convtest-l1: run_end=clean vmm_exit=33 run_ms=900\r\n",
            ),
            Seen::End(0, VmmExit::Code(33)),
            Seen::Begin(1),
            line(
                r1,
                "# convtest-l1: run_begin=vmm-ignore run_index=1 runs=2\r\n",
            ),
            line(r1, "not ok 1 conv.share_verify\r\n"),
            line(
                r1,
                "# convtest-l1: run_end=vmm-ignore vmm_exit=35 run_ms=800\r\n",
            ),
            Seen::End(1, VmmExit::Code(35)),
        ]
    }

    #[test]
    fn runs_are_split_on_their_markers() {
        let labels = ["clean", "vmm-ignore"];
        assert_eq!(split(&labels, &[TWO_RUNS.as_bytes()]), two_runs_expected());
    }

    #[test]
    fn any_chunking_gives_the_same_lines() {
        let labels = ["clean", "vmm-ignore"];
        let bytes = TWO_RUNS.as_bytes();
        for size in [1, 2, 3, 7, 13, 64] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            assert_eq!(
                split(&labels, &chunks),
                two_runs_expected(),
                "chunks of {size}"
            );
        }
        // Cut right inside the prefix and right before the newline.
        let at = TWO_RUNS.find("run_begin=vmm").expect("marker") - 5;
        let nl = TWO_RUNS.find("run_ms=800").expect("end") + 10;
        let chunks = [&bytes[..at], &bytes[at..nl], &bytes[nl..]];
        assert_eq!(split(&labels, &chunks), two_runs_expected());
    }

    #[test]
    fn a_run_the_l1_cut_short_keeps_its_partial_last_line() {
        let console = "# convtest-l1: run_begin=clean run_index=0 runs=2\n\
                       ok 1 boot.plan\nKernel panic - not syncing: Attempted to kill in";
        let seen = split(&["clean", "next"], &[console.as_bytes()]);
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], Seen::Begin(0));
        assert_eq!(
            seen[3],
            line(
                Part::Run(0),
                "Kernel panic - not syncing: Attempted to kill in"
            )
        );
        assert!(
            !seen
                .iter()
                .any(|s| matches!(s, Seen::End(..) | Seen::Begin(1)))
        );
    }

    #[test]
    fn look_alikes_stay_ordinary_lines() {
        let console = "\
# convtest-l1: run_end=clean vmm_exit=33\n\
# convtest-l1: run_begin=other run_index=0 runs=1\n\
# convtest-l1: run_begin=clean run_index=0 runs=1\n\
# convtest-l1: run_begin=clean run_index=0 runs=1\n\
# convtest-l1: run_end=other vmm_exit=33\n\
ok 1 x # convtest-l1: run_end=clean vmm_exit=33\n\
# convtest-l1: run_end=clean vmm_exit=33\n\
# convtest-l1: run_begin=clean run_index=0 runs=1\n";
        let seen = split(&["clean"], &[console.as_bytes()]);
        let markers: Vec<&Seen> = seen
            .iter()
            .filter(|s| matches!(s, Seen::Begin(_) | Seen::End(..)))
            .collect();
        assert_eq!(markers, [&Seen::Begin(0), &Seen::End(0, VmmExit::Code(33))]);
        let parts: Vec<Part> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Line(p, _) => Some(*p),
                _ => None,
            })
            .collect();
        let (l1, r0) = (Part::L1, Part::Run(0));
        assert_eq!(parts, [l1, l1, r0, r0, r0, r0, r0, l1]);
    }

    #[test]
    fn a_skipped_run_and_a_run_without_its_end() {
        let console = "\
# convtest-l1: run_begin=a run_index=0 runs=3\n\
guest a\n\
# convtest-l1: run_begin=c run_index=2 runs=3\n\
guest c\n";
        let seen = split(&["a", "b", "c"], &[console.as_bytes()]);
        assert_eq!(seen[0], Seen::Begin(0));
        assert_eq!(seen[3], Seen::Begin(2));
        assert_eq!(seen[5], line(Part::Run(2), "guest c\n"));
    }

    #[test]
    fn a_flood_without_newlines_is_handed_on_in_pieces() {
        let flood = vec![b'x'; MAX_PENDING + 10];
        let mut s = Splitter::new(vec!["a".into()]);
        let mut got = 0;
        s.feed(&flood, &mut |ev| {
            if let Event::Line(Part::L1, b) = ev {
                got += b.len();
            }
        });
        assert_eq!(got, flood.len());
    }

    #[test]
    fn what_follows_a_flood_on_its_line_is_no_marker() {
        let labels = ["a"];
        let begin = "# convtest-l1: run_begin=a run_index=0 runs=1\n";
        let fake_end = "# convtest-l1: run_end=a vmm_exit=33 run_ms=1\n";
        let flood = vec![b'x'; MAX_PENDING + 10];
        let seen = split(
            &labels,
            &[begin.as_bytes(), &flood, fake_end.as_bytes(), b"ok 1 x\n"],
        );
        assert!(!seen.iter().any(|e| matches!(e, Seen::End(..))), "{seen:?}");
        assert!(seen.contains(&Seen::Rest(Part::Run(0), fake_end.into())));
        assert_eq!(seen.last(), Some(&line(Part::Run(0), "ok 1 x\n")));
    }
}
