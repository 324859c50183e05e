//! A progress line for slow steps (guest build, disk image build): a spinner
//! showing the step's latest output on a terminal, one plain line at start
//! and end otherwise (CI logs), nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Without a terminal, how often a long step says it is still going.
const HEARTBEAT: Duration = Duration::from_secs(30);

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    quiet: bool,
    started: Instant,
    last_note: Instant,
    last_message: String,
}

impl Progress {
    pub fn start(label: &str, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() && !quiet {
            eprintln!("convtest: {label} ...");
        }
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            bar,
            quiet,
            started: now,
            last_note: now,
            last_message: String::new(),
        }
    }

    /// The step's latest output line: the spinner's text on a terminal; in
    /// a log it is shown with the next heartbeat.
    pub fn message(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_message(line.to_string());
        }
        self.last_message = line.to_string();
        self.heartbeat();
    }

    /// Without a terminal, says every 30 s that the step is still going (and
    /// what it last printed), so a CI log never looks stuck.
    pub fn heartbeat(&mut self) {
        if self.bar.is_some() || self.quiet || self.last_note.elapsed() < HEARTBEAT {
            return;
        }
        self.last_note = Instant::now();
        let secs = self.started.elapsed().as_secs();
        eprintln!(
            "convtest: {} ... {secs} s: {}",
            self.label, self.last_message
        );
    }

    pub fn finish(self, ok: bool) -> Duration {
        let took = self.started.elapsed();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !self.quiet {
            let how = if ok { "done" } else { "FAILED" };
            eprintln!(
                "convtest: {} {how} in {:.1} s",
                self.label,
                took.as_secs_f64()
            );
        }
        took
    }
}
