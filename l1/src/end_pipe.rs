//! How an inner VMM tells /init its run's exit status before its VM is torn
//! down. pKVM reclaims a protected VM's pages one hypercall at a time — 1–3 s
//! under TCG, after the guest's last line — and nothing the run reports
//! depends on it, so /init need not wait for it before it reports the run's
//! end and, after the last run, powers off.
//!
//! /init gives the child the write end of a pipe as fd [`CHILD_FD`], named
//! in [`ENV`]. The VMM, once its output is out, writes its exit status there
//! as decimal text, closes the pipe and points its stdout and stderr at
//! /dev/null (so /init's relays end), then tears the VM down and exits. A
//! VMM that dies first writes nothing: /init then sees the pipe close and
//! waits for the exit as before. The pipe is /init's own, so nothing the
//! guest prints can end a run early.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The environment variable that names the fd in the child.
pub const ENV: &str = "CONVTEST_L1_END_FD";
/// The fd the write end gets in the child.
pub const CHILD_FD: i32 = 3;

/// /init's side: the pipe for one child.
pub struct EndPipe {
    read: File,
    write: Option<OwnedFd>,
}

impl EndPipe {
    pub fn new() -> io::Result<EndPipe> {
        let mut fds = [0i32; 2];
        // SAFETY: fds is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 just returned these two fds; nothing else owns them.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(EndPipe {
            read,
            write: Some(write),
        })
    }

    /// Makes `cmd`'s child get the write end as [`CHILD_FD`].
    pub fn attach(&self, cmd: &mut Command) {
        let Some(write) = &self.write else { return };
        let fd = write.as_raw_fd();
        cmd.env(ENV, CHILD_FD.to_string());
        // SAFETY: the closure runs in the forked child before exec and only
        // calls dup2, which is async-signal-safe; dup2 clears CLOEXEC on
        // the new fd, so the VMM inherits it.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd, CHILD_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Once the child is spawned: /init's copy of the write end goes, so
    /// the pipe closes when the child's does.
    pub fn spawned(&mut self) {
        self.write = None;
    }

    /// Blocks until the child told its exit status (`Some`, on its line's
    /// newline) or closed the pipe without (`None`: it died, or it is an
    /// older VMM).
    pub fn told(self) -> Option<i32> {
        let mut line = String::new();
        BufReader::new(self.read).read_line(&mut line).ok()?;
        line.strip_suffix('\n')?.parse().ok()
    }
}

/// The VMM's side: from [`ENV`], what tells /init the run's end; `None`
/// when /init gave no pipe (a VMM run by hand).
pub fn teller() -> Option<impl FnMut(i32)> {
    let fd: i32 = std::env::var(ENV).ok()?.parse().ok()?;
    if fd < 0 {
        return None;
    }
    // SAFETY: /init handed this fd down for exactly this use (attach); the
    // VMM opens nothing else at this number and closes it only here.
    let mut pipe = Some(unsafe { File::from_raw_fd(fd) });
    Some(move |code: i32| {
        let Some(mut pipe) = pipe.take() else { return };
        let _ = io::stdout().flush();
        let _ = writeln!(pipe, "{code}");
        drop(pipe);
        // Nothing more reaches the console: the relays may end.
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
                // SAFETY: dup2 onto the standard fds; `null` stays open for
                // the call. Later writes to them go to /dev/null.
                unsafe { libc::dup2(null.as_raw_fd(), target) };
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn a_child_tells_its_status_before_it_exits() {
        let mut pipe = EndPipe::new().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 7 >&3; exec 3>&-; sleep 0.3; exit 9"])
            .stdout(Stdio::null());
        pipe.attach(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        pipe.spawned();
        let started = std::time::Instant::now();
        assert_eq!(pipe.told(), Some(7));
        assert!(
            started.elapsed() < std::time::Duration::from_millis(250),
            "before the exit"
        );
        assert_eq!(child.wait().unwrap().code(), Some(9));
    }

    #[test]
    fn a_child_that_tells_nothing_closes_the_pipe_by_exiting() {
        let mut pipe = EndPipe::new().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 4"]);
        pipe.attach(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        pipe.spawned();
        assert_eq!(pipe.told(), None);
        assert_eq!(child.wait().unwrap().code(), Some(4));
    }
}
