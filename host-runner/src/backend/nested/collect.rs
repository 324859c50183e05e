//! Gathers the splitter's events into what callers get back: each run's
//! console and facts, the L1's own lines before and after the runs, and
//! when each run's begin and end lines arrived.

use super::split::{Event, Part};
use super::watch::RunFacts;
use std::time::Instant;

#[derive(Default)]
pub struct RunSeen {
    /// From its run_begin line to its run_end line (or the L1's end).
    pub console: Vec<u8>,
    pub facts: RunFacts,
    pub began_at: Option<Instant>,
    pub ended_at: Option<Instant>,
}

pub struct Collector {
    keep_console: bool,
    /// L1 lines before the first run_begin: boot, /init's facts.
    pub preamble: Vec<u8>,
    /// L1 lines after the first run_begin that belong to no run.
    pub tail: Vec<u8>,
    pub before: RunFacts,
    pub after: RunFacts,
    pub runs: Vec<RunSeen>,
}

impl Collector {
    /// `keep_console: false` keeps only the facts, for a caller that already
    /// streams the console elsewhere.
    pub fn new(runs: usize, keep_console: bool) -> Self {
        Collector {
            keep_console,
            preamble: Vec::new(),
            tail: Vec::new(),
            before: RunFacts::default(),
            after: RunFacts::default(),
            runs: (0..runs).map(|_| RunSeen::default()).collect(),
        }
    }

    fn any_began(&self) -> bool {
        self.runs.iter().any(|r| r.facts.began)
    }

    pub fn event(&mut self, ev: &Event<'_>) {
        let now = Instant::now();
        match *ev {
            Event::Begin(i) => {
                if let Some(r) = self.runs.get_mut(i) {
                    r.facts.began = true;
                    r.began_at = Some(now);
                }
            }
            Event::End {
                index,
                ref exit,
                run_ms,
            } => {
                if let Some(r) = self.runs.get_mut(index) {
                    r.facts.exit = Some(exit.clone());
                    r.facts.run_ms = run_ms;
                    r.ended_at = Some(now);
                }
            }
            Event::Line(Part::L1, bytes) => {
                let keep = self.keep_console;
                let (console, facts) = if self.any_began() {
                    (&mut self.tail, &mut self.after)
                } else {
                    (&mut self.preamble, &mut self.before)
                };
                facts.line(bytes);
                if keep {
                    console.extend_from_slice(bytes);
                }
            }
            Event::Rest(part, bytes) => {
                if !self.keep_console {
                    return;
                }
                let console = match part {
                    Part::Run(i) => self.runs.get_mut(i).map(|r| &mut r.console),
                    Part::L1 if self.any_began() => Some(&mut self.tail),
                    Part::L1 => Some(&mut self.preamble),
                };
                if let Some(c) = console {
                    c.extend_from_slice(bytes);
                }
            }
            Event::Line(Part::Run(i), bytes) => {
                if let Some(r) = self.runs.get_mut(i) {
                    r.facts.line(bytes);
                    if self.keep_console {
                        r.console.extend_from_slice(bytes);
                    }
                }
            }
        }
    }
}
