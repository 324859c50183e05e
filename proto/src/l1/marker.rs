//! The fact lines the L1's /init prints around each inner run, and their
//! reading on the outer side: one definition for both ends of the L1 console.
//!
//! ```text
//! # convtest-l1: run_begin=<label> run_index=<i> runs=<n>
//! … the inner VMM's console and relayed stderr …
//! # convtest-l1: run_end=<label> vmm_exit=<code|signal-N|timeout|error> run_ms=<ms> [limit_s=<s>]
//! ```
//!
//! Both always start on a fresh line. `vmm_exit=` on the end line is the
//! fact single-run consumers have always read.

use crate::wire::L1_PREFIX;
use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

/// How one inner VMM run ended, as /init saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmmExit {
    /// Its exit status (QEMU-style codes: 33 success, 35 failure, …).
    Code(i32),
    /// Killed by this signal (not by /init's limit).
    Signal(i32),
    /// /init killed it at the run's time limit.
    Timeout,
    /// /init could not start or wait for it (an `error=…` line says why).
    Error,
    /// Anything else: an unreadable status, or a word this side does not know.
    Other(String),
}

impl fmt::Display for VmmExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmmExit::Code(c) => write!(f, "{c}"),
            VmmExit::Signal(s) => write!(f, "signal-{s}"),
            VmmExit::Timeout => f.write_str("timeout"),
            VmmExit::Error => f.write_str("error"),
            VmmExit::Other(w) => f.write_str(w),
        }
    }
}

impl VmmExit {
    pub fn parse(word: &str) -> VmmExit {
        if let Ok(code) = word.parse() {
            return VmmExit::Code(code);
        }
        if let Some(sig) = word.strip_prefix("signal-").and_then(|s| s.parse().ok()) {
            return VmmExit::Signal(sig);
        }
        match word {
            "timeout" => VmmExit::Timeout,
            "error" => VmmExit::Error,
            other => VmmExit::Other(other.to_string()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    Begin {
        label: String,
        index: usize,
        runs: usize,
    },
    End {
        label: String,
        exit: VmmExit,
        run_ms: Option<u64>,
    },
}

/// The begin fact, without the prefix (/init's `fact()` adds it).
pub fn begin_text(label: &str, index: usize, runs: usize) -> String {
    format!("run_begin={label} run_index={index} runs={runs}")
}

/// The end fact, without the prefix; `limit_s` only when the limit struck.
pub fn end_text(label: &str, exit: &VmmExit, run_ms: u128, limit_s: Option<u64>) -> String {
    let mut text = format!("run_end={label} vmm_exit={exit} run_ms={run_ms}");
    if let Some(s) = limit_s {
        text.push_str(&format!(" limit_s={s}"));
    }
    text
}

/// The marker a whole console line (line ending stripped or not) is, if
/// any. Only a line that starts with the prefix counts: a guest line that
/// merely mentions it does not.
pub fn parse(line: &str) -> Option<Marker> {
    let rest = line
        .trim_end_matches(['\n', '\r'])
        .strip_prefix(L1_PREFIX)?;
    let mut words = rest.split_whitespace();
    let (kind, label) = words.next()?.split_once('=')?;
    let value = |key: &str| {
        rest.split_whitespace()
            .skip(1)
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    };
    match kind {
        "run_begin" => Some(Marker::Begin {
            label: label.to_string(),
            index: value("run_index")?.parse().ok()?,
            runs: value("runs")?.parse().ok()?,
        }),
        "run_end" => Some(Marker::End {
            label: label.to_string(),
            // An end line without the status is still the run's end; the
            // status it lacks reads as unknown, never as success.
            exit: VmmExit::parse(value("vmm_exit").unwrap_or("missing")),
            run_ms: value("run_ms").and_then(|v| v.parse().ok()),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn exit_words_round_trip() {
        for exit in [
            VmmExit::Code(33),
            VmmExit::Code(-1),
            VmmExit::Signal(9),
            VmmExit::Timeout,
            VmmExit::Error,
            VmmExit::Other("unknown".into()),
        ] {
            assert_eq!(VmmExit::parse(&exit.to_string()), exit);
        }
    }

    #[test]
    fn lines_round_trip() {
        let begin = format!("{L1_PREFIX}{}\r\n", begin_text("vmm-ignore", 2, 11));
        assert_eq!(
            parse(&begin),
            Some(Marker::Begin {
                label: "vmm-ignore".into(),
                index: 2,
                runs: 11
            })
        );
        let end = format!(
            "{L1_PREFIX}{}",
            end_text("vmm-ignore", &VmmExit::Timeout, 60012, Some(60))
        );
        assert_eq!(
            parse(&end),
            Some(Marker::End {
                label: "vmm-ignore".into(),
                exit: VmmExit::Timeout,
                run_ms: Some(60012)
            })
        );
    }

    #[test]
    fn other_lines_are_not_markers() {
        for line in [
            "# convtest-l1: kernel=7.3.4 kvm=stock boot_ms=3000",
            "# convtest-l1: vmm_exit=33",
            "ok 1 boot.plan # convtest-l1: run_end=clean vmm_exit=33",
            " # convtest-l1: run_end=clean vmm_exit=33",
            "# convtest-l1: run_begin=clean runs=3",
            "# convtest-l1: run_begin=clean run_index=x runs=3",
            "# convtest-l1: run_begin",
            "",
        ] {
            assert_eq!(parse(line), None, "{line:?}");
        }
        assert_eq!(
            parse("# convtest-l1: run_end=clean"),
            Some(Marker::End {
                label: "clean".into(),
                exit: VmmExit::Other("missing".into()),
                run_ms: None
            })
        );
    }
}
