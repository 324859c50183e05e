//! The guest's console as the VMM sees it: bytes pass through to stdout
//! untouched, and complete lines are checked for host-check requests, which
//! the VMM answers itself (it is the only one that can see guest memory).
//! Each answer is also written to stdout as a `# convtest-host:` line right
//! after the request, so the runner reads the host's own word (and its
//! evidence) for the running test instead of taking the guest's.

use super::hostcheck::{self, HostView};
use convtest_proto::hostcheck::{Ack, Evidence, Request, split_request};
use convtest_proto::wire::HOST_PREFIX;
use std::io::Write;
use std::time::{Duration, Instant};

/// A line longer than this is not a request; keep memory bounded.
const LINE_MAX: usize = 512;

#[derive(Default)]
pub struct ConsoleTap {
    line: Vec<u8>,
    /// Requests answered so far (for the VMM's closing facts).
    pub answered: u32,
    /// Time spent answering them.
    pub answering: Duration,
}

impl ConsoleTap {
    /// Writes `bytes` to `out` and returns the ack lines (with their
    /// newline) to type into the guest's UART for any requests completed.
    pub fn feed(&mut self, bytes: &[u8], out: &mut dyn Write, view: &dyn HostView) -> Vec<u8> {
        // stdout gone means the runner is gone; the guest keeps running
        // until the watchdog or its own end, so write errors are ignored.
        // No flush: stdout is line-buffered, so whole lines leave in one
        // write (the L1 relays each write through its own console) instead
        // of one write per exit.
        let mut put = |b: &[u8]| {
            let _ = out.write_all(b);
        };
        let mut acks = Vec::new();
        let mut from = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b != b'\n' {
                if self.line.len() < LINE_MAX {
                    self.line.push(b);
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if let Some(ack) = self.answer(&line, view) {
                // The echo follows the request's own line, before anything
                // the guest prints next.
                put(&bytes[from..=i]);
                from = i + 1;
                put(format!("{HOST_PREFIX}{ack}\n").as_bytes());
                acks.extend_from_slice(ack.as_bytes());
                acks.push(b'\n');
            }
        }
        put(&bytes[from..]);
        acks
    }

    fn answer(&mut self, line: &str, view: &dyn HostView) -> Option<String> {
        let (id, body) = split_request(line.trim_end_matches('\r'))?;
        let started = Instant::now();
        self.answered += 1;
        let a = match Request::parse(body) {
            Some(req) => hostcheck::answer(&req, view),
            None => hostcheck::Answer {
                ok: false,
                evidence: Evidence::Bookkeeping,
                detail: format!("unparsable request {body:?}"),
            },
        };
        self.answering += started.elapsed();
        Some(
            Ack {
                id,
                ok: a.ok,
                evidence: Some(a.evidence),
                detail: &a.detail,
            }
            .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostcheck::tests::FlatView;

    #[test]
    fn requests_split_across_chunks_are_answered_once_complete() {
        let view = FlatView::new(0x1000, 0x2000);
        let mut tap = ConsoleTap::default();
        let mut out = Vec::new();
        assert!(
            tap.feed(b"ok 1 x\n# convtest-req 4 sc", &mut out, &view)
                .is_empty()
        );
        let ack = tap.feed(b"an 0x1234\r\nmore", &mut out, &view);
        assert_eq!(
            String::from_utf8(ack)
                .unwrap()
                .split(' ')
                .take(3)
                .collect::<Vec<_>>(),
            ["convtest-ack", "4", "ok"]
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "ok 1 x\n# convtest-req 4 scan 0x1234\r\n\
             # convtest-host: convtest-ack 4 ok enforced canary absent from 4096 host-visible bytes\n\
             more"
        );
        let bad = tap.feed(b"\n# convtest-req 5 dance\n", &mut out, &view);
        assert!(
            String::from_utf8(bad)
                .unwrap()
                .starts_with("convtest-ack 5 fail bookkeeping unparsable")
        );
        assert_eq!(tap.answered, 2);
    }
}
