//! The backend that runs a kind.

use super::interface::Backend;
use super::kind::BackendKind;
use super::{nested, qemu, vmm};

pub fn for_kind(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Qemu => Box::new(qemu::Qemu::default()),
        BackendKind::Vmm => Box::new(vmm::OwnVmm),
        BackendKind::Nested => Box::new(nested::Nested),
    }
}
