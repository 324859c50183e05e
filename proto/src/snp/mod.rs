//! SEV-SNP conversion as plain state machines: the GHCB MSR protocol's
//! encodings (`ghcb.rs`), the PVALIDATE plan with its 2 MiB → 4 KiB
//! fallback and CF=1 as a possible attack (`pvalidate.rs`), one conversion
//! in Linux's order — rescind, page state change, validate (`convert.rs`) —
//! and the C-bit (`cbit.rs`). The guest executes the traps; `cargo test`
//! answers them with a model of the hypervisor and the RMP written from the
//! specifications (`model.rs`, tests in `tests.rs`). None of this has run
//! in a real SNP guest.

pub mod cbit;
pub mod convert;
pub mod ghcb;
#[cfg(test)]
mod model;
pub mod pvalidate;
#[cfg(test)]
mod tests;
pub mod vc;
