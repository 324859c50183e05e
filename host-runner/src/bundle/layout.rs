//! What a kit holds and the commands its README gives: one place for the
//! archive writer, the README, the manifest and the check, and for the
//! scripts (LAVA jobs) that drive a kit.
//!
//! ```text
//! convtest-kit-<arch>/
//!   convtest     static <arch>-unknown-linux-musl binary, built as a kit
//!   Image        (aarch64) the guest, an arm64 Image — kernel.elf on x86_64 (PVH ELF)
//!   README.md    how to run it, on the board and under crosvm
//!   kit.json     this list with sizes and SHA-256, and the commands
//! ```

use crate::kit::guest_file;
use convtest_proto::arch::Arch;
use serde::Serialize;

/// The archive's one top directory.
pub fn top_dir(arch: Arch) -> String {
    format!("convtest-kit-{}", arch.as_str())
}

pub const BINARY: &str = "convtest";
pub const README: &str = "README.md";
pub const MANIFEST: &str = "kit.json";
/// What the README's run command writes.
pub const RESULT: &str = "r.json";
/// What the crosvm-layout command writes.
pub const RESULT_CROSVM: &str = "r-crosvm.json";

/// One command of the README, as argv words run in the kit directory.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KitCommand {
    /// Short name (a run label in the check).
    pub label: &'static str,
    pub argv: Vec<String>,
    /// The file it writes (None: none).
    pub result: Option<&'static str>,
    /// The exit status a working kit gives: 0, or 2 for the refusals.
    pub expect_exit: i32,
    pub what: &'static str,
}

/// The README's commands for `arch`, in order.
pub fn commands(arch: Arch) -> Vec<KitCommand> {
    let kernel = format!("./{}", guest_file(arch));
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut v = vec![KitCommand {
        label: "run",
        argv: words(&[
            "./convtest",
            "run",
            "--backend",
            "vmm",
            "--kernel",
            &kernel,
            "--json",
            RESULT,
        ]),
        result: Some(RESULT),
        expect_exit: 0,
        what: "the default suite on this host's KVM (a protected VM under pKVM), judged here",
    }];
    if arch == Arch::Aarch64 {
        v.push(KitCommand {
            label: "run-crosvm-layout",
            argv: words(&[
                "./convtest",
                "run",
                "--backend",
                "vmm",
                "--layout",
                "crosvm",
                "--kernel",
                &kernel,
                "--json",
                RESULT_CROSVM,
            ]),
            result: Some(RESULT_CROSVM),
            expect_exit: 0,
            what: "the same on the memory map and device tree crosvm gives a protected VM",
        });
    }
    v.push(KitCommand {
        label: "needs-build",
        argv: words(&["./convtest", "run", "--backend", "vmm"]),
        result: None,
        expect_exit: 2,
        what: "without --kernel it would build the guest: a kit says so and exits 2",
    });
    v
}

/// One file of the kit.
#[derive(Clone, Debug, Serialize)]
pub struct KitFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    pub what: &'static str,
}

/// kit.json.
#[derive(Clone, Debug, Serialize)]
pub struct Kit {
    /// The manifest's format.
    pub kit_format: u32,
    pub arch: &'static str,
    pub convtest_version: &'static str,
    pub dir: String,
    pub files: Vec<KitFile>,
    pub commands: Vec<KitCommand>,
    pub exit_status: [(&'static str, &'static str); 3],
    /// The archive's size (not in kit.json's own file list).
    #[serde(skip)]
    pub archive_bytes: u64,
}

pub const EXIT_STATUS: [(&str, &str); 3] = [
    ("0", "pass"),
    ("1", "fail: a test failed, or the guest crashed or hung"),
    (
        "2",
        "could not run (bad arguments, no /dev/kvm, or something that needs a build)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_command_is_the_one_the_issue_names() {
        let c = commands(Arch::Aarch64);
        assert_eq!(
            c[0].argv.join(" "),
            "./convtest run --backend vmm --kernel ./Image --json r.json"
        );
        assert!(c[1].argv.contains(&"crosvm".to_string()));
        let last = c.last().expect("commands");
        assert_eq!((last.expect_exit, last.result), (2, None));
        let x86 = commands(Arch::X86_64);
        assert_eq!(x86.len(), 2, "no crosvm layout on x86");
        assert!(x86[0].argv.contains(&"./kernel.elf".to_string()));
        for c in c.iter().chain(&x86) {
            assert!(
                convtest_proto::l1::runs::valid_label(c.label),
                "{}",
                c.label
            );
        }
        assert_eq!(top_dir(Arch::Aarch64), "convtest-kit-aarch64");
    }
}
