//! The kit's two binaries: the guest (as `convtest run` builds it) and the
//! whole `convtest` built static for `<arch>-unknown-linux-musl` with
//! `CONVTEST_KIT=<arch>` (crate::kit), linked by rust-lld like the L1's
//! /init, in the /init's target dir (target/l1: the same profile, so the
//! dependencies they share are built once; the kit flag reaches only the
//! convtest crate, and no normal build uses that dir).

use crate::backend::nested::musl_target;
use crate::error::{Error, shell_line};
use crate::guest_build;
use crate::machine::Boot;
use convtest_proto::arch::Arch;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Built {
    pub convtest: PathBuf,
    pub guest: PathBuf,
}

pub fn target_dir(workspace: &Path) -> PathBuf {
    crate::backend::nested::l1_target_dir(workspace)
}

pub fn build_args(workspace: &Path, arch: Arch) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "build",
        "--release",
        "-p",
        "convtest",
        "--bin",
        "convtest",
        "--target",
        musl_target(arch),
        "--target-dir",
    ]
    .map(OsString::from)
    .into();
    args.push(target_dir(workspace).into());
    args
}

pub fn build(workspace: &Path, arch: Arch, work: &Path, quiet: bool) -> Result<Built, Error> {
    let boot = match arch {
        Arch::X86_64 => Boot::Pvh,
        Arch::Aarch64 => Boot::Image,
    };
    let guest = guest_build::prepare(&guest_build::Request {
        workspace,
        arch,
        boot,
        kernel: None,
        plan: "",
        work_dir: work,
        quiet,
        silent_loader: false,
    })?;
    // The PVH ELF carries debug info (the release profile's debug = 1): a
    // board needs none of it.
    let guest = match arch {
        Arch::X86_64 => {
            let stripped = work.join(crate::kit::guest_file(arch));
            guest_build::strip_debug(workspace, &guest, &stripped)?;
            stripped
        }
        Arch::Aarch64 => guest,
    };
    let mut cmd = Command::new(guest_build::cargo());
    cmd.args(build_args(workspace, arch))
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env("CONVTEST_KIT", arch.as_str())
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        // Cross-linking the static arm64 binary needs no cross gcc.
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld");
    let call = shell_line(OsString::from("cargo"), build_args(workspace, arch));
    let label = format!("building the kit's static convtest ({})", musl_target(arch));
    crate::step::run(cmd, &call, &label, quiet)?;
    let convtest = target_dir(workspace)
        .join(musl_target(arch))
        .join("release")
        .join("convtest");
    if !convtest.is_file() {
        return Err(Error::MissingOutput { path: convtest });
    }
    Ok(Built { convtest, guest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kit_builds_in_the_l1_target_dir() {
        let line = shell_line(
            OsString::from("cargo"),
            build_args(Path::new("/ws"), Arch::Aarch64),
        );
        assert_eq!(
            line,
            "cargo build --release -p convtest --bin convtest --target aarch64-unknown-linux-musl \
             --target-dir /ws/target/l1"
        );
    }
}
