//! A helper program run to its end for what it prints: its stdout, or an
//! error naming the command line, its exit code and its stderr's tail.

use crate::error::{Error, shell_line};
use std::ffi::OsString;
use std::process::Command;

/// Runs `program args…`; its stdout (lossy UTF-8) when it exits 0.
pub fn stdout_of(program: OsString, args: Vec<OsString>) -> Result<String, Error> {
    let out = Command::new(&program)
        .args(&args)
        .output()
        .map_err(|source| Error::Spawn {
            call: shell_line(program.clone(), args.clone()),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            call: shell_line(program, args),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_or_the_failure_named() {
        let ok = stdout_of("sh".into(), vec!["-c".into(), "echo hi".into()]).expect("runs");
        assert_eq!(ok, "hi\n");
        let err = stdout_of("sh".into(), vec!["-c".into(), "echo no >&2; exit 3".into()])
            .expect_err("fails");
        let text = err.to_string();
        assert!(
            text.contains("sh -c 'echo no >&2; exit 3'") && text.contains("no"),
            "{text}"
        );
        let missing = stdout_of("/nonexistent/tool".into(), Vec::new()).expect_err("no such");
        assert!(matches!(missing, Error::Spawn { .. }), "{missing}");
    }
}
