//! The L1 console, shared by /init's own lines and the relayed VMM output.
//! It remembers whether the last byte ended a line so fact lines always
//! start on a fresh one (the runner only parses whole lines).

use convtest_proto::wire::L1_PREFIX;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Console(Arc<Mutex<State>>);

struct State {
    at_line_start: bool,
}

impl Console {
    pub fn new() -> Console {
        // The kernel may have left a partial line (quiet boot: rarely).
        Console(Arc::new(Mutex::new(State {
            at_line_start: false,
        })))
    }

    fn with(&self, f: impl FnOnce(&mut State, &mut io::StdoutLock<'_>)) {
        // A poisoned lock only means a relay thread panicked mid-write: the
        // console itself is still usable.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = io::stdout().lock();
        f(&mut guard, &mut out);
        let _ = out.flush();
    }

    /// Bytes as they came (the inner VMM's stdout: the guest's console).
    pub fn raw(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.with(|c, out| {
            // Console write errors have nowhere to be reported.
            let _ = out.write_all(bytes);
            c.at_line_start = bytes.ends_with(b"\n");
        });
    }

    /// One whole line with `prefix`, on a fresh line.
    pub fn line(&self, prefix: &str, text: &str) {
        self.with(|c, out| {
            let lead = if c.at_line_start { "" } else { "\n" };
            let _ = writeln!(out, "{lead}{prefix}{text}");
            c.at_line_start = true;
        });
    }

    /// A `# convtest-l1:` fact line.
    pub fn fact(&self, text: &str) {
        self.line(L1_PREFIX, text);
    }
}
