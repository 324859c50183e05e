//! One inner `convtest vmm` run: this same binary as a child, its stdout
//! relayed raw and its stderr line by line (prefixed) to the console, and
//! killed by pid once its time limit has passed, so one wedged run cannot
//! use up the time of the runs after it.

use crate::console::Console;
use crate::failure::Failure;
use crate::runs::RunPlan;
use convtest_proto::l1::marker::VmmExit;
use convtest_proto::wire::L1_STDERR_PREFIX;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Runs `plan` to its end or its limit.
pub fn run(con: &Console, plan: &RunPlan) -> Result<VmmExit, Failure> {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    let mut cmd = Command::new(exe);
    cmd.args(&plan.argv);
    run_command(con, cmd, plan.limit)
}

/// `cmd` as a run: relayed, limited, its end as /init reports it.
pub fn run_command(con: &Console, mut cmd: Command, limit: Duration) -> Result<VmmExit, Failure> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| Failure::Spawn { err })?;
    let relays = [
        child.stdout.take().map(|out| relay_raw(con.clone(), out)),
        child.stderr.take().map(|err| relay_lines(con.clone(), err)),
    ];
    let pid = child.id();
    let (stop, watchdog) = watchdog(pid, limit);
    let exited = wait_exited(pid);
    // The child is a zombie (or waiting failed): the watchdog may stop now.
    let _ = stop.send(());
    let limit_struck = watchdog.join().unwrap_or(false);
    let status = match exited {
        Ok(()) => child.wait(),
        Err(err) => {
            // Without a way to wait, the limit cannot be kept: end it now.
            let _ = child.kill();
            let _ = child.wait();
            Err(err)
        }
    };
    // The pipes close with the child; the relays end after the last byte.
    for t in relays.into_iter().flatten() {
        let _ = t.join();
    }
    con.end_raw();
    let status = status.map_err(|err| Failure::Wait { err })?;
    Ok(exit_of(status, limit_struck))
}

/// A killed-at-the-limit child is a timeout; a child that exited on its own
/// just as the limit struck keeps its own status.
fn exit_of(status: ExitStatus, limit_struck: bool) -> VmmExit {
    match (status.code(), status.signal()) {
        (None, Some(libc::SIGKILL)) if limit_struck => VmmExit::Timeout,
        (Some(code), _) => VmmExit::Code(code),
        (None, Some(sig)) => VmmExit::Signal(sig),
        (None, None) => VmmExit::Other("unknown".into()),
    }
}

/// A thread that SIGKILLs `pid` after `limit` unless told to stop first;
/// it returns whether it killed.
fn watchdog(pid: u32, limit: Duration) -> (mpsc::Sender<()>, JoinHandle<bool>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = thread::spawn(move || match stopped.recv_timeout(limit) {
        Err(RecvTimeoutError::Timeout) => {
            // SAFETY: kill takes no pointers. pid is our child and is not
            // reaped before this thread is joined (the waiter uses WNOWAIT),
            // so it cannot name another process.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            true
        }
        // Told to stop (the child exited), or the waiter is gone.
        _ => false,
    });
    (stop, thread)
}

/// Blocks until `pid` has exited, leaving it to be reaped (WNOWAIT): the pid
/// stays the child's while the watchdog may still signal it.
fn wait_exited(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info is a valid, writable siginfo_t for the call; P_PID
        // with our child's pid names exactly that child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn relay_raw(con: Console, mut out: impl Read + Send + 'static) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            con.raw(&buf[..n]);
        }
    })
}

fn relay_lines(con: Console, err: impl Read + Send + 'static) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(err);
        let mut buf = Vec::new();
        while let Ok(1..) = reader.read_until(b'\n', &mut buf) {
            let text = String::from_utf8_lossy(&buf);
            con.line(L1_STDERR_PREFIX, text.trim_end_matches(['\n', '\r']));
            buf.clear();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// `run` starts the current exe; `sh` goes through the same waiting,
    /// relaying and killing. The scripts print nothing: the console is the
    /// test's real stdout.
    fn sh(script: &str, limit_ms: u64) -> VmmExit {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        match run_command(&Console::new(), cmd, Duration::from_millis(limit_ms)) {
            Ok(exit) => exit,
            Err(f) => panic!("{}", f.line()),
        }
    }

    #[test]
    fn exit_codes_signals_and_the_limit() {
        assert_eq!(sh("exit 33", 10_000), VmmExit::Code(33));
        assert_eq!(sh("kill -TERM $$", 10_000), VmmExit::Signal(15));
        // Not the limit's doing: a signal, not a timeout.
        assert_eq!(sh("kill -KILL $$", 10_000), VmmExit::Signal(9));
        let started = Instant::now();
        assert_eq!(sh("exec sleep 30", 200), VmmExit::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "killed, not waited out"
        );
    }

    #[test]
    fn a_spawn_failure_is_reported() {
        let r = run_command(
            &Console::new(),
            Command::new("/nonexistent/convtest"),
            Duration::from_secs(1),
        );
        assert!(matches!(r, Err(Failure::Spawn { .. })));
    }
}
