//! One slow host command (apt, dpkg-deb, cargo, make) with a progress line:
//! its output is captured (shown on failure), its last line feeds the
//! progress spinner / CI heartbeat, and it dies with the runner.

use crate::error::Error;
use crate::progress::Progress;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Output kept for the error message of a failed step.
const KEEP_LINES: usize = 200;

/// Runs `cmd` to completion; a non-zero exit is an error with the call, the
/// code and the last lines of its stdout+stderr. Returns how long it took.
pub fn run(mut cmd: Command, call: &str, label: &str, quiet: bool) -> Result<Duration, Error> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::cleanup::die_with_parent(&mut cmd, crate::cleanup::SIGTERM);
    let mut progress = Progress::start(label, quiet);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            progress.finish(false);
            return Err(Error::Spawn {
                call: call.to_string(),
                source,
            });
        }
    };
    // Both streams arrive as lines on one channel, so the heartbeat runs
    // between them and neither pipe can fill up and stall the child.
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut kept: Vec<String> = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                progress.message(&line);
                kept.push(line);
                if kept.len() > KEEP_LINES {
                    kept.remove(0);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => progress.heartbeat(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait();
    let ok = matches!(&status, Ok(s) if s.success());
    let took = progress.finish(ok);
    match status {
        Ok(s) if s.success() => Ok(took),
        Ok(s) => Err(Error::Command {
            call: call.to_string(),
            code: s.code(),
            stderr: kept.join("\n"),
        }),
        Err(source) => Err(Error::Spawn {
            call: call.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_call_code_and_both_streams() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out-line; echo err-line >&2; exit 7"]);
        match run(cmd, "sh -c …", "test", true) {
            Err(Error::Command { call, code, stderr }) => {
                assert_eq!((call.as_str(), code), ("sh -c …", Some(7)));
                assert!(stderr.contains("out-line") && stderr.contains("err-line"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn success() {
        let mut cmd = Command::new("true");
        cmd.arg("x");
        assert!(run(cmd, "true x", "test", true).is_ok());
    }
}
