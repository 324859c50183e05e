//! Nothing left behind, even when convtest is interrupted: per-run scratch
//! dirs are registered here and removed by the SIGINT/SIGTERM handler, and
//! every child (QEMU, nested cargo) is tied to convtest's life so a killed
//! runner never leaves a VM spinning.

use crate::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use tempfile::TempDir;

static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Exit status after an interrupt (128 + SIGINT, as shells report it).
const INTERRUPTED: i32 = 130;

/// Installs the SIGINT/SIGTERM handler; call once from `main`.
pub fn install_signal_handler() {
    let handler = || {
        let dirs = match SCRATCH.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        eprintln!("convtest: interrupted");
        // Children die with us (see `die_with_parent`).
        std::process::exit(INTERRUPTED);
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!(
            "convtest: warning: no interrupt handler ({e}); an interrupted run may leave temp dirs"
        );
    }
}

/// A temp dir removed on drop and on interrupt.
pub struct Scratch(TempDir);

impl Scratch {
    pub fn new(prefix: &str) -> Result<Scratch, Error> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| Error::io("creating a temp dir in", std::env::temp_dir(), e))?;
        if let Ok(mut list) = SCRATCH.lock() {
            list.push(dir.path().to_path_buf());
        }
        Ok(Scratch(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut list) = SCRATCH.lock() {
            list.retain(|p| p != self.0.path());
        }
    }
}

/// Makes the kernel send `signal` to the child when convtest exits, however
/// it exits (Linux `PR_SET_PDEATHSIG`; elsewhere a no-op).
pub fn die_with_parent(cmd: &mut Command, signal: i32) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: runs in the forked child before exec; prctl is
        // async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, signal);
}

pub use libc_signals::{SIGKILL, SIGTERM};

#[cfg(target_os = "linux")]
mod libc_signals {
    pub const SIGKILL: i32 = libc::SIGKILL;
    pub const SIGTERM: i32 = libc::SIGTERM;
}

#[cfg(not(target_os = "linux"))]
mod libc_signals {
    pub const SIGKILL: i32 = 9;
    pub const SIGTERM: i32 = 15;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_registered_until_dropped() {
        let s = Scratch::new("convtest-test-").expect("temp dir");
        let path = s.path().to_path_buf();
        assert!(path.is_dir());
        assert!(SCRATCH.lock().expect("lock").contains(&path));
        drop(s);
        assert!(!path.exists());
        assert!(!SCRATCH.lock().expect("lock").contains(&path));
    }

    #[test]
    fn children_still_run_with_a_death_signal() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 7"]);
        die_with_parent(&mut cmd, SIGKILL);
        assert_eq!(cmd.status().expect("runs").code(), Some(7));
    }
}
