//! The terminal's view of a reboot series (`--reboots N`). A short series
//! prints every test as a single run does, with a line at each boot; a long
//! one (a soak) prints only failures and a progress line — rewritten in
//! place on a terminal, every 10 s in a log — so 1000 boots stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Boots above which a series counts as a soak.
const SOAK_BOOTS: u32 = 6;
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct BootProgress {
    boots: u32,
    started: u32,
    failed: u32,
    since: Instant,
    last_note: Instant,
    tty: bool,
    quiet: bool,
}

impl BootProgress {
    pub fn new(reboots: u32, quiet: bool) -> Self {
        let now = Instant::now();
        BootProgress {
            boots: reboots.saturating_add(1),
            started: 0,
            failed: 0,
            since: now,
            last_note: now,
            tty: std::io::stderr().is_terminal(),
            quiet,
        }
    }

    pub fn soak(&self) -> bool {
        self.boots > SOAK_BOOTS
    }

    /// Whether a test line should be printed (a soak shows failures only).
    pub fn shows_case(&mut self, failed: bool) -> bool {
        self.failed += u32::from(failed);
        !self.soak() || failed
    }

    /// A boot's first KTAP line arrived.
    pub fn boot_started(&mut self, out: &mut dyn Write) {
        self.started += 1;
        if self.quiet || self.boots == 1 {
            return;
        }
        if !self.soak() {
            let _ = writeln!(out, "--- boot {} of {}", self.started - 1, self.boots);
            return;
        }
        let due = self.tty || self.last_note.elapsed() >= LOG_EVERY || self.started == 1;
        if !due {
            return;
        }
        self.last_note = Instant::now();
        let done = self.started - 1;
        let per = if done > 0 {
            format!(
                ", {:.0} ms per boot",
                self.since.elapsed().as_secs_f64() * 1e3 / f64::from(done)
            )
        } else {
            String::new()
        };
        let line = format!(
            "convtest: boot {} of {} ({:.1} s{per}), failed tests so far: {}",
            self.started - 1,
            self.boots,
            self.since.elapsed().as_secs_f64(),
            self.failed
        );
        if self.tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the progress line on a terminal.
    pub fn finish(&self) {
        if self.tty && self.soak() && !self.quiet && self.started > 0 {
            eprintln!();
        }
    }
}
