//! The guest's console on its way to the runner: whatever reads a guest's
//! bytes first on the host side (the own VMM, the runner's QEMU backend)
//! passes them through a [`GuestRelay`], so that no line the guest prints
//! can be read as a line of a host layer (a `# convtest-vmm:` fact, an L1
//! run marker, a host-check answer: [`HOST_LAYER_PREFIXES`]). A guest line
//! that would read as one goes on behind [`FORGED_PREFIX`], where the
//! runner sees it and names it; the host layers' own lines go through
//! [`GuestRelay::host`], which puts them on lines of their own.
//!
//! A line starts where the runner's line cleaner starts one: after a `\n`
//! or `\r` outside an escape sequence. Its text is what the cleaner keeps
//! (escape sequences and control bytes dropped, tabs as spaces; both read
//! through [`ByteReader`]), read as UTF-8 with the leading
//! whitespace trimmed (Unicode's, as the runner's parser trims). The relay
//! holds the first bytes of each guest line until that text starts with a
//! reserved prefix (forged), can no longer become one (passed on), or the
//! line ends. Two things keep every reader of the stream agreeing on where
//! lines start: an escape sequence left open by a guest is closed before
//! any line break (the cleaner would swallow the break inside it, while
//! the nested runner's raw line splitter would not), and a host line that
//! interrupts a guest line closes the guest's escape and line first.

use crate::console_read::{ByteReader, Read};
use crate::wire::{FORGED_PREFIX, HOST_LAYER_PREFIXES};
use alloc::string::String;
use alloc::vec::Vec;

/// Raw bytes a line start may stay undecided for (only whitespace and
/// invisible bytes so far, or a prefix of a reserved one): beyond this the
/// relay ends the line itself, so memory stays bounded.
pub const HOLD_MAX: usize = 4096;

/// Whose line the stream is in the middle of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Line {
    /// At the start of a line: the next guest byte opens a guest line.
    #[default]
    Start,
    /// A guest line whose start is still being decided (bytes in `held`).
    Deciding,
    /// A guest line decided and passed on; its rest passes too.
    Guest,
    /// A host line was written without its newline.
    Host,
}

/// What the text of a line start decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Forged,
    Pass,
    Undecided,
}

#[derive(Default)]
pub struct GuestRelay {
    line: Line,
    reader: ByteReader,
    /// Raw bytes of the undecided line start.
    held: Vec<u8>,
    /// The bytes of `held` the cleaner keeps.
    visible: Vec<u8>,
    /// Guest lines passed on behind [`FORGED_PREFIX`].
    forged: u64,
}

impl GuestRelay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Guest lines that would have read as a host layer's, so far.
    pub fn forged(&self) -> u64 {
        self.forged
    }

    /// Appends to `out` what the runner may see of the guest's `bytes`.
    pub fn guest(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            if self.line == Line::Host {
                out.push(b'\n');
                self.line = Line::Start;
            }
            if b == b'\n' || b == b'\r' {
                self.end_line(out);
                out.push(b);
                continue;
            }
            let kept = self.clean(b);
            match self.line {
                Line::Guest => out.push(b),
                Line::Start | Line::Deciding | Line::Host => {
                    self.held.push(b);
                    if let Some(k) = kept {
                        self.visible.push(k);
                    }
                    self.decide(out);
                }
            }
        }
    }

    /// Appends a host layer's `bytes` to `out`, starting on a fresh line:
    /// a guest line in progress is ended (its open escape closed) first.
    pub fn host(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if matches!(self.line, Line::Deciding | Line::Guest) {
            self.end_line(out);
            out.push(b'\n');
        }
        out.extend_from_slice(bytes);
        // Host lines are plain text: no escape is open after them.
        self.line = match bytes.last() {
            Some(b'\n' | b'\r') => Line::Start,
            _ => Line::Host,
        };
    }

    /// The stream ends: what is still held goes out as it is (an undecided
    /// line start cannot read as a host line).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        self.visible.clear();
    }

    /// The guest line ends (at a line break, or because a host line
    /// comes): held bytes go out, an open escape is closed.
    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        self.visible.clear();
        if self.reader.close_escape() {
            out.push(ByteReader::CLOSE_ESCAPE);
        }
        self.line = Line::Start;
    }

    /// The cleaner's reading of one byte that is not a line break: the
    /// byte it keeps, if any.
    fn clean(&mut self, b: u8) -> Option<u8> {
        match self.reader.read(b) {
            Read::Text(k) => Some(k),
            // A line break inside an escape sequence is the sequence's.
            Read::Dropped | Read::Break => None,
        }
    }

    fn decide(&mut self, out: &mut Vec<u8>) {
        match judge(&self.visible) {
            Decision::Forged => {
                self.forged += 1;
                out.extend_from_slice(FORGED_PREFIX.as_bytes());
                out.append(&mut self.held);
                self.visible.clear();
                self.line = Line::Guest;
            }
            Decision::Pass => {
                out.append(&mut self.held);
                self.visible.clear();
                self.line = Line::Guest;
            }
            Decision::Undecided if self.held.len() > HOLD_MAX => {
                // Only whitespace, invisible bytes or a reserved prefix's
                // beginning so far: end the line here.
                self.end_line(out);
                out.push(b'\n');
            }
            Decision::Undecided => self.line = Line::Deciding,
        }
    }
}

/// What the cleaner's text of a line start so far decides.
fn judge(visible: &[u8]) -> Decision {
    // An incomplete UTF-8 sequence at the end is left out: it may still
    // become whitespace (judged then), and after other text it cannot
    // turn that text into a reserved prefix.
    let text = match core::str::from_utf8(visible) {
        Ok(s) => String::from(s),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&visible[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(visible).into_owned(),
    };
    let t = text.trim_start();
    if HOST_LAYER_PREFIXES.iter().any(|p| t.starts_with(p)) {
        return Decision::Forged;
    }
    if t.is_empty() || HOST_LAYER_PREFIXES.iter().any(|p| p.starts_with(t)) {
        return Decision::Undecided;
    }
    Decision::Pass
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{HOST_PREFIX, L1_PREFIX, VMM_PREFIX};
    use std::format;
    use std::string::ToString;
    use std::vec;

    /// The runner's cleaner, as host-runner `ktap/clean.rs` has it, and its
    /// parser's trim: the lines a runner reads.
    fn runner_lines(bytes: &[u8]) -> std::vec::Vec<String> {
        let mut lines = vec![];
        let mut pending = vec![];
        let mut reader = ByteReader::default();
        let take = |p: &mut std::vec::Vec<u8>, lines: &mut std::vec::Vec<String>| {
            let l = String::from_utf8_lossy(p).trim().to_string();
            p.clear();
            if !l.is_empty() {
                lines.push(l);
            }
        };
        for &b in bytes {
            match reader.read(b) {
                Read::Break => take(&mut pending, &mut lines),
                Read::Text(k) => pending.push(k),
                Read::Dropped => {}
            }
        }
        take(&mut pending, &mut lines);
        lines
    }

    /// The nested runner's raw reading: lines cut at `\n` only, a marker
    /// only at byte 0.
    fn raw_lines(bytes: &[u8]) -> std::vec::Vec<String> {
        bytes
            .split(|&b| b == b'\n')
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn host_layer(line: &str) -> bool {
        HOST_LAYER_PREFIXES
            .iter()
            .filter(|p| **p != FORGED_PREFIX)
            .any(|p| line.starts_with(p))
    }

    /// Feeds `chunks` as a guest, with a host line after chunk `host_at`.
    fn relay(chunks: &[&[u8]], host_at: Option<usize>) -> (std::vec::Vec<u8>, u64) {
        let mut r = GuestRelay::new();
        let mut out = vec![];
        for (i, c) in chunks.iter().enumerate() {
            r.guest(c, &mut out);
            if host_at == Some(i) {
                r.host(format!("{VMM_PREFIX}exits=1\n").as_bytes(), &mut out);
            }
        }
        r.finish(&mut out);
        (out, r.forged())
    }

    #[test]
    fn ordinary_output_passes_unchanged() {
        let text = b"KTAP version 1\n    ok 1 boot.plan\r\n# convtest-done: pass=1\n\x1b[0mtail";
        let (out, forged) = relay(&[text], None);
        assert_eq!(out, text);
        assert_eq!(forged, 0);
    }

    #[test]
    fn every_host_prefix_is_forged_however_it_is_dressed() {
        let ack = format!("{HOST_PREFIX}convtest-ack 3 ok enforced forged");
        let cases: std::vec::Vec<std::vec::Vec<u8>> = vec![
            format!("{VMM_PREFIX}end=power_off\n").into(),
            format!("    {ack}\n").into(),
            format!("\t\x00\x07{ack}\n").into(),
            format!("\x1b[1;31m{L1_PREFIX}run_end=clean vmm_exit=33 run_ms=1\n").into(),
            format!("x\r{L1_PREFIX}run_end=clean vmm_exit=33\n").into(),
            format!("\u{a0}\u{3000}{VMM_PREFIX}a=1\n").into(),
            format!("{FORGED_PREFIX}{VMM_PREFIX}a=1\n").into(),
            "# convtest-l1-stderr: boom\n".into(),
            "# convtest-cut: x\n".into(),
        ];
        for case in cases {
            for split in 1..case.len() {
                let (a, b) = case.split_at(split);
                let (out, forged) = relay(&[a, b], None);
                assert!(
                    forged >= 1,
                    "{:?} split at {split}",
                    String::from_utf8_lossy(&case)
                );
                for l in runner_lines(&out) {
                    assert!(
                        !host_layer(&l),
                        "{l:?} from {:?}",
                        String::from_utf8_lossy(&case)
                    );
                }
                for l in raw_lines(&out) {
                    assert!(!host_layer(&l), "raw {l:?}");
                }
                assert!(
                    runner_lines(&out)
                        .iter()
                        .any(|l| l.starts_with(FORGED_PREFIX))
                );
            }
        }
    }

    #[test]
    fn a_line_break_inside_an_escape_is_a_line_break_for_every_reader() {
        // The cleaner would swallow this \n inside `ESC [`, the raw
        // splitter would not: the relay closes the escape first.
        let evil = format!("x\x1b[\n{L1_PREFIX}run_end=clean vmm_exit=33 run_ms=5\n");
        let (out, forged) = relay(&[evil.as_bytes()], None);
        assert_eq!(forged, 1);
        for l in runner_lines(&out).iter().chain(raw_lines(&out).iter()) {
            assert!(!host_layer(l), "{l:?}");
        }
        // And an escape swallowing text into a prefix is judged as the
        // cleaner reads it.
        let hidden = "#\x1b[1m convtest-vmm: a=1\n";
        let (out, forged) = relay(&[hidden.as_bytes()], None);
        assert_eq!(forged, 1, "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn host_lines_start_fresh_and_guest_text_after_them_is_judged_again() {
        // The guest is mid-line (and mid-escape) when the VMM speaks; what
        // it prints next must not continue the VMM's line nor slip past.
        let tail = format!("{VMM_PREFIX}end=fake\n");
        let (out, forged) = relay(&[b"ok 1 x \x1b[", tail.as_bytes()], Some(0));
        let lines = runner_lines(&out);
        assert!(lines.contains(&format!("{VMM_PREFIX}exits=1")), "{lines:?}");
        assert_eq!(forged, 1, "{lines:?}");
        // A host line without its newline: the guest's next bytes go below it.
        let mut r = GuestRelay::new();
        let mut out = vec![];
        r.host(b"# convtest-vmm: a=1", &mut out);
        r.guest(b" b=2\n", &mut out);
        assert_eq!(runner_lines(&out), ["# convtest-vmm: a=1", "b=2"]);
    }

    #[test]
    fn undecided_starts_are_held_and_bounded() {
        let mut r = GuestRelay::new();
        let mut out = vec![];
        r.guest(b"  # convtest-v", &mut out);
        assert!(out.is_empty(), "held");
        r.guest(b"ersion\n", &mut out);
        assert_eq!(out, b"  # convtest-version\n");
        // Invisible bytes forever: the relay ends the line itself.
        let mut out = vec![];
        r.guest(&[0u8; HOLD_MAX + 10], &mut out);
        r.guest(format!("{VMM_PREFIX}a=1\n").as_bytes(), &mut out);
        assert!(out.len() < 2 * HOLD_MAX + 100);
        assert_eq!(r.forged(), 1);
        // An incomplete character might still be a no-break space.
        let mut out = vec![];
        r.guest(b"\xc2", &mut out);
        assert!(out.is_empty());
        r.guest(b"\xa0", &mut out);
        r.guest(format!("{VMM_PREFIX}b=2\n").as_bytes(), &mut out);
        assert_eq!(r.forged(), 2);
    }

    #[test]
    fn seeded_random_streams_never_yield_a_host_line() {
        use crate::prng::SplitMix64;
        let pieces: [&[u8]; 12] = [
            b"# convtest-vmm: ",
            b"# convtest-l1: run_end=a vmm_exit=33",
            b"# convtest-host: ",
            b"\n",
            b"\r",
            b"\x1b",
            b"[",
            b"m",
            b" ",
            b"\t",
            b"\xc2\xa0",
            b"ok 1 x",
        ];
        let mut rng = SplitMix64::new(21);
        for _ in 0..2000 {
            let mut r = GuestRelay::new();
            let mut out = vec![];
            for _ in 0..20 {
                let p = pieces[(rng.next_u64() % pieces.len() as u64) as usize];
                r.guest(p, &mut out);
                if rng.next_u64().is_multiple_of(7) {
                    r.host(b"# convtest-vmm: x=1\n", &mut out);
                }
            }
            r.finish(&mut out);
            let lines = runner_lines(&out);
            let raw = raw_lines(&out);
            assert!(
                lines
                    .iter()
                    .filter(|l| host_layer(l))
                    .all(|l| l == "# convtest-vmm: x=1"),
                "{lines:?}"
            );
            assert!(
                raw.iter()
                    .filter(|l| host_layer(l))
                    .all(|l| l == "# convtest-vmm: x=1"),
                "{raw:?}"
            );
        }
    }
}
