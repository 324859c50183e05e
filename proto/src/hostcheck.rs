//! The host-check channel (docs/design.md §2): the guest asks the host to look at
//! memory from its side and waits for one answer line.
//!
//! guest → host: `# convtest-req <id> <verb> <args…>`
//! host → guest: `convtest-ack <id> ok|fail [enforced|bookkeeping] <detail…>`
//!
//! The evidence word says what decided the host's answer: the kernel or
//! hypervisor (a refusal, or bytes seen through the mapping the platform
//! routes) or only the VMM's own tracking of page states.

use crate::range::MemRange;
use core::fmt;

pub const REQ_PREFIX: &str = "# convtest-req ";
pub const ACK_PREFIX: &str = "convtest-ack ";

/// The word the guest writes at guest-physical `pa` for pattern `seed`; the
/// host recomputes it to prove it sees the same page.
pub const fn pattern_word(seed: u64, pa: u64) -> u64 {
    crate::prng::mix(seed ^ pa)
}

/// What decided a host-check answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evidence {
    /// Only the VMM's own record of page states: a platform that leaks
    /// would not have been noticed.
    Bookkeeping,
    /// The kernel or hypervisor decided: it refused the host (SIGSEGV,
    /// SIGBUS, EFAULT, the page absent from the host's mapping) or routed
    /// the bytes the host saw.
    Enforced,
}

impl Evidence {
    pub const fn as_str(self) -> &'static str {
        match self {
            Evidence::Enforced => "enforced",
            Evidence::Bookkeeping => "bookkeeping",
        }
    }

    pub fn parse(s: &str) -> Option<Evidence> {
        match s {
            "enforced" => Some(Evidence::Enforced),
            "bookkeeping" => Some(Evidence::Bookkeeping),
            _ => None,
        }
    }

    /// The weaker of two: a claim is only as strong as its weakest check.
    pub fn weakest(self, other: Evidence) -> Evidence {
        self.min(other)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Every 8-byte word of `range` holds `pattern_word(seed, pa)`.
    Verify { range: MemRange, seed: u64 },
    /// No host-visible guest memory contains the 8-byte `canary`.
    Scan { canary: u64 },
    /// The host cannot see what the guest just wrote into `range` (it says
    /// the range is private): every word of it holds `canary`.
    NoRead { range: MemRange, canary: u64 },
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Verify { range, seed } => write!(
                f,
                "verify {:#x} {:#x} {:#x}",
                range.start,
                range.len(),
                seed
            ),
            Request::Scan { canary } => write!(f, "scan {canary:#x}"),
            Request::NoRead { range, canary } => write!(
                f,
                "noread {:#x} {:#x} {canary:#x}",
                range.start,
                range.len()
            ),
        }
    }
}

/// What a host answered, by kind: the word before the VMM's copy of each
/// ack (`# convtest-host: <kind> convtest-ack …`), and the VMM's count of
/// each (`host_<kind>=`), which the runner holds against the copies it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    Verify,
    Scan,
    NoRead,
    /// A request line the host could not parse (answered `fail`).
    Unparsable,
}

impl AnswerKind {
    pub const ALL: [AnswerKind; 4] = [
        AnswerKind::Verify,
        AnswerKind::Scan,
        AnswerKind::NoRead,
        AnswerKind::Unparsable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Verify => "verify",
            AnswerKind::Scan => "scan",
            AnswerKind::NoRead => "noread",
            AnswerKind::Unparsable => "unparsable",
        }
    }

    pub fn parse(s: &str) -> Option<AnswerKind> {
        AnswerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The VMM's fact key for how many it answered (`host_verify`, …).
    pub const fn fact_key(self) -> &'static str {
        match self {
            AnswerKind::Verify => "host_verify",
            AnswerKind::Scan => "host_scan",
            AnswerKind::NoRead => "host_noread",
            AnswerKind::Unparsable => "host_unparsable",
        }
    }

    pub const fn of(req: Option<&Request>) -> AnswerKind {
        match req {
            Some(Request::Verify { .. }) => AnswerKind::Verify,
            Some(Request::Scan { .. }) => AnswerKind::Scan,
            Some(Request::NoRead { .. }) => AnswerKind::NoRead,
            None => AnswerKind::Unparsable,
        }
    }
}

/// Per kind, how many answers (the VMM's count or the runner's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerCounts(pub [u64; 4]);

impl AnswerCounts {
    pub fn add(&mut self, k: AnswerKind) {
        self.0[k as usize] += 1;
    }

    pub fn get(&self, k: AnswerKind) -> u64 {
        self.0[k as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

fn hex(v: &str) -> Option<u64> {
    u64::from_str_radix(v.strip_prefix("0x")?, 16).ok()
}

impl Request {
    /// Parses `<verb> <args…>` (the part after the id).
    pub fn parse(s: &str) -> Option<Request> {
        let mut w = s.split_ascii_whitespace();
        let req = match w.next()? {
            "verify" => {
                let (start, len, seed) = (hex(w.next()?)?, hex(w.next()?)?, hex(w.next()?)?);
                Request::Verify {
                    range: MemRange::new(start, start.checked_add(len)?),
                    seed,
                }
            }
            "scan" => Request::Scan {
                canary: hex(w.next()?)?,
            },
            "noread" => {
                let (start, len, canary) = (hex(w.next()?)?, hex(w.next()?)?, hex(w.next()?)?);
                Request::NoRead {
                    range: MemRange::new(start, start.checked_add(len)?),
                    canary,
                }
            }
            _ => return None,
        };
        w.next().is_none().then_some(req)
    }
}

/// A request line: `(id, request text)`, `None` if `line` is not one.
pub fn split_request(line: &str) -> Option<(u32, &str)> {
    let rest = line.trim_start().strip_prefix(REQ_PREFIX)?;
    let (id, body) = rest.split_once(' ')?;
    Some((id.parse().ok()?, body))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    pub id: u32,
    pub ok: bool,
    /// What decided the answer; `None` from a host that does not say.
    pub evidence: Option<Evidence>,
    pub detail: &'a str,
}

impl fmt::Display for Ack<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.ok { "ok" } else { "fail" };
        write!(f, "{ACK_PREFIX}{} {status} ", self.id)?;
        if let Some(e) = self.evidence {
            write!(f, "{} ", e.as_str())?;
        }
        write!(f, "{}", crate::ktap::OneLine(self.detail))
    }
}

impl<'a> Ack<'a> {
    pub fn parse(line: &'a str) -> Option<Ack<'a>> {
        let rest = line.trim().strip_prefix(ACK_PREFIX)?;
        let (id, rest) = rest.split_once(' ')?;
        let (status, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        let ok = match status {
            "ok" => true,
            "fail" => false,
            _ => return None,
        };
        let (first, after) = detail.split_once(' ').unwrap_or((detail, ""));
        let (evidence, detail) = match Evidence::parse(first) {
            Some(e) => (Some(e), after),
            None => (None, detail),
        };
        Some(Ack {
            id: id.parse().ok()?,
            ok,
            evidence,
            detail,
        })
    }
}

/// Longest input line an `AckReader` keeps; longer ones are skipped whole.
pub const LINE_MAX: usize = 512;
/// Longest detail a host puts in an ack, so the whole ack fits in
/// [`LINE_MAX`] (the id, status and evidence take under 50 bytes).
pub const ACK_DETAIL_MAX: usize = 400;

/// `detail` cut to [`ACK_DETAIL_MAX`] bytes at a character boundary, `...`
/// marking the cut.
pub fn clip_detail(detail: &str) -> alloc::borrow::Cow<'_, str> {
    if detail.len() <= ACK_DETAIL_MAX {
        return alloc::borrow::Cow::Borrowed(detail);
    }
    let mut cut = ACK_DETAIL_MAX - 3;
    while !detail.is_char_boundary(cut) {
        cut -= 1;
    }
    alloc::borrow::Cow::Owned(alloc::format!("{}...", &detail[..cut]))
}

/// What one input byte completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fed<'a> {
    /// Nothing yet (mid-line, or an empty line).
    More,
    /// A complete line that is not the ack awaited (echo, noise, a late
    /// ack of an earlier request, a line too long to keep).
    Stray,
    /// The awaited ack.
    Ack(Ack<'a>),
}

/// Assembles console input into lines in a fixed buffer and picks out the
/// ack for one request id. No allocation: the guest feeds it byte by byte
/// from a polled UART.
pub struct AckReader {
    id: u32,
    buf: [u8; LINE_MAX],
    len: usize,
    overflowed: bool,
}

impl AckReader {
    pub const fn new(id: u32) -> Self {
        Self {
            id,
            buf: [0; LINE_MAX],
            len: 0,
            overflowed: false,
        }
    }

    pub fn feed(&mut self, b: u8) -> Fed<'_> {
        if b != b'\n' && b != b'\r' {
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = b;
                    self.len += 1;
                }
                None => self.overflowed = true,
            }
            return Fed::More;
        }
        let (len, overflowed) = (self.len, self.overflowed);
        self.len = 0;
        self.overflowed = false;
        if len == 0 && !overflowed {
            return Fed::More;
        }
        if overflowed {
            return Fed::Stray;
        }
        match core::str::from_utf8(&self.buf[..len])
            .ok()
            .and_then(Ack::parse)
        {
            Some(ack) if ack.id == self.id => Fed::Ack(ack),
            _ => Fed::Stray,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::ToString;

    #[test]
    fn a_clipped_detail_keeps_the_ack_within_what_a_reader_keeps() {
        let long: std::string::String = "\u{e9}".repeat(1000);
        let d = clip_detail(&long);
        assert!(d.len() <= ACK_DETAIL_MAX && d.ends_with("..."));
        let ack = Ack {
            id: u32::MAX,
            ok: false,
            evidence: Some(Evidence::Bookkeeping),
            detail: &d,
        }
        .to_string();
        assert!(ack.len() < LINE_MAX, "{}", ack.len());
        assert_eq!(clip_detail("short"), "short");
    }

    #[test]
    fn requests_roundtrip() {
        for r in [
            Request::Verify {
                range: MemRange::from_len(0x10_0000, 0x1000),
                seed: 7,
            },
            Request::Scan {
                canary: 0xdead_beef,
            },
            Request::NoRead {
                range: MemRange::from_len(0x20_0000, 0x2000),
                canary: 0xc0ffee,
            },
        ] {
            let line = format!("{REQ_PREFIX}3 {r}");
            let (id, body) = split_request(&line).unwrap();
            assert_eq!(id, 3);
            assert_eq!(Request::parse(body), Some(r));
        }
    }

    #[test]
    fn bad_requests() {
        assert_eq!(Request::parse("verify 0x1000 0x10"), None);
        assert_eq!(Request::parse("verify 0x1000 0x10 0x1 extra"), None);
        assert_eq!(
            Request::parse("noread 0xffffffffffffffff 0x10 0x1"),
            None,
            "overflowing range"
        );
        assert_eq!(Request::parse("noread 0x1000 0x10"), None, "no canary");
        assert_eq!(Request::parse("dance"), None);
        assert_eq!(split_request("# convtest-req x verify"), None);
    }

    fn feed_all(r: &mut AckReader, bytes: &[u8]) -> (u32, Option<(bool, std::string::String)>) {
        let mut stray = 0;
        for &b in bytes {
            match r.feed(b) {
                Fed::More => {}
                Fed::Stray => stray += 1,
                Fed::Ack(a) => return (stray, Some((a.ok, a.detail.into()))),
            }
        }
        (stray, None)
    }

    #[test]
    fn reader_skips_strays_and_finds_its_ack() {
        let mut r = AckReader::new(7);
        let input =
            b"hello\r\n\nconvtest-ack 6 ok late\nconvtest-ack 7 fail word at 0x10 differs\r\n";
        assert_eq!(
            feed_all(&mut r, input),
            (2, Some((false, "word at 0x10 differs".into())))
        );
        let mut r = AckReader::new(1);
        let mut long = std::vec![b'x'; LINE_MAX + 10];
        long.extend_from_slice(b"\nconvtest-ack 1 ok\n");
        assert_eq!(feed_all(&mut r, &long), (1, Some((true, "".into()))));
        let mut r = AckReader::new(1);
        assert_eq!(
            feed_all(&mut r, b"convtest-ack 1 ok"),
            (0, None),
            "no line end yet"
        );
        assert_eq!(feed_all(&mut r, b"\n").1, Some((true, "".into())));
    }

    #[test]
    fn acks() {
        let a = Ack {
            id: 9,
            ok: false,
            evidence: None,
            detail: "word at 0x1000 differs\n",
        };
        let s = a.to_string();
        assert_eq!(s, "convtest-ack 9 fail word at 0x1000 differs ");
        assert_eq!(Ack::parse(&s).map(|a| (a.id, a.ok)), Some((9, false)));
        assert_eq!(
            Ack::parse("convtest-ack 1 ok"),
            Some(Ack {
                id: 1,
                ok: true,
                evidence: None,
                detail: ""
            })
        );
        let e = Ack {
            id: 2,
            ok: true,
            evidence: Some(Evidence::Bookkeeping),
            detail: "page 0x1000 is private in the VMM's tracking",
        };
        assert_eq!(
            e.to_string(),
            "convtest-ack 2 ok bookkeeping page 0x1000 is private in the VMM's tracking"
        );
        assert_eq!(Ack::parse(&e.to_string()), Some(e));
        assert_eq!(
            Ack::parse("convtest-ack 3 ok enforced").map(|a| (a.evidence, a.detail)),
            Some((Some(Evidence::Enforced), ""))
        );
        assert_eq!(
            Evidence::Enforced.weakest(Evidence::Bookkeeping),
            Evidence::Bookkeeping
        );
        assert_eq!(Ack::parse("convtest-ack 1 maybe"), None);
    }
}
