//! One inner `convtest vmm` run: this same binary as a child, its stdout
//! relayed raw and its stderr line by line (prefixed) to the console, and
//! killed by pid once its time limit has passed, so one wedged run cannot
//! use up the time of the runs after it. The run ends when the VMM tells its
//! exit status (end_pipe.rs) or exits; a VMM still tearing its VM down is
//! left [`Lingering`] until the next run starts (or the L1 powers off).

use crate::console::Console;
use crate::end_pipe::EndPipe;
use crate::failure::Failure;
use crate::runs::RunPlan;
use convtest_proto::l1::marker::VmmExit;
use convtest_proto::wire::L1_STDERR_PREFIX;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Runs `plan` to its end or its limit; a VMM that told its end before
/// tearing its VM down comes back still running.
pub fn run(con: &Console, plan: &RunPlan) -> Result<(VmmExit, Option<Lingering>), Failure> {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    let mut cmd = Command::new(exe);
    cmd.args(&plan.argv);
    run_command(con, cmd, plan.limit)
}

/// A VMM that told its run's end and is still tearing its VM down; its
/// time limit still holds. [`Lingering::finish`] waits for it; dropped, it
/// is left to the power-off.
pub struct Lingering {
    child: Child,
    waiter: JoinHandle<io::Result<()>>,
    stop: mpsc::Sender<()>,
    watchdog: JoinHandle<bool>,
}

impl Lingering {
    /// Waits until the VMM has exited (or its limit killed it) and reaps it.
    pub fn finish(mut self) {
        let exited = self.waiter.join();
        let _ = self.stop.send(());
        let _ = self.watchdog.join();
        if !matches!(exited, Ok(Ok(()))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

enum Event {
    Told(i32),
    Exited,
}

/// `cmd` as a run: relayed, limited, its end as /init reports it (and the
/// VMM still tearing down, when it told its end first).
pub fn run_command(
    con: &Console,
    mut cmd: Command,
    limit: Duration,
) -> Result<(VmmExit, Option<Lingering>), Failure> {
    let mut end = EndPipe::new().map_err(|err| Failure::Spawn { err })?;
    end.attach(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| Failure::Spawn { err })?;
    end.spawned();
    let relays = [
        child.stdout.take().map(|out| relay_raw(con.clone(), out)),
        child.stderr.take().map(|err| relay_lines(con.clone(), err)),
    ];
    let pid = child.id();
    let (stop, watchdog) = watchdog(pid, limit);
    let (events, event) = mpsc::channel();
    let told = events.clone();
    thread::spawn(move || {
        if let Some(code) = end.told() {
            let _ = told.send(Event::Told(code));
        }
    });
    let waiter = thread::spawn(move || {
        let exited = wait_exited(pid);
        let _ = events.send(Event::Exited);
        exited
    });
    let told = match event.recv() {
        Ok(Event::Told(code)) => Some(code),
        _ => None,
    };
    if let Some(code) = told {
        // Its stdout and stderr now point at /dev/null: the relays end.
        for t in relays.into_iter().flatten() {
            let _ = t.join();
        }
        con.end_raw();
        let lingering = Lingering {
            child,
            waiter,
            stop,
            watchdog,
        };
        return Ok((VmmExit::Code(code), Some(lingering)));
    }
    let exited = waiter
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("waiter panicked")));
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
    Ok((exit_of(status, limit_struck), None))
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
            Ok((exit, lingering)) => {
                if let Some(l) = lingering {
                    l.finish();
                }
                exit
            }
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
    fn a_vmm_that_tells_its_end_is_left_to_finish() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 5 >&3; exec 3>&- >/dev/null 2>&1; sleep 0.5; exit 0",
        ]);
        let started = Instant::now();
        let (exit, lingering) = run_command(&Console::new(), cmd, Duration::from_secs(10))
            .unwrap_or_else(|f| panic!("{}", f.line()));
        assert_eq!(exit, VmmExit::Code(5), "the told status, not the exit's");
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "not waited out"
        );
        let lingering = lingering.expect("still running");
        lingering.finish();
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "finish waits"
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
