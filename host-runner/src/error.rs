//! Why convtest could not run a guest. Guest failures are not errors: they
//! are verdicts (see `verdict/`).
//!
//! Exit statuses: `convtest run` exits 2 on every kind (before the boot,
//! or as an `error` verdict after it). `convtest mutants` exits 2 on the
//! kinds that say what the user must change — `Usage`, `MissingTool`,
//! `Unsupported`, `Unavailable`, `UnusableModules`, `UnusableBuild`,
//! `BadRunList`, `NeedsBuild` — and fails only the lane on the others.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// How to get QEMU 10 and OVMF on Debian 12: the script reads
/// bookworm-backports through a private apt sources list (bookworm's own
/// QEMU 7.2 conflicts with qemu-utils 10, and the system's sources must not
/// gain a suite). `.ci/run` calls the same script.
pub const INSTALL_HINT: &str = "run `scripts/install-deps.sh` as root (with sudo if you are \
not root) in the convtest checkout (installs qemu-system-x86, qemu-system-arm and ovmf 10.x from bookworm-backports through a \
private apt sources list; .ci/run does the same)";

#[derive(Debug, Error)]
pub enum Error {
    /// Arguments, or a combination of them, that cannot work; the message
    /// says what to pass instead.
    #[error("{0}")]
    Usage(String),

    /// A program, package or Rust target the lane needs is not installed.
    /// `problem` says what needs `tool`, `install` how to get it; the
    /// message is the two joined by a space.
    #[error("{problem} {install}")]
    MissingTool {
        tool: String,
        problem: String,
        install: String,
    },

    /// What was asked cannot run on this host (another arch, no /dev/kvm,
    /// nowhere to keep the cache).
    #[error("{what}")]
    Unsupported { what: String },

    /// Something convtest downloads is not there any more, or the mirror
    /// is unreachable; `what` says where the pin is.
    #[error("{what}")]
    Unavailable { what: String },

    /// The L1's kernel modules do not fit together or the L1 kernel.
    #[error("{what}")]
    UnusableModules { what: String },

    /// A build finished but what it produced cannot be used.
    #[error("{what}")]
    UnusableBuild { what: String },

    /// An inner run list the L1's /init could not carry out as asked.
    #[error("{what}")]
    BadRunList { what: String },

    /// This binary is a board kit's (`convtest bundle`): it carries no
    /// toolchain, and `what` would need one.
    #[error(
        "{what}: this convtest is a board kit's (built by `convtest bundle`) and builds nothing \
         (no cargo, no rustup, no network); it runs the kit's prebuilt guest: \
         `./convtest run --backend vmm --kernel ./{kernel}` (README.md)"
    )]
    NeedsBuild { what: String, kernel: &'static str },

    #[error("`{call}` could not start: {source}")]
    Spawn {
        call: String,
        #[source]
        source: io::Error,
    },

    #[error("`{call}` failed with {}{}", code_text(*.code), tail(.stderr))]
    Command {
        call: String,
        code: Option<i32>,
        stderr: String,
    },

    #[error("{binary} not found on PATH. To install QEMU 10 and OVMF, {INSTALL_HINT}")]
    QemuMissing { binary: String },

    #[error("OVMF firmware {} not found. To install it, {INSTALL_HINT}", .path.display())]
    OvmfMissing { path: PathBuf },

    #[error("llvm-objcopy not found at {}: the toolchain in rust-toolchain.toml lists the llvm-tools component; `rustup component add llvm-tools` adds it", .path.display())]
    ObjcopyMissing { path: PathBuf },

    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} is not an ELF file{}", .path.display(), if *.image_ok { " or an arm64 Image" } else { "" })]
    NotAKernel { path: PathBuf, image_ok: bool },

    #[error("the image builder finished but {} is missing", .path.display())]
    MissingOutput { path: PathBuf },
}

impl Error {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

fn code_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit status {c}"),
        None => "a signal".into(),
    }
}

fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = &lines[lines.len().saturating_sub(30)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.join("\n"))
    }
}

/// A command line as one copy-pasteable shell string.
pub fn shell_line<S: AsRef<std::ffi::OsStr>>(
    program: S,
    args: impl IntoIterator<Item = S>,
) -> String {
    std::iter::once(program)
        .chain(args)
        .map(|a| shell_quote(&a.as_ref().to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./,:@+%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shell_line("qemu", ["-append", "tests=* seed=0x1", "it's"]),
            r"qemu -append 'tests=* seed=0x1' 'it'\''s'"
        );
    }

    #[test]
    fn missing_qemu_names_the_install_command() {
        let msg = Error::QemuMissing {
            binary: "qemu-system-aarch64".into(),
        }
        .to_string();
        assert!(
            msg.contains("scripts/install-deps.sh")
                && msg.contains(".ci/run")
                && msg.contains("qemu-system-aarch64")
        );
    }

    #[test]
    fn a_missing_tool_reads_as_one_sentence() {
        let e = Error::MissingTool {
            tool: "apt-get".into(),
            problem:
                "--backend nested fetches Debian's L1 kernel with apt-get, which is not on PATH"
                    .into(),
            install: "(a Debian host has it; or pass --l1-kernel)".into(),
        };
        assert_eq!(
            e.to_string(),
            "--backend nested fetches Debian's L1 kernel with apt-get, which is not on PATH \
             (a Debian host has it; or pass --l1-kernel)"
        );
    }

    #[test]
    fn command_error_carries_call_and_code() {
        let e = Error::Command {
            call: "cargo build".into(),
            code: Some(101),
            stderr: "error: boom\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "`cargo build` failed with exit status 101:\nerror: boom"
        );
    }
}
