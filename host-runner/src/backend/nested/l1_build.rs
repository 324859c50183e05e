//! The L1's /init (`convtest-l1`, the l1 crate: /init and its inner VMMs),
//! built static for `<arch>-unknown-linux-musl`. Like the guest build (guest_build.rs), a nested
//! cargo with its own target dir, so it neither waits for the lock the outer
//! `cargo test` holds on the main one nor inherits the caller's
//! CARGO_TARGET_DIR.

use crate::error::{Error, shell_line};
use crate::step;
use convtest_proto::arch::Arch;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The l1 crate's package and binary name.
const L1_PACKAGE: &str = "convtest-l1";

pub fn musl_target(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-unknown-linux-musl",
        Arch::Aarch64 => "aarch64-unknown-linux-musl",
    }
}

pub fn target_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("l1")
}

pub fn build_args(workspace: &Path, arch: Arch) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "build",
        "--release",
        "-p",
        L1_PACKAGE,
        "--bin",
        L1_PACKAGE,
        "--target",
        musl_target(arch),
        "--target-dir",
    ]
    .map(OsString::from)
    .into();
    args.push(target_dir(workspace).into());
    args
}

pub fn binary(workspace: &Path, arch: Arch) -> PathBuf {
    target_dir(workspace)
        .join(musl_target(arch))
        .join("release")
        .join(L1_PACKAGE)
}

fn command(workspace: &Path, arch: Arch) -> Command {
    let mut cmd = Command::new(crate::guest_build::cargo());
    cmd.args(build_args(workspace, arch))
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        // Every byte of /init is copied through TCG at boot: no debug info.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        // Cross-linking the static arm64 binary needs no cross gcc.
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld");
    cmd
}

/// Builds (incrementally) and returns the static binary.
pub fn build(workspace: &Path, arch: Arch, quiet: bool) -> Result<PathBuf, Error> {
    crate::kit::refuse_build(format!(
        "--backend nested builds the L1's /init for {} with cargo and downloads Debian's L1 kernel",
        musl_target(arch)
    ))?;
    let call = shell_line(OsString::from("cargo"), build_args(workspace, arch));
    let label = format!("building the L1 /init ({})", musl_target(arch));
    step::run(command(workspace, arch), &call, &label, quiet)?;
    let bin = binary(workspace, arch);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Error::MissingOutput { path: bin })
    }
}

/// Whether the toolchain pinned in `workspace` has the musl target's std.
pub fn target_installed(workspace: &Path, arch: Arch) -> Result<bool, Error> {
    let mut cmd = Command::new("rustc");
    cmd.args(["--print", "sysroot"]).current_dir(workspace);
    let out = cmd.output().map_err(|source| Error::Spawn {
        call: "rustc --print sysroot".into(),
        source,
    })?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(Path::new(&sysroot)
        .join("lib/rustlib")
        .join(musl_target(arch))
        .join("lib")
        .is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_line() {
        let line = shell_line(
            OsString::from("cargo"),
            build_args(Path::new("/ws"), Arch::Aarch64),
        );
        assert_eq!(
            line,
            "cargo build --release -p convtest-l1 --bin convtest-l1 --target aarch64-unknown-linux-musl \
             --target-dir /ws/target/l1"
        );
        assert_eq!(
            binary(Path::new("/ws"), Arch::X86_64),
            Path::new("/ws/target/l1/x86_64-unknown-linux-musl/release/convtest-l1")
        );
    }

    #[test]
    fn the_build_ignores_the_callers_target_dir() {
        let cmd = command(Path::new("/ws"), Arch::X86_64);
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_owned())
            .collect();
        assert!(removed.iter().any(|k| k == "CARGO_TARGET_DIR"));
    }

    #[test]
    fn musl_targets_are_pinned_in_the_toolchain() {
        let ws = crate::config::default_workspace();
        for arch in [Arch::X86_64, Arch::Aarch64] {
            assert!(
                target_installed(&ws, arch).expect("rustc runs"),
                "{} missing",
                musl_target(arch)
            );
        }
    }
}
