//! Turns the workspace (or a prebuilt `--kernel`) into the payload one boot
//! needs: the PVH ELF, an arm64 `Image`, or a BIOS/UEFI disk image.
//!
//! Nested cargo runs use their own target dirs under `<workspace>/target/`:
//! under `cargo test` the outer cargo holds the lock on the main target dir
//! for the whole run, so sharing it would wait forever. The PVH and
//! bootloader kernels differ only in a feature, so they get separate dirs too:
//! one build must not overwrite the ELF another run is booting.

use crate::error::{Error, shell_line};
use crate::machine::Boot;
use convtest_proto::arch::Arch;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Request<'a> {
    pub workspace: &'a Path,
    pub arch: Arch,
    pub boot: Boot,
    /// Prebuilt kernel: skips the cargo build.
    pub kernel: Option<&'a Path>,
    /// The plan; disk images carry it inside (they have no `-append`).
    pub plan: &'a str,
    /// Per-run scratch dir for the Image / disk images.
    pub work_dir: &'a Path,
    pub quiet: bool,
    /// Disk images: the loader writes nothing to the serial port (in a TD
    /// or an SEV-ES/SNP guest its port I/O would trap with no handler).
    pub silent_loader: bool,
}

/// ELF magic, and the arm64 Image header magic `ARM\x64` at offset 56.
const ELF_MAGIC: &[u8] = b"\x7fELF";
const ARM64_IMAGE_MAGIC: &[u8] = b"ARM\x64";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    Elf,
    Arm64Image,
}

/// Builds or locates the payload and returns its path.
pub fn prepare(req: &Request<'_>) -> Result<PathBuf, Error> {
    let (kernel, kind) = match req.kernel {
        Some(path) => (path.to_path_buf(), kernel_kind(path, req.arch)?),
        None => {
            crate::kit::refuse_build("building the guest (no --kernel given) needs cargo")?;
            (build_guest(req)?, KernelKind::Elf)
        }
    };
    match (req.arch, req.boot, kind) {
        (Arch::Aarch64, _, KernelKind::Elf) => {
            crate::kit::refuse_build(
                "--kernel is an ELF: turning it into an arm64 Image needs rustup's llvm-objcopy",
            )?;
            let image = req.work_dir.join("Image");
            objcopy_binary(req.workspace, &kernel, &image)?;
            Ok(image)
        }
        (_, Boot::Bios | Boot::Uefi, _) => {
            crate::kit::refuse_build(
                "--boot bios|uefi packs the guest into a disk image with the bootloader crate (cargo)",
            )?;
            build_disk_image(req, &kernel)
        }
        _ => Ok(kernel),
    }
}

pub fn cargo() -> OsString {
    // Set when run by cargo (cargo run / cargo test): the same toolchain.
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

pub fn guest_target_dir(workspace: &Path, boot: Boot) -> PathBuf {
    let dir = if boot.is_disk_image() {
        "guest-bootloader"
    } else {
        "guest"
    };
    workspace.join("target").join(dir)
}

/// `cargo build` for the guest, with its own target dir on the command line.
pub fn guest_build_args(workspace: &Path, arch: Arch, boot: Boot) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "build",
        "-p",
        "convtest-guest",
        "--release",
        "--target",
        arch.target(),
    ]
    .map(OsString::from)
    .into();
    if boot.is_disk_image() {
        args.extend(["--features", "bootloader"].map(OsString::from));
    }
    args.push("--target-dir".into());
    args.push(guest_target_dir(workspace, boot).into());
    args
}

/// `cargo run` of the image builder. The target dir goes on the command line,
/// not in CARGO_TARGET_DIR: the `bootloader` build script runs `cargo install`,
/// which would inherit the variable, want the same target-dir lock as its own
/// parent and wait forever.
pub fn image_build_args(
    workspace: &Path,
    kernel: &Path,
    out_dir: &Path,
    plan: &str,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["run", "-p", "convtest-images", "--release", "--target-dir"]
        .map(OsString::from)
        .into();
    args.push(workspace.join("target").join("images").into());
    args.extend(["--", "--kernel"].map(OsString::from));
    args.push(kernel.into());
    args.push("--out-dir".into());
    args.push(out_dir.into());
    args.push("--cmdline".into());
    args.push(plan.into());
    args
}

pub fn guest_elf(workspace: &Path, arch: Arch, boot: Boot) -> PathBuf {
    guest_target_dir(workspace, boot)
        .join(arch.target())
        .join("release")
        .join("convtest-guest")
}

/// A cargo run in the workspace that ignores the caller's target-dir settings
/// (ours come as arguments; see [`image_build_args`]).
fn nested_cargo(workspace: &Path, args: &[OsString]) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args(args)
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    cmd
}

fn build_guest(req: &Request<'_>) -> Result<PathBuf, Error> {
    let args = guest_build_args(req.workspace, req.arch, req.boot);
    let cmd = nested_cargo(req.workspace, &args);
    let flavour = if req.boot.is_disk_image() {
        ", bootloader"
    } else {
        ""
    };
    let label = format!("building guest ({}{flavour})", req.arch.target());
    crate::step::run(
        cmd,
        &shell_line(OsString::from("cargo"), args),
        &label,
        req.quiet,
    )?;
    let elf = guest_elf(req.workspace, req.arch, req.boot);
    if elf.is_file() {
        Ok(elf)
    } else {
        Err(Error::MissingOutput { path: elf })
    }
}

fn build_disk_image(req: &Request<'_>, kernel: &Path) -> Result<PathBuf, Error> {
    let mut args = image_build_args(req.workspace, kernel, req.work_dir, req.plan);
    if req.silent_loader {
        args.extend(["--loader-log", "off"].map(OsString::from));
    }
    let cmd = nested_cargo(req.workspace, &args);
    let label = format!(
        "building {} disk image (the first build takes ~2 min)",
        req.boot.as_str()
    );
    crate::step::run(
        cmd,
        &shell_line(OsString::from("cargo"), args),
        &label,
        req.quiet,
    )?;
    let image = req.work_dir.join(format!("{}.img", req.boot.as_str()));
    if image.is_file() {
        Ok(image)
    } else {
        Err(Error::MissingOutput { path: image })
    }
}

/// `llvm-objcopy -O binary`: the arm64 Image is the ELF's loadable bytes
/// (the linker script puts the Image header first).
fn objcopy_binary(workspace: &Path, elf: &Path, out: &Path) -> Result<(), Error> {
    let objcopy = llvm_objcopy(workspace)?;
    let mut cmd = Command::new(&objcopy);
    cmd.arg("-O").arg("binary").arg(elf).arg(out);
    let call = shell_line(
        objcopy.as_os_str(),
        [
            OsString::from("-O").as_os_str(),
            "binary".as_ref(),
            elf.as_os_str(),
            out.as_os_str(),
        ],
    );
    captured(cmd, call).map(drop)
}

/// `elf` without its `.debug*` sections, at `out` (what a board kit ships).
pub fn strip_debug(workspace: &Path, elf: &Path, out: &Path) -> Result<(), Error> {
    let objcopy = llvm_objcopy(workspace)?;
    let mut cmd = Command::new(&objcopy);
    cmd.arg("--strip-debug").arg(elf).arg(out);
    let call = shell_line(
        objcopy.as_os_str(),
        [
            OsString::from("--strip-debug").as_os_str(),
            elf.as_os_str(),
            out.as_os_str(),
        ],
    );
    captured(cmd, call).map(drop)
}

/// Runs `cmd` to completion with its output captured; a non-zero exit is an
/// error carrying the call, the code and what it printed on stderr.
fn captured(mut cmd: Command, call: String) -> Result<std::process::Output, Error> {
    let output = cmd.output().map_err(|source| Error::Spawn {
        call: call.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(Error::Command {
            call,
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(output)
}

/// The toolchain's own llvm-objcopy (component llvm-tools), found through
/// the workspace's pinned rustc.
pub fn llvm_objcopy(workspace: &Path) -> Result<PathBuf, Error> {
    let sysroot = rustc_output(workspace, &["--print", "sysroot"])?;
    let verbose = rustc_output(workspace, &["-vV"])?;
    let host = verbose
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or(env_host_fallback());
    let path = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin/llvm-objcopy");
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::ObjcopyMissing { path })
    }
}

fn env_host_fallback() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

fn rustc_output(workspace: &Path, args: &[&str]) -> Result<String, Error> {
    let call = shell_line("rustc", args.iter().copied());
    let mut cmd = Command::new("rustc");
    cmd.args(args).current_dir(workspace);
    let out = captured(cmd, call)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a prebuilt `--kernel` is, from its first bytes.
pub fn kernel_kind(path: &Path, arch: Arch) -> Result<KernelKind, Error> {
    let mut head = [0u8; 64];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening --kernel", path, e))?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return Err(Error::io("reading --kernel", path, e)),
        }
    }
    let head = &head[..filled];
    if head.starts_with(ELF_MAGIC) {
        Ok(KernelKind::Elf)
    } else if arch == Arch::Aarch64 && head.get(56..60) == Some(ARM64_IMAGE_MAGIC) {
        Ok(KernelKind::Arm64Image)
    } else {
        Err(Error::NotAKernel {
            path: path.to_path_buf(),
            image_ok: arch == Arch::Aarch64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn build_lines_and_paths() {
        let root = Path::new("/ws");
        let line = |args: Vec<OsString>| shell_line(OsString::from("cargo"), args);
        assert_eq!(
            line(guest_build_args(root, Arch::X86_64, Boot::Pvh)),
            "cargo build -p convtest-guest --release --target x86_64-unknown-none --target-dir /ws/target/guest"
        );
        assert_eq!(
            line(guest_build_args(root, Arch::X86_64, Boot::Uefi)),
            "cargo build -p convtest-guest --release --target x86_64-unknown-none --features bootloader \
             --target-dir /ws/target/guest-bootloader"
        );
        assert_eq!(
            line(image_build_args(
                root,
                Path::new("/k/elf"),
                Path::new("/tmp/r"),
                "tests=* seed=1"
            )),
            "cargo run -p convtest-images --release --target-dir /ws/target/images -- --kernel /k/elf \
             --out-dir /tmp/r --cmdline 'tests=* seed=1'"
        );
        assert_eq!(
            guest_elf(root, Arch::Aarch64, Boot::Image),
            Path::new("/ws/target/guest/aarch64-unknown-none/release/convtest-guest")
        );
        assert_eq!(
            guest_elf(root, Arch::X86_64, Boot::Bios),
            Path::new("/ws/target/guest-bootloader/x86_64-unknown-none/release/convtest-guest")
        );
    }

    #[test]
    fn nested_cargo_drops_the_callers_target_dir() {
        let cmd = nested_cargo(Path::new("/ws"), &[]);
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_owned())
            .collect();
        assert!(
            removed.iter().any(|k| k == "CARGO_TARGET_DIR"),
            "{removed:?}"
        );
    }

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write");
        f
    }

    #[test]
    fn recognises_prebuilt_kernels() {
        let elf = file_with(b"\x7fELF\x02\x01\x01rest-of-header");
        assert_eq!(
            kernel_kind(elf.path(), Arch::X86_64).ok(),
            Some(KernelKind::Elf)
        );
        let mut image = vec![0u8; 64];
        image[56..60].copy_from_slice(ARM64_IMAGE_MAGIC);
        let image = file_with(&image);
        assert_eq!(
            kernel_kind(image.path(), Arch::Aarch64).ok(),
            Some(KernelKind::Arm64Image)
        );
        assert!(matches!(
            kernel_kind(image.path(), Arch::X86_64),
            Err(Error::NotAKernel {
                image_ok: false,
                ..
            })
        ));
        let junk = file_with(b"MZ");
        assert!(matches!(
            kernel_kind(junk.path(), Arch::Aarch64),
            Err(Error::NotAKernel { image_ok: true, .. })
        ));
        assert!(matches!(
            kernel_kind(Path::new("/nonexistent/k"), Arch::X86_64),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn objcopy_is_found_in_the_pinned_toolchain() {
        let path = llvm_objcopy(&crate::config::default_workspace())
            .expect("llvm-tools is in rust-toolchain.toml");
        assert!(path.ends_with("bin/llvm-objcopy"));
    }
}
