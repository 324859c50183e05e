//! KTAP version 1 lines as the guest writes them and the runner reads them.
//!
//! Layout the guest produces (subtests indented by 4 spaces):
//! ```text
//! KTAP version 1
//! # convtest: arch=x86_64 entry=pvh hypervisor=TCGTCGTCGTCG converter=none granule=4096 ram=268435456
//! 1..2
//!     KTAP version 1
//!     # Subtest: boot
//!     1..3
//!     ok 1 boot.plan
//!     ...
//! ok 1 boot
//! ...
//! # convtest-done: pass=9 fail=0 skip=6
//! ```

use core::fmt::{self, Write};

pub const VERSION_LINE: &str = "KTAP version 1";
/// Prefix of the header diagnostic (`key=value` words follow).
pub const HEADER_PREFIX: &str = "# convtest: ";
/// Prefix of the plan-complete marker; a run without it crashed or hung.
pub const DONE_PREFIX: &str = "# convtest-done: ";
/// Prefix the exception path writes before ending the run.
pub const CRASH_PREFIX: &str = "# convtest-crash: ";
/// Prefix of a machine-readable measurement.
pub const BENCH_PREFIX: &str = "# bench: ";
pub const INDENT: &str = "    ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// Writes `text` with line breaks turned into spaces so one diagnostic or
/// reason always stays one parseable line. A `#` inside a reason is harmless:
/// readers split a result line at its first ` # `.
pub struct OneLine<'a>(pub &'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            f.write_char(match c {
                '\n' | '\r' => ' ',
                c => c,
            })?;
        }
        Ok(())
    }
}

/// A header value: no spaces or NULs (hypervisor signatures carry both).
pub struct Word<'a>(pub &'a str);

impl fmt::Display for Word<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.trim_end_matches('\0');
        if s.is_empty() {
            return f.write_str("-");
        }
        for c in s.chars() {
            f.write_char(if c.is_ascii_graphic() { c } else { '_' })?;
        }
        Ok(())
    }
}

pub fn result_line(
    w: &mut impl Write,
    depth: usize,
    outcome: Outcome,
    number: usize,
    name: &str,
    reason: &str,
) -> fmt::Result {
    indent(w, depth)?;
    let status = if outcome == Outcome::Fail {
        "not ok"
    } else {
        "ok"
    };
    write!(w, "{status} {number} {name}")?;
    match outcome {
        Outcome::Skip => write!(w, " # SKIP {}", OneLine(reason))?,
        _ if !reason.is_empty() => write!(w, " # {}", OneLine(reason))?,
        _ => {}
    }
    w.write_char('\n')
}

pub fn diag_line(w: &mut impl Write, depth: usize, args: fmt::Arguments<'_>) -> fmt::Result {
    indent(w, depth)?;
    w.write_str("# ")?;
    let mut one = OneLineWriter(w);
    one.write_fmt(args)?;
    w.write_char('\n')
}

pub fn indent(w: &mut impl Write, depth: usize) -> fmt::Result {
    for _ in 0..depth {
        w.write_str(INDENT)?;
    }
    Ok(())
}

struct OneLineWriter<'w, W: Write>(&'w mut W);

impl<W: Write> Write for OneLineWriter<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write!(self.0, "{}", OneLine(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    #[test]
    fn result_lines() {
        let mut s = String::new();
        result_line(&mut s, 0, Outcome::Pass, 1, "boot.plan", "").unwrap();
        result_line(
            &mut s,
            1,
            Outcome::Fail,
            2,
            "mem.random",
            "mismatch at 0x10\nsecond",
        )
        .unwrap();
        result_line(
            &mut s,
            1,
            Outcome::Skip,
            3,
            "conv.flipflop",
            "no ABI # here",
        )
        .unwrap();
        assert_eq!(
            s,
            "ok 1 boot.plan\n    not ok 2 mem.random # mismatch at 0x10 second\n    ok 3 conv.flipflop # SKIP no ABI # here\n"
        );
    }

    #[test]
    fn diagnostics_stay_on_one_line() {
        let mut s = String::new();
        diag_line(&mut s, 2, format_args!("a\nb {}", 5)).unwrap();
        assert_eq!(s, "        # a b 5\n");
    }

    #[test]
    fn words() {
        let mut s = String::new();
        write!(
            s,
            "{} {} {}",
            Word("KVMKVMKVM\0\0\0"),
            Word("Microsoft Hv"),
            Word("")
        )
        .unwrap();
        assert_eq!(s, "KVMKVMKVM Microsoft_Hv -");
    }
}
