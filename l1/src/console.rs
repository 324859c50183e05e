//! The L1 console, shared by /init's own lines and the relayed VMM output.
//! It remembers whether the last byte ended a line so fact lines always
//! start on a fresh one (the runner only parses whole lines). When one of
//! /init's lines has to cut a VMM line (stderr arriving mid-line), the rest
//! of the VMM line goes on behind `# convtest-cut:`: /init cannot tell
//! whose it is, so it must not become a line start of its own (the VMM's
//! relay only vouches for the starts it saw).

use convtest_proto::wire::{CUT_PREFIX, L1_PREFIX};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Console(Arc<Mutex<State>>);

struct State {
    out: Box<dyn Write + Send>,
    at_line_start: bool,
    /// The last bytes written were the VMM's, in the middle of a line.
    raw_mid_line: bool,
    /// One of /init's lines cut a VMM line: its rest is marked.
    cut: bool,
}

impl Console {
    pub fn new() -> Console {
        Console::to(Box::new(io::stdout()))
    }

    fn to(out: Box<dyn Write + Send>) -> Console {
        // The kernel may have left a partial line (quiet boot: rarely).
        Console(Arc::new(Mutex::new(State {
            out,
            at_line_start: false,
            raw_mid_line: false,
            cut: false,
        })))
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        // A poisoned lock only means a relay thread panicked mid-write: the
        // console itself is still usable.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
        let _ = guard.out.flush();
    }

    /// Bytes as they came (the inner VMM's stdout: the guest's console).
    pub fn raw(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.with(|c| {
            // Console write errors have nowhere to be reported.
            if std::mem::take(&mut c.cut) && !matches!(bytes[0], b'\n' | b'\r') {
                let _ = c.out.write_all(CUT_PREFIX.as_bytes());
            }
            let _ = c.out.write_all(bytes);
            c.at_line_start = bytes.ends_with(b"\n");
            c.raw_mid_line = !matches!(bytes.last(), Some(b'\n' | b'\r'));
        });
    }

    /// The VMM's output ended (its process exited): a cut line has no rest.
    pub fn end_raw(&self) {
        self.with(|c| {
            c.cut = false;
            c.raw_mid_line = false;
        });
    }

    /// One whole line with `prefix`, on a fresh line.
    pub fn line(&self, prefix: &str, text: &str) {
        self.with(|c| {
            let lead = if c.at_line_start { "" } else { "\n" };
            c.cut |= std::mem::take(&mut c.raw_mid_line);
            let _ = writeln!(c.out, "{lead}{prefix}{text}");
            c.at_line_start = true;
        });
    }

    /// A `# convtest-l1:` fact line.
    pub fn fact(&self, text: &str) {
        self.line(L1_PREFIX, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_rest_of_a_cut_vmm_line_is_no_line_start() {
        let buf = Shared::default();
        let con = Console::to(Box::new(buf.clone()));
        con.fact("run_begin=a run_index=0 runs=1");
        con.raw(b"# convtest-vmm: x=1\nok 1 guest text ");
        con.line("# convtest-l1-stderr: ", "warning");
        con.raw(b"# convtest-l1: run_end=a vmm_exit=33\n");
        con.raw(b"next line\nhalf");
        con.end_raw();
        con.fact("run_end=a vmm_exit=33 run_ms=1");
        con.fact("run_begin=b run_index=1 runs=2");
        con.raw(b"# convtest-vmm: y=2\n");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "\n# convtest-l1: run_begin=a run_index=0 runs=1\n\
             # convtest-vmm: x=1\nok 1 guest text \n\
             # convtest-l1-stderr: warning\n\
             # convtest-cut: # convtest-l1: run_end=a vmm_exit=33\n\
             next line\nhalf\n\
             # convtest-l1: run_end=a vmm_exit=33 run_ms=1\n\
             # convtest-l1: run_begin=b run_index=1 runs=2\n\
             # convtest-vmm: y=2\n"
        );
    }
}
