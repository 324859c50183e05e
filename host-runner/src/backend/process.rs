//! Runs a VMM process as a serial console: stdout streamed to the caller as
//! it arrives, replies written to stdin, stderr kept for errors, a watchdog
//! that kills the process by pid at the deadline, and the child always reaped.

use crate::error::Error;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// stderr kept for error messages; a chatty VMM must not grow it unbounded.
const STDERR_KEEP: usize = 64 * 1024;
/// How long to wait for the pipe readers once the child is reaped.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub enum End {
    Exited(ExitStatus),
    /// Killed by the watchdog.
    TimedOut,
}

#[derive(Debug)]
pub struct Finished {
    pub end: End,
    pub stderr: String,
}

/// Kills and reaps the child on every path out of [`supervise`], including
/// panics in the console callback.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // Already-exited children make kill() fail harmlessly.
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` and hands every stdout chunk to `console`, whose return
/// value (usually empty) is written to the child's stdin. Returns when the
/// child exits, or kills it once `timeout` has passed since the spawn.
pub fn supervise(
    mut cmd: Command,
    call: &str,
    timeout: Duration,
    console: &mut dyn FnMut(&[u8]) -> Vec<u8>,
) -> Result<Finished, Error> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A VM must not outlive a killed runner.
    crate::cleanup::die_with_parent(&mut cmd, crate::cleanup::SIGKILL);
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        call: call.to_string(),
        source,
    })?;
    let deadline = Instant::now() + timeout;
    let mut child = Reaper(child);
    let mut stdin = child.0.stdin.take();
    let stdout = child.0.stdout.take();
    let stderr = child.0.stderr.take();

    // Bounded: a guest printing faster than the parser reads waits in its
    // pipe instead of growing this queue.
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(64);
    if let Some(mut out) = stdout {
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Read errors end the stream like EOF: the child is gone or going.
            while let Ok(n @ 1..) = out.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    let (err_tx, err_rx) = mpsc::channel::<String>();
    if let Some(mut err) = stderr {
        thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_KEEP {
                    kept.drain(..kept.len() - STDERR_KEEP);
                }
            }
            let _ = err_tx.send(String::from_utf8_lossy(&kept).into_owned());
        });
    }

    let mut feed = |chunk: &[u8], stdin: &mut Option<std::process::ChildStdin>| {
        let reply = console(chunk);
        if let (false, Some(input)) = (reply.is_empty(), stdin.as_mut()) {
            // A child that closed its stdin just does not get the reply.
            if input
                .write_all(&reply)
                .and_then(|()| input.flush())
                .is_err()
            {
                *stdin = None;
            }
        }
    };

    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Checked before receiving: a guest printing nonstop never lets the
        // channel time out on its own.
        if left.is_zero() {
            timed_out = true;
            break;
        }
        match rx.recv_timeout(left) {
            Ok(chunk) => feed(&chunk, &mut stdin),
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // stdout closed: the child is exiting, but give it only until the deadline.
    let status = if timed_out {
        None
    } else {
        wait_until(&mut child.0, deadline)
    };
    let end = match status {
        Some(status) => End::Exited(status),
        None => {
            let _ = child.0.kill();
            End::TimedOut
        }
    };
    let _ = child.0.wait();
    drop(stdin);
    // The child is reaped, so its pipes are closed and the readers finish;
    // output still queued is the last thing the guest said. The grace period
    // only matters if something the child started still holds a pipe.
    while let Ok(chunk) = rx.recv_timeout(DRAIN_GRACE) {
        feed(&chunk, &mut None);
    }
    let stderr = err_rx.recv_timeout(DRAIN_GRACE).unwrap_or_default();
    Ok(Finished { end, stderr })
}

fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            // Past the deadline, or the status cannot be read: the caller kills.
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn streams_output_and_exit_status() {
        let mut seen = Vec::new();
        let f = supervise(
            sh("printf 'a\\nb'; echo oops >&2; exit 3"),
            "sh",
            Duration::from_secs(10),
            &mut |b| {
                seen.extend_from_slice(b);
                Vec::new()
            },
        )
        .expect("runs");
        assert_eq!(seen, b"a\nb");
        assert!(matches!(f.end, End::Exited(s) if s.code() == Some(3)));
        assert_eq!(f.stderr, "oops\n");
    }

    #[test]
    fn watchdog_kills_a_hang_and_keeps_its_last_output() {
        let started = Instant::now();
        let mut seen = Vec::new();
        let f = supervise(
            sh("echo before-hang; exec sleep 30"),
            "sh",
            Duration::from_millis(300),
            &mut |b| {
                seen.extend_from_slice(b);
                Vec::new()
            },
        )
        .expect("runs");
        assert!(matches!(f.end, End::TimedOut));
        assert_eq!(seen, b"before-hang\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "killed, not waited out"
        );
    }

    #[test]
    fn watchdog_stops_a_guest_that_never_stops_printing() {
        let mut bytes = 0usize;
        let f = supervise(
            sh("exec yes looping"),
            "yes",
            Duration::from_millis(300),
            &mut |b| {
                bytes += b.len();
                Vec::new()
            },
        )
        .expect("runs");
        assert!(matches!(f.end, End::TimedOut));
        assert!(bytes > 0);
    }

    #[test]
    fn closed_stdout_but_still_running_is_a_timeout() {
        let f = supervise(
            sh("exec >&-; exec sleep 30"),
            "sh",
            Duration::from_millis(300),
            &mut |_| Vec::new(),
        )
        .expect("runs");
        assert!(matches!(f.end, End::TimedOut));
    }

    #[test]
    fn replies_reach_stdin() {
        let mut seen = Vec::new();
        let f = supervise(
            sh("echo req; read line; echo got:$line"),
            "sh",
            Duration::from_secs(10),
            &mut |b| {
                seen.extend_from_slice(b);
                if b.starts_with(b"req") {
                    b"ack\n".to_vec()
                } else {
                    Vec::new()
                }
            },
        )
        .expect("runs");
        assert!(matches!(f.end, End::Exited(s) if s.success()));
        assert_eq!(String::from_utf8_lossy(&seen), "req\ngot:ack\n");
    }

    #[test]
    fn missing_binary_is_a_spawn_error_with_the_call() {
        let err = supervise(
            Command::new("/nonexistent/qemu"),
            "/nonexistent/qemu -M pc",
            Duration::from_secs(1),
            &mut |_| Vec::new(),
        )
        .expect_err("cannot spawn");
        match err {
            Error::Spawn { call, source } => {
                assert_eq!(call, "/nonexistent/qemu -M pc");
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
