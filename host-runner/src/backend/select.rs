//! The backend that runs a kind.

use super::interface::Backend;
use super::kind::BackendKind;
use super::tee::{Tee, backend::TeeQemu};
use super::{nested, qemu, vmm};
use std::path::PathBuf;

pub fn for_kind(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Qemu => Box::new(qemu::Qemu::default()),
        BackendKind::Vmm => Box::new(vmm::OwnVmm),
        BackendKind::Nested => Box::new(nested::Nested),
    }
}

/// `--tee`: QEMU as a TDX or SEV-SNP guest, with the user's firmware if given.
pub fn for_tee(tee: Tee, firmware: Option<PathBuf>, quiet: bool) -> Box<dyn Backend> {
    Box::new(TeeQemu::new(tee, firmware, quiet))
}
