//! A board kit (`convtest bundle`) run inside the L1 as a board would run
//! it, for `convtest bundle --check`: the runner puts the kit's archive in
//! the initramfs, /init unpacks it once, runs the kit's own command in the
//! unpacked directory (`./convtest run --backend vmm --kernel ./Image …`,
//! no cargo, no network) and prints the file that command wrote between
//! two fact lines, so the outer side can judge the JSON the kit produced:
//!
//! ```text
//! /runs/NN-label/argv:   kit  <result file or ->  <command…>
//! # convtest-l1: file_begin=r.json bytes=1234
//! {… the file, as written …}
//! # convtest-l1: file_end=r.json
//! ```
//!
//! The console may turn `\n` into `\r\n`: the reader drops every `\r`
//! (the JSON writer escapes any inside strings) and checks the length.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The kit archive in the initramfs (a `.tar.gz` with one top directory).
pub const ARCHIVE: &str = "/kit.tar.gz";
/// Where /init unpacks it.
pub const DIR: &str = "/kit";
/// The first argv word of a kit run.
pub const COMMAND: &str = "kit";
/// The result word for "print no file".
pub const NO_FILE: &str = "-";

/// One kit run's argv, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitRun {
    /// The file the command writes, relative to the kit directory.
    pub result: Option<String>,
    /// The command, run in the kit directory (`./convtest`, `run`, …).
    pub command: Vec<String>,
}

impl KitRun {
    /// The argv words (after [`COMMAND`]).
    pub fn to_argv(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.command.len() + 2);
        v.push(COMMAND.to_string());
        v.push(self.result.clone().unwrap_or_else(|| NO_FILE.into()));
        v.extend(self.command.iter().cloned());
        v
    }

    /// `None` unless `argv` is `kit <result> <command…>` with a command and
    /// a result name that stays in the kit directory.
    pub fn parse<S: AsRef<str>>(argv: &[S]) -> Option<KitRun> {
        let (first, rest) = argv.split_first()?;
        if first.as_ref() != COMMAND {
            return None;
        }
        let (result, command) = rest.split_first()?;
        let result = result.as_ref();
        if command.is_empty() || result.is_empty() || result.contains('/') || result == ".." {
            return None;
        }
        Some(KitRun {
            result: (result != NO_FILE).then(|| result.to_string()),
            command: command.iter().map(|s| s.as_ref().to_string()).collect(),
        })
    }
}

/// The fact before the file's bytes, without the prefix.
pub fn file_begin_text(name: &str, bytes: usize) -> String {
    format!("file_begin={name} bytes={bytes}")
}

/// The fact after them, without the prefix.
pub fn file_end_text(name: &str) -> String {
    format!("file_end={name}")
}

/// Why a console did not carry the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    NoBegin,
    NoEnd,
    /// `bytes=` said one length, the console carried another.
    Length {
        said: usize,
        got: usize,
    },
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileError::NoBegin => f.write_str("no file_begin line"),
            FileError::NoEnd => f.write_str("no file_end line (the L1 ended mid-file?)"),
            FileError::Length { said, got } => {
                write!(f, "file_begin said {said} bytes, the console carried {got}")
            }
        }
    }
}

/// The bytes of file `name` out of one run's console text.
pub fn read_file(console: &str, name: &str) -> Result<String, FileError> {
    let prefix = crate::wire::L1_PREFIX;
    let begin = format!("{prefix}file_begin={name} bytes=");
    let end = format!("{prefix}file_end={name}");
    let mut lines = console.split('\n');
    let said = lines
        .by_ref()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(begin.as_str()))
        .ok_or(FileError::NoBegin)?
        .trim()
        .parse::<usize>()
        .map_err(|_| FileError::NoBegin)?;
    let mut body = String::new();
    for l in lines {
        let l = l.trim_end_matches('\r');
        if l == end {
            let got = body.len();
            return if got == said {
                Ok(body)
            } else {
                Err(FileError::Length { said, got })
            };
        }
        body.push_str(&l.replace('\r', ""));
        body.push('\n');
    }
    Err(FileError::NoEnd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn argv_round_trips_and_refuses_what_could_leave_the_kit() {
        let k = KitRun {
            result: Some("r.json".into()),
            command: vec!["./convtest".into(), "run".into()],
        };
        assert_eq!(k.to_argv(), ["kit", "r.json", "./convtest", "run"]);
        assert_eq!(KitRun::parse(&k.to_argv()), Some(k));
        let none = KitRun::parse(&["kit", "-", "./convtest"]).expect("no file");
        assert_eq!(none.result, None);
        for bad in [
            &["vmm", "r.json", "x"][..],
            &["kit", "r.json"],
            &["kit", "../r.json", "x"],
            &["kit", "", "x"],
            &["kit"],
        ] {
            assert_eq!(KitRun::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_file_comes_back_through_a_crlf_console() {
        let json = "{\n  \"verdict\": \"pass\"\n}\n";
        let prefix = crate::wire::L1_PREFIX;
        let body = json.replace('\n', "\r\n");
        let console = format!(
            "noise\r\n{prefix}{}\r\n{body}{prefix}{}\r\ntail\n",
            file_begin_text("r.json", json.len()),
            file_end_text("r.json"),
        );
        assert_eq!(read_file(&console, "r.json"), Ok(json.into()));
        assert_eq!(read_file(&console, "other.json"), Err(FileError::NoBegin));
        let cut = console
            .split("# convtest-l1: file_end")
            .next()
            .unwrap_or("");
        assert_eq!(read_file(cut, "r.json"), Err(FileError::NoEnd));
        let wrong = console.replace("bytes=", "bytes=1");
        assert!(matches!(
            read_file(&wrong, "r.json"),
            Err(FileError::Length { .. })
        ));
    }
}
