//! TDX conversion as plain state machines: MapGPA's retry walk
//! (`map_gpa.rs`), the accept plan with its 2 MiB → 4 KiB fallback and its
//! count of pages already accepted (`accept.rs`), and one conversion built
//! from both (`convert.rs`). The guest executes the traps (with the
//! `tdx-guest` crate); `cargo test` answers them with a model of the TDX
//! module and the VMM written from the specifications (`model.rs`, tests in
//! `tests.rs`). None of this has run in a real TD.

pub mod abi;
pub mod accept;
pub mod convert;
pub mod map_gpa;
#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
