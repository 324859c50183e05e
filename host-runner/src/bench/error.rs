//! Why `convtest bench` could not do what was asked (exit status 2). A
//! lane that ran badly is not an error: it is a lane verdict.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("--lanes {name}: no such lane; lanes are {valid}")]
    UnknownLane { name: String, valid: String },

    #[error("--from {}: {detail}", .path.display())]
    From { path: PathBuf, detail: String },

    #[error("--svg {}: not written: {detail}", .path.display())]
    Plot { path: PathBuf, detail: String },

    #[error("{0}")]
    Io(#[from] crate::error::Error),
}
