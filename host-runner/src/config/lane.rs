//! Where the guest runs: what the options and the host decide before the
//! plan is written (resolve.rs decides it for every lane, tee.rs for
//! `--tee`).

use crate::accel;
use crate::backend::kind::BackendKind;
use crate::machine::{Boot, Machine};
use convtest_proto::arch::Arch;

pub(super) struct Lane {
    pub arch: Arch,
    pub boot: Boot,
    pub machine: Machine,
    pub backend: BackendKind,
    pub backend_why: String,
    /// `--backend auto` chose the swprot L1.
    pub swprot: bool,
    pub accel: accel::Choice,
}
