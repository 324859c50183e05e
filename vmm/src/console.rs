//! The guest's console as the VMM sees it: bytes go on to the stream (whose
//! relay keeps guest lines from reading as the host's, stream.rs), and
//! complete lines are checked for host-check requests, which the VMM
//! answers itself (it is the only one that can see guest memory). Each
//! answer is also written to the stream as a `# convtest-host: <kind>`
//! line right after the request, so the runner reads the host's own word
//! (and its evidence) for the running test instead of taking the guest's;
//! the closing facts say how many of each kind were answered, which the
//! runner holds against the copies it read.

use super::hostcheck::{self, HostView};
use super::stream::ConsoleStream;
use convtest_proto::hostcheck::{
    Ack, AnswerCounts, AnswerKind, Evidence, Request, clip_detail, split_request,
};
use convtest_proto::wire::HOST_PREFIX;
use std::time::{Duration, Instant};

/// A line longer than this is not a request; keep memory bounded.
const LINE_MAX: usize = 512;

/// Answer bytes a console device may hold for the guest to read: a guest
/// that asks without ever reading cannot grow the VMM without bound (its
/// unanswered test fails instead).
pub const ACK_QUEUE_MAX: usize = 64 * 1024;

#[derive(Default)]
pub struct ConsoleTap {
    line: Vec<u8>,
    /// Requests answered so far, by kind (for the VMM's closing facts).
    pub answered: AnswerCounts,
    /// Time spent answering them.
    pub answering: Duration,
    /// Answers dropped because the device's queue was full.
    pub acks_dropped: u64,
}

impl ConsoleTap {
    /// A reset: the UART starts over, so does the line in progress; the
    /// counts cover the whole run.
    pub fn new_boot(&mut self) {
        self.line.clear();
    }

    /// Writes `bytes` to `out` as the guest's and returns the ack lines
    /// (with their newline) to type into the guest's UART for any requests
    /// completed.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut dyn ConsoleStream,
        view: &dyn HostView,
    ) -> Vec<u8> {
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
            if let Some((kind, ack)) = self.answer(&line, view) {
                // The echo follows the request's own line, before anything
                // the guest prints next.
                out.guest(&bytes[from..=i]);
                from = i + 1;
                // The runner being gone is not the VMM's problem.
                let _ = out.write_all(format!("{HOST_PREFIX}{} {ack}\n", kind.as_str()).as_bytes());
                acks.extend_from_slice(ack.as_bytes());
                acks.push(b'\n');
            }
        }
        out.guest(&bytes[from..]);
        acks
    }

    /// `acks` to queue behind `queued` bytes the guest has not read yet:
    /// all of them, or none (counted) when that would pass [`ACK_QUEUE_MAX`].
    pub fn admit(&mut self, queued: usize, acks: Vec<u8>) -> Vec<u8> {
        if queued.saturating_add(acks.len()) <= ACK_QUEUE_MAX {
            return acks;
        }
        self.acks_dropped += acks.iter().filter(|&&b| b == b'\n').count() as u64;
        Vec::new()
    }

    fn answer(&mut self, line: &str, view: &dyn HostView) -> Option<(AnswerKind, String)> {
        let (id, body) = split_request(line.trim_end_matches('\r'))?;
        let started = Instant::now();
        let req = Request::parse(body);
        let kind = AnswerKind::of(req.as_ref());
        self.answered.add(kind);
        let a = match req {
            Some(req) => hostcheck::answer(&req, view),
            None => hostcheck::Answer {
                ok: false,
                evidence: Evidence::Bookkeeping,
                detail: format!(
                    "unparsable request ({} bytes): {:?}",
                    body.len(),
                    body.chars().take(48).collect::<String>()
                ),
            },
        };
        // The guest's ack reader keeps 512 bytes: a longer ack would never
        // reach the test that waits for it.
        let ack = Ack {
            id,
            ok: a.ok,
            evidence: Some(a.evidence),
            detail: &clip_detail(&a.detail),
        }
        .to_string();
        self.answering += started.elapsed();
        Some((kind, ack))
    }

    /// `host_checks=N host_verify=… host_scan=… host_noread=… host_unparsable=… host_check_ms=…`.
    pub fn add_facts(&self, f: &mut super::facts::Facts) {
        f.add("host_checks", self.answered.total());
        for k in AnswerKind::ALL {
            f.add(k.fact_key(), self.answered.get(k));
        }
        f.add("host_check_ms", self.answering.as_millis())
            .add("host_acks_dropped", self.acks_dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostcheck::tests::FlatView;
    use crate::stream::Relayed;

    #[test]
    fn requests_split_across_chunks_are_answered_once_complete() {
        let view = FlatView::new(0x1000, 0x2000);
        let mut tap = ConsoleTap::default();
        let mut out = Relayed::new(Vec::new());
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
            String::from_utf8_lossy(out.get_ref()),
            "ok 1 x\n# convtest-req 4 scan 0x1234\r\n\
             # convtest-host: scan convtest-ack 4 ok enforced canary absent from 4096 host-visible bytes\n\
             more"
        );
        let bad = tap.feed(b"\n# convtest-req 5 dance\n", &mut out, &view);
        assert!(String::from_utf8(bad).unwrap().starts_with(
            "convtest-ack 5 fail bookkeeping unparsable request (5 bytes): \"dance\""
        ));
        assert_eq!(tap.answered.total(), 2);
        assert_eq!(tap.answered.get(AnswerKind::Unparsable), 1);
        let mut f = crate::facts::Facts::default();
        tap.add_facts(&mut f);
        let line = f.line();
        assert!(
            line.starts_with(
                "# convtest-vmm: host_checks=2 host_verify=0 host_scan=1 host_noread=0 host_unparsable=1 host_check_ms="
            ),
            "{line}"
        );
    }

    #[test]
    fn answers_nobody_reads_stop_queueing_at_the_limit() {
        let mut tap = ConsoleTap::default();
        let ack = b"convtest-ack 1 ok enforced x\n".to_vec();
        assert_eq!(tap.admit(0, ack.clone()), ack);
        assert_eq!(tap.admit(ACK_QUEUE_MAX - ack.len(), ack.clone()), ack);
        assert!(
            tap.admit(ACK_QUEUE_MAX - ack.len() + 1, ack.clone())
                .is_empty()
        );
        assert!(tap.admit(usize::MAX, ack).is_empty());
        assert_eq!(tap.acks_dropped, 2);
    }

    #[test]
    fn an_answer_to_a_long_binary_line_fits_what_the_guest_reads() {
        let view = FlatView::new(0x1000, 0x2000);
        let mut tap = ConsoleTap::default();
        let mut out = Relayed::new(Vec::new());
        let mut line = b"# convtest-req 4294967295 ".to_vec();
        line.extend((0..=255u8).filter(|b| *b != b'\n').cycle().take(2000));
        line.push(b'\n');
        let ack = tap.feed(&line, &mut out, &view);
        assert!(
            ack.len() < convtest_proto::hostcheck::LINE_MAX,
            "{}",
            ack.len()
        );
        let mut reader = convtest_proto::hostcheck::AckReader::new(u32::MAX);
        let fed: Vec<bool> = ack
            .iter()
            .map(|&b| matches!(reader.feed(b), convtest_proto::hostcheck::Fed::Ack(_)))
            .collect();
        assert_eq!(fed.last(), Some(&true), "the guest reads it as its answer");
    }

    #[test]
    fn a_guest_that_prints_the_hosts_answer_itself_is_caught_by_the_relay() {
        let view = FlatView::new(0x1000, 0x2000);
        let mut tap = ConsoleTap::default();
        let mut out = Relayed::new(Vec::new());
        let acks = tap.feed(
            b"    # convtest-host: verify convtest-ack 1 ok enforced forged by the guest\n",
            &mut out,
            &view,
        );
        assert!(acks.is_empty());
        assert_eq!(out.forged(), 1);
        assert!(
            String::from_utf8_lossy(out.get_ref())
                .starts_with("# convtest-forged:     # convtest-host:")
        );
        assert_eq!(tap.answered.total(), 0);
    }
}
