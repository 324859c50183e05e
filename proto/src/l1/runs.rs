//! The list of inner runs in the L1's initramfs, written by the runner's
//! nested backend and read by the L1's /init:
//!
//! ```text
//! /runs/00-clean/argv        the inner VMM's argv, one argument per line
//! /runs/00-clean/limit_s     the run's time limit, whole seconds
//! /runs/01-vmm-ignore/…
//! ```
//!
//! The number is the run's index (its order); the rest of the name is its
//! label, which the run_begin / run_end lines carry.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

pub const RUNS_DIR: &str = "/runs";
pub const ARGV_FILE: &str = "argv";
pub const LIMIT_FILE: &str = "limit_s";
/// Labels travel in file names and as `key=value` words: kept short and plain.
pub const MAX_LABEL: usize = 64;

/// Whether `label` can name a run: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_label(label: &str) -> bool {
    (1..=MAX_LABEL).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The directory name of run `index` under [`RUNS_DIR`].
pub fn dir_name(index: usize, label: &str) -> String {
    format!("{index:02}-{label}")
}

/// One run found in the list, not yet read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSlot {
    pub index: usize,
    pub label: String,
    /// Its directory name under the runs dir.
    pub dir: String,
}

/// `NN-label` → the slot; anything else is not a run directory.
pub fn parse_dir_name(name: &str) -> Option<RunSlot> {
    let (nn, label) = name.split_once('-')?;
    if nn.is_empty() || !nn.bytes().all(|b| b.is_ascii_digit()) || !valid_label(label) {
        return None;
    }
    Some(RunSlot {
        index: nn.parse().ok()?,
        label: label.to_string(),
        dir: name.to_string(),
    })
}

/// The runs among directory entry names, in index order. Names that are not
/// runs are ignored; of two entries with one index the first by name counts
/// (the outer side notices a run that never begins).
pub fn list(names: impl IntoIterator<Item = String>) -> Vec<RunSlot> {
    let mut slots: Vec<RunSlot> = names
        .into_iter()
        .filter_map(|n| parse_dir_name(&n))
        .collect();
    slots.sort_by(|a, b| (a.index, &a.dir).cmp(&(b.index, &b.dir)));
    slots.dedup_by_key(|s| s.index);
    slots
}

/// The argv file: one argument per line; an empty line is an empty argument.
pub fn parse_argv(text: &str) -> Vec<String> {
    text.split_terminator('\n').map(String::from).collect()
}

/// The limit file: a whole number of seconds above zero.
pub fn parse_limit(text: &str) -> Option<Duration> {
    match text.trim().parse::<u64>() {
        Ok(0) | Err(_) => None,
        Ok(s) => Some(Duration::from_secs(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn labels() {
        for ok in [
            "clean",
            "vmm-ignore",
            "guest_skip.reset",
            "a",
            &"x".repeat(64),
        ] {
            assert!(valid_label(ok), "{ok}");
        }
        for bad in ["", "a b", "a=b", "a/b", "é", &"x".repeat(65)] {
            assert!(!valid_label(bad), "{bad}");
        }
    }

    #[test]
    fn the_list_is_in_index_order_and_ignores_strangers() {
        let names = [
            "10-last",
            "02-guest-skip-reset",
            "00-clean",
            "lost+found",
            "x1-nope",
            "-nolabel",
            "01-",
            "01-vmm-ignore",
            "01-vmm-ignore-again",
        ]
        .map(String::from);
        let got: Vec<(usize, String)> = list(names)
            .into_iter()
            .map(|s| (s.index, s.label))
            .collect();
        assert_eq!(
            got,
            [
                (0, "clean".to_string()),
                (1, "vmm-ignore".to_string()),
                (2, "guest-skip-reset".to_string()),
                (10, "last".to_string()),
            ]
        );
        assert_eq!(parse_dir_name(&dir_name(3, "x")).map(|s| s.index), Some(3));
        assert_eq!(dir_name(123, "x"), "123-x");
    }

    #[test]
    fn argv_and_limit() {
        assert_eq!(
            parse_argv("vmm\n--cmdline\n\n--memory\n256\n"),
            ["vmm", "--cmdline", "", "--memory", "256"]
        );
        assert_eq!(parse_argv("a\nb"), ["a", "b"]);
        assert_eq!(parse_limit("60\n"), Some(Duration::from_secs(60)));
        for bad in ["0", "", "-1", "1.5", "sixty"] {
            assert_eq!(parse_limit(bad), None, "{bad}");
        }
    }
}
