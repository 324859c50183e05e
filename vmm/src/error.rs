//! What can go wrong in the VMM itself (never the guest's doing: a guest
//! that does something the VMM cannot serve ends the run as an
//! [`crate::end::Unserved`], not an error).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("{call}: {source}")]
    Kvm {
        call: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the guest {path}: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("VMM access to private guest memory at {0:#x} refused")]
    PrivateAccess(u64),
    #[error("{0}")]
    Config(String),
    #[error("unhandled vCPU exit: {0}")]
    UnhandledExit(String),
}

impl VmmError {
    pub fn kvm(call: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
        move |source| VmmError::Kvm { call, source }
    }
}
