//! Reads the L1 console on its way to the caller: the inner VMM's exit code
//! (`# convtest-l1: vmm_exit=<code>`) decides how the run ended, because the
//! outer QEMU exits 0 whenever the L1 powers off; and the inner VMM's
//! stderr, relayed by /init as prefixed lines, becomes the run's stderr.

use super::super::{RunEnd, process};
use crate::backend::{BootSpec, qemu};
use crate::l1init::{L1_PREFIX, STDERR_PREFIX};
use crate::verdict::{Ending, ExitHint};

/// A partial line longer than this is not a line /init wrote: dropped.
const MAX_LINE: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmmExit {
    Code(i32),
    /// Killed by a signal (or an unreadable status): no QEMU-style code.
    Other(String),
}

#[derive(Default)]
pub struct L1Watch {
    line: Vec<u8>,
    pub vmm_exit: Option<VmmExit>,
    /// The inner VMM's stderr lines.
    pub vmm_stderr: String,
    /// `error=…` lines /init printed before giving up.
    pub l1_errors: Vec<String>,
}

impl L1Watch {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&String::from_utf8_lossy(&line));
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &str) {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix(STDERR_PREFIX) {
            self.vmm_stderr.push_str(rest);
            self.vmm_stderr.push('\n');
        } else if let Some(rest) = line.strip_prefix(L1_PREFIX) {
            for word in rest.split_whitespace() {
                if let Some(v) = word.strip_prefix("vmm_exit=") {
                    self.vmm_exit = Some(match v.parse() {
                        Ok(code) => VmmExit::Code(code),
                        Err(_) => VmmExit::Other(v.to_string()),
                    });
                }
            }
            if rest.starts_with("error=") {
                self.l1_errors.push(rest.to_string());
            }
        }
    }

    /// The run's end: the inner VMM's exit as QEMU-style code when /init
    /// reported it; otherwise the L1 ended without it, which is never a
    /// success whatever the outer QEMU's status.
    pub fn run_end(
        self,
        finished: process::Finished,
        spec: &BootSpec<'_>,
        command: String,
    ) -> RunEnd {
        let timed_out = matches!(finished.end, process::End::TimedOut);
        let mut end = super::super::run_end(finished, spec, command);
        let mut stderr = self.vmm_stderr;
        for e in &self.l1_errors {
            stderr.push_str(&format!("L1 /init: {e}\n"));
        }
        match self.vmm_exit {
            Some(exit) => {
                let code = match exit {
                    VmmExit::Code(c) => Some(c),
                    VmmExit::Other(_) => None,
                };
                if timed_out {
                    stderr.push_str("the L1 did not power off after the inner VMM exited\n");
                }
                end.ending = Ending::Exited {
                    code,
                    hint: match code {
                        Some(_) => qemu::exit_hint(spec.arch, code),
                        None => ExitHint::Unexpected,
                    },
                };
                end.exit_code = code;
            }
            None => {
                if let Ending::Exited { code, .. } = end.ending {
                    stderr.push_str(&format!(
                        "the L1 ended (QEMU {}) without the inner VMM's exit status\n",
                        code.map_or("killed by a signal".to_string(), |c| format!(
                            "exit status {c}"
                        ))
                    ));
                    end.ending = Ending::Exited {
                        code,
                        // /init said why it gave up (modules, /dev/kvm): the
                        // guest never ran, like a VMM that rejected its setup.
                        hint: if self.l1_errors.is_empty() {
                            ExitHint::Unexpected
                        } else {
                            ExitHint::VmmError
                        },
                    };
                }
            }
        }
        stderr.push_str(&end.stderr);
        end.stderr = stderr;
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Arch, Boot, Machine};
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::ExitStatus;

    fn end_of(arch: Arch, console: &[u8], end: process::End) -> RunEnd {
        let spec =
            crate::backend::test_spec(arch, Boot::Pvh, Machine::Microvm, Path::new("/payload"));
        let mut w = L1Watch::default();
        w.feed(console);
        let finished = process::Finished {
            end,
            stderr: "qemu-stderr\n".into(),
        };
        w.run_end(finished, &spec, "qemu …".into())
    }

    /// QEMU's status is wait()'s: exit code in bits 8..16.
    fn exited(code: i32) -> process::End {
        process::End::Exited(ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn the_inner_vmm_code_decides() {
        let end = end_of(Arch::X86_64, b"# convtest-l1: vmm_exit=33\n", exited(0));
        assert_eq!(
            end.ending,
            Ending::Exited {
                code: Some(33),
                hint: ExitHint::Success
            }
        );
        assert_eq!(end.exit_code, Some(33));
        let end = end_of(Arch::X86_64, b"# convtest-l1: vmm_exit=35\n", exited(0));
        assert!(matches!(
            end.ending,
            Ending::Exited {
                hint: ExitHint::Failure,
                ..
            }
        ));
        let end = end_of(
            Arch::X86_64,
            b"# convtest-l1-stderr: boom\n# convtest-l1: vmm_exit=1\n",
            exited(0),
        );
        assert!(matches!(
            end.ending,
            Ending::Exited {
                hint: ExitHint::VmmError,
                ..
            }
        ));
        assert!(
            end.stderr.starts_with("boom\n") && end.stderr.ends_with("qemu-stderr\n"),
            "{}",
            end.stderr
        );
    }

    #[test]
    fn an_l1_that_ends_without_the_vmm_exit_is_unexpected() {
        // arm64 QEMU exits 0 on any power-off: that must not read as success.
        let end = end_of(Arch::Aarch64, b"reboot: Power down\n", exited(0));
        assert_eq!(
            end.ending,
            Ending::Exited {
                code: Some(0),
                hint: ExitHint::Unexpected
            }
        );
        // /init's own error: the guest never ran, and the reason is kept.
        let end = end_of(
            Arch::Aarch64,
            b"# convtest-l1: error=no-dev-kvm\n",
            exited(0),
        );
        assert_eq!(
            end.ending,
            Ending::Exited {
                code: Some(0),
                hint: ExitHint::VmmError
            }
        );
        assert!(end.stderr.contains("error=no-dev-kvm"), "{}", end.stderr);
        let end = end_of(Arch::Aarch64, b"", process::End::TimedOut);
        assert!(matches!(end.ending, Ending::TimedOut { .. }));
        // The VMM finished but the L1 hung on the way down: the VMM's result stands.
        let end = end_of(
            Arch::Aarch64,
            b"# convtest-l1: vmm_exit=0\n",
            process::End::TimedOut,
        );
        assert!(matches!(
            end.ending,
            Ending::Exited {
                hint: ExitHint::Success,
                ..
            }
        ));
        assert!(end.stderr.contains("did not power off"));
    }

    #[test]
    fn finds_exit_code_and_stderr_across_chunks() {
        let mut w = L1Watch::default();
        w.feed(b"KTAP version 1\n# convtest-l1: kernel=7.3.4 kvm=st");
        w.feed(b"ock\n# convtest-l1-stderr: convtest vmm: KVM_CREATE_VM: EINVAL\r\n# convtest-l1: vmm_ex");
        w.feed(b"it=33\n");
        assert_eq!(w.vmm_exit, Some(VmmExit::Code(33)));
        assert_eq!(w.vmm_stderr, "convtest vmm: KVM_CREATE_VM: EINVAL\n");
    }

    #[test]
    fn signals_and_errors() {
        let mut w = L1Watch::default();
        w.feed(
            b"# convtest-l1: error=module module=kvm errno=22\n# convtest-l1: vmm_exit=signal-9\n",
        );
        assert_eq!(w.vmm_exit, Some(VmmExit::Other("signal-9".into())));
        assert_eq!(w.l1_errors, ["error=module module=kvm errno=22"]);
    }

    #[test]
    fn guest_text_is_not_a_fact() {
        let mut w = L1Watch::default();
        w.feed(b"ok 1 x # vmm_exit=0\nfoo # convtest-l1: vmm_exit=0\n");
        assert_eq!(w.vmm_exit, None);
    }
}
