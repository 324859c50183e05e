//! `convtest run`'s arguments resolved into one checked run configuration
//! (resolve.rs), with `--backend auto` decided against the host
//! (auto_backend.rs); `--tee` fixes the lane itself (tee.rs).

mod auto_backend;
mod lane;
mod resolve;
mod tee;

pub use auto_backend::{Chosen, choose_backend};
pub use resolve::{RunConfig, default_workspace, resolve};
