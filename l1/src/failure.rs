//! Why /init gave up on something, printed as an `error=<kind> …` fact: on
//! setup (mounts, modules, /dev/kvm, the run list) it powers off; on one
//! run (its files, spawning, waiting) it goes on with the next.

use crate::runs::LoadError;
use std::io;
use std::path::PathBuf;

pub enum Failure {
    Mount {
        target: &'static str,
        errno: i32,
    },
    Read {
        path: PathBuf,
        err: io::Error,
    },
    Module {
        name: String,
        errno: i32,
    },
    NoKvm,
    NoRuns,
    Limit {
        path: PathBuf,
        text: String,
    },
    Spawn {
        err: io::Error,
    },
    Wait {
        err: io::Error,
    },
    /// /init's own code panicked during a run.
    Panic,
    /// A kit run: its argv, or unpacking the kit.
    Kit {
        what: String,
    },
}

fn errno(err: &io::Error) -> i32 {
    err.raw_os_error().unwrap_or(0)
}

impl Failure {
    pub fn line(&self) -> String {
        match self {
            Failure::Mount { target, errno } => {
                format!("error=mount target={target} errno={errno}")
            }
            Failure::Read { path, err } => {
                format!("error=read path={} errno={}", path.display(), errno(err))
            }
            Failure::Module { name, errno } => {
                format!("error=module module={name} errno={errno}")
            }
            Failure::NoKvm => "error=no-dev-kvm".into(),
            Failure::NoRuns => "error=no-runs".into(),
            // The text is the outer side's bug: shown, but kept to one word.
            Failure::Limit { path, text } => format!(
                "error=limit path={} text={}",
                path.display(),
                text.replace(char::is_whitespace, "_")
            ),
            Failure::Spawn { err } => format!("error=spawn errno={}", errno(err)),
            Failure::Wait { err } => format!("error=wait errno={}", errno(err)),
            Failure::Panic => "error=panic".into(),
            Failure::Kit { what } => {
                format!("error=kit what={}", what.replace(char::is_whitespace, "_"))
            }
        }
    }
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Read { path, err } => Failure::Read { path, err },
            LoadError::Limit { path, text } => Failure::Limit { path, text },
        }
    }
}
