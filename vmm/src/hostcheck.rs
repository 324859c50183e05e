//! Answers the guest's host checks (docs/design.md §2) from the VMM's own view of
//! guest memory. What "the host's view" is depends on the memory mode, so
//! each arch's memory type implements [`HostView`]; every answer names its
//! evidence: whether the kernel or hypervisor decided what the host could
//! see (`enforced`) or only the VMM's own tracking did (`bookkeeping`).

use convtest_proto::hostcheck::{Evidence, Request, pattern_word};
use convtest_proto::range::MemRange;

/// Read in pieces this big: bounded buffers, and a scan of a large guest
/// still answers within the guest's ack timeout.
const CHUNK: u64 = 1 << 20;

/// What the host found, and what decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Look {
    pub evidence: Evidence,
    pub detail: String,
}

impl Look {
    pub fn new(evidence: Evidence, detail: impl Into<String>) -> Self {
        Look {
            evidence,
            detail: detail.into(),
        }
    }
}

pub trait HostView {
    /// Reads guest memory the way the host may. Ok: what let it (the
    /// platform's mapping, or the VMM's tracking); Err: why it may not
    /// (private page, no mapping, outside RAM) and what decided that.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<Evidence, Look>;

    /// Every range the host can read right now (for leak scans), and what
    /// decided which ranges those are.
    fn visible(&self) -> (Vec<MemRange>, Evidence);

    /// The guest says `range` is private and wrote `canary` into every word
    /// of it. Ok: the host could not see the canary, and what stopped it;
    /// Err: what the host saw.
    fn private_probe(&self, range: MemRange, canary: u64) -> Result<Look, Look>;
}

/// One request's answer: ok, evidence, detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub ok: bool,
    pub evidence: Evidence,
    pub detail: String,
}

impl Answer {
    fn ok(l: Look) -> Self {
        Answer {
            ok: true,
            evidence: l.evidence,
            detail: l.detail,
        }
    }

    fn fail(l: Look) -> Self {
        Answer {
            ok: false,
            evidence: l.evidence,
            detail: l.detail,
        }
    }
}

pub fn answer(req: &Request, view: &dyn HostView) -> Answer {
    match *req {
        Request::Verify { range, seed } => verify(range, seed, view),
        Request::Scan { canary } => scan(canary, view),
        Request::NoRead { range, canary } => match view.private_probe(range, canary) {
            Ok(how) => Answer::ok(Look::new(
                how.evidence,
                format!("host refused: {}", how.detail),
            )),
            Err(saw) => Answer::fail(Look::new(
                saw.evidence,
                format!("host could see {range}: {}", saw.detail),
            )),
        },
    }
}

fn verify(range: MemRange, seed: u64, view: &dyn HostView) -> Answer {
    if !range.start.is_multiple_of(8) || !range.len().is_multiple_of(8) || range.is_empty() {
        return Answer::fail(Look::new(
            Evidence::Bookkeeping,
            format!("{range} is not a whole number of 8-byte words"),
        ));
    }
    let mut buf = Vec::new();
    let mut at = range.start;
    let mut evidence = Evidence::Enforced;
    while at < range.end {
        let n = (range.end - at).min(CHUNK);
        buf.resize(n as usize, 0);
        match view.read(at, &mut buf) {
            Ok(e) => evidence = evidence.weakest(e),
            Err(why) => {
                return Answer::fail(Look::new(
                    why.evidence,
                    format!("cannot read {at:#x}: {}", why.detail),
                ));
            }
        }
        for (i, w) in buf.as_chunks::<8>().0.iter().enumerate() {
            let pa = at + 8 * i as u64;
            let got = u64::from_le_bytes(*w);
            let want = pattern_word(seed, pa);
            if got != want {
                return Answer::fail(Look::new(
                    evidence,
                    format!("word at {pa:#x} is {got:#x}, guest wrote {want:#x}"),
                ));
            }
        }
        at += n;
    }
    Answer::ok(Look::new(
        evidence,
        format!("{} bytes at {range} hold the guest's pattern", range.len()),
    ))
}

fn scan(canary: u64, view: &dyn HostView) -> Answer {
    let mut buf = Vec::new();
    let mut scanned = 0u64;
    let (ranges, evidence) = view.visible();
    for r in ranges {
        let mut at = r.start & !7;
        while at < r.end {
            let n = (r.end - at).min(CHUNK);
            buf.resize(n as usize, 0);
            if let Err(why) = view.read(at, &mut buf) {
                return Answer::fail(Look::new(
                    why.evidence,
                    format!("scan stopped: cannot read {at:#x}: {}", why.detail),
                ));
            }
            if let Some(i) = buf
                .as_chunks::<8>()
                .0
                .iter()
                .position(|w| *w == canary.to_le_bytes())
            {
                return Answer::fail(Look::new(
                    evidence,
                    format!("canary {canary:#x} found at {:#x}", at + 8 * i as u64),
                ));
            }
            scanned += n;
            at += n;
        }
    }
    Answer::ok(Look::new(
        evidence,
        format!("canary absent from {scanned} host-visible bytes"),
    ))
}

/// Whether any word of `buf` (read from guest memory) is `canary`; for
/// [`HostView::private_probe`] implementations.
pub fn holds_canary(buf: &[u8], canary: u64) -> Option<usize> {
    buf.as_chunks::<8>()
        .0
        .iter()
        .position(|w| *w == canary.to_le_bytes())
        .map(|i| 8 * i)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Plain memory at `base`; `hidden` bytes from the end are unreadable.
    pub struct FlatView {
        pub base: u64,
        pub mem: RefCell<Vec<u8>>,
        pub hidden: MemRange,
    }

    impl FlatView {
        pub fn new(base: u64, len: usize) -> Self {
            FlatView {
                base,
                mem: RefCell::new(vec![0; len]),
                hidden: MemRange::new(base + len as u64 / 2, base + len as u64),
            }
        }
    }

    impl HostView for FlatView {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<Evidence, Look> {
            let r = MemRange::new(gpa, gpa + buf.len() as u64);
            if r.overlaps(&self.hidden) {
                return Err(Look::new(Evidence::Enforced, "private"));
            }
            let off = (gpa - self.base) as usize;
            buf.copy_from_slice(&self.mem.borrow()[off..off + buf.len()]);
            Ok(Evidence::Enforced)
        }
        fn visible(&self) -> (Vec<MemRange>, Evidence) {
            (
                vec![MemRange::new(self.base, self.hidden.start)],
                Evidence::Enforced,
            )
        }
        fn private_probe(&self, range: MemRange, canary: u64) -> Result<Look, Look> {
            let mut b = vec![0; range.len() as usize];
            match self.read(range.start, &mut b) {
                Err(e) => Ok(e),
                Ok(_) if holds_canary(&b, canary).is_some() => {
                    Err(Look::new(Evidence::Enforced, "canary seen"))
                }
                Ok(e) => Ok(Look::new(e, "canary absent")),
            }
        }
    }

    #[test]
    fn verify_checks_every_word_against_the_pattern() {
        let v = FlatView::new(0x1000, 0x2000);
        let r = MemRange::new(0x1000, 0x1100);
        assert!(!answer(&Request::Verify { range: r, seed: 9 }, &v).ok);
        for pa in (r.start..r.end).step_by(8) {
            let off = (pa - 0x1000) as usize;
            v.mem.borrow_mut()[off..off + 8].copy_from_slice(&pattern_word(9, pa).to_le_bytes());
        }
        let a = answer(&Request::Verify { range: r, seed: 9 }, &v);
        assert!(a.ok && a.evidence == Evidence::Enforced, "{a:?}");
        v.mem.borrow_mut()[0xf8] ^= 1;
        let a = answer(&Request::Verify { range: r, seed: 9 }, &v);
        assert!(!a.ok && a.detail.contains("0x10f8"), "{a:?}");
        let hidden = MemRange::new(0x2000, 0x2008);
        assert!(
            answer(
                &Request::Verify {
                    range: hidden,
                    seed: 9
                },
                &v
            )
            .detail
            .contains("private")
        );
    }

    #[test]
    fn scan_finds_canaries_only_in_visible_memory() {
        let v = FlatView::new(0x1000, 0x2000);
        assert!(answer(&Request::Scan { canary: 0xc0ffee }, &v).ok);
        v.mem.borrow_mut()[0x1800..0x1808].copy_from_slice(&0xc0ffee_u64.to_le_bytes());
        assert!(
            answer(&Request::Scan { canary: 0xc0ffee }, &v).ok,
            "hidden half"
        );
        v.mem.borrow_mut()[0x10..0x18].copy_from_slice(&0xc0ffee_u64.to_le_bytes());
        let a = answer(&Request::Scan { canary: 0xc0ffee }, &v);
        assert!(!a.ok && a.detail.contains("0x1010"), "{a:?}");
    }

    #[test]
    fn noread_passes_only_when_the_canary_is_not_seen() {
        let v = FlatView::new(0x1000, 0x2000);
        let noread = |start, canary| Request::NoRead {
            range: MemRange::new(start, start + 0x10),
            canary,
        };
        assert!(answer(&noread(0x2000, 7), &v).ok, "hidden");
        assert!(answer(&noread(0x1000, 7), &v).ok, "readable, canary absent");
        v.mem.borrow_mut()[0x8..0x10].copy_from_slice(&7u64.to_le_bytes());
        let a = answer(&noread(0x1000, 7), &v);
        assert!(!a.ok && a.detail.contains("canary seen"), "{a:?}");
    }
}
