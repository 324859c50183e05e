//! Answers the guest's host checks (DESIGN.md §2) from the VMM's own view of
//! guest memory. What "the host's view" is depends on the memory mode, so
//! each arch's memory type implements [`HostView`].

use convtest_proto::hostcheck::{Request, pattern_word};
use convtest_proto::range::MemRange;

/// Read in pieces this big: bounded buffers, and a scan of a large guest
/// still answers within the guest's ack timeout.
const CHUNK: u64 = 1 << 20;

pub trait HostView {
    /// Reads guest memory the way the host may; Err names why it may not
    /// (private page, no mapping, outside RAM).
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), String>;

    /// Every range the host can read right now (for leak scans).
    fn visible(&self) -> Vec<MemRange>;

    /// Tries to read `range` and reports how the host was refused: Ok(how)
    /// when it could not read it (the expected answer for private memory),
    /// Err(what it saw) when it could.
    fn refused(&self, range: MemRange) -> Result<String, String>;
}

/// `(ok, detail)` for one request.
pub fn answer(req: &Request, view: &dyn HostView) -> (bool, String) {
    match *req {
        Request::Verify { range, seed } => verify(range, seed, view),
        Request::Scan { canary } => scan(canary, view),
        Request::NoRead { range } => match view.refused(range) {
            Ok(how) => (true, format!("host refused: {how}")),
            Err(saw) => (false, format!("host could read {range}: {saw}")),
        },
    }
}

fn verify(range: MemRange, seed: u64, view: &dyn HostView) -> (bool, String) {
    if !range.start.is_multiple_of(8) || !range.len().is_multiple_of(8) || range.is_empty() {
        return (
            false,
            format!("{range} is not a whole number of 8-byte words"),
        );
    }
    let mut buf = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let n = (range.end - at).min(CHUNK);
        buf.resize(n as usize, 0);
        if let Err(why) = view.read(at, &mut buf) {
            return (false, format!("cannot read {:#x}: {why}", at));
        }
        for (i, w) in buf.as_chunks::<8>().0.iter().enumerate() {
            let pa = at + 8 * i as u64;
            let got = u64::from_le_bytes(*w);
            let want = pattern_word(seed, pa);
            if got != want {
                return (
                    false,
                    format!("word at {pa:#x} is {got:#x}, guest wrote {want:#x}"),
                );
            }
        }
        at += n;
    }
    (
        true,
        format!("{} bytes at {range} hold the guest's pattern", range.len()),
    )
}

fn scan(canary: u64, view: &dyn HostView) -> (bool, String) {
    let mut buf = Vec::new();
    let mut scanned = 0u64;
    for r in view.visible() {
        let mut at = r.start & !7;
        while at < r.end {
            let n = (r.end - at).min(CHUNK);
            buf.resize(n as usize, 0);
            if let Err(why) = view.read(at, &mut buf) {
                return (false, format!("scan stopped: cannot read {at:#x}: {why}"));
            }
            if let Some(i) = buf
                .as_chunks::<8>()
                .0
                .iter()
                .position(|w| *w == canary.to_le_bytes())
            {
                return (
                    false,
                    format!("canary {canary:#x} found at {:#x}", at + 8 * i as u64),
                );
            }
            scanned += n;
            at += n;
        }
    }
    (
        true,
        format!("canary absent from {scanned} host-visible bytes"),
    )
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
        fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), String> {
            let r = MemRange::new(gpa, gpa + buf.len() as u64);
            if r.overlaps(&self.hidden) {
                return Err("private".into());
            }
            let off = (gpa - self.base) as usize;
            buf.copy_from_slice(&self.mem.borrow()[off..off + buf.len()]);
            Ok(())
        }
        fn visible(&self) -> Vec<MemRange> {
            vec![MemRange::new(self.base, self.hidden.start)]
        }
        fn refused(&self, range: MemRange) -> Result<String, String> {
            let mut b = vec![0; range.len() as usize];
            match self.read(range.start, &mut b) {
                Err(e) => Ok(e),
                Ok(()) => Err("read worked".into()),
            }
        }
    }

    #[test]
    fn verify_checks_every_word_against_the_pattern() {
        let v = FlatView::new(0x1000, 0x2000);
        let r = MemRange::new(0x1000, 0x1100);
        assert!(!answer(&Request::Verify { range: r, seed: 9 }, &v).0);
        for pa in (r.start..r.end).step_by(8) {
            let off = (pa - 0x1000) as usize;
            v.mem.borrow_mut()[off..off + 8].copy_from_slice(&pattern_word(9, pa).to_le_bytes());
        }
        let (ok, detail) = answer(&Request::Verify { range: r, seed: 9 }, &v);
        assert!(ok, "{detail}");
        v.mem.borrow_mut()[0xf8] ^= 1;
        let (ok, detail) = answer(&Request::Verify { range: r, seed: 9 }, &v);
        assert!(!ok && detail.contains("0x10f8"), "{detail}");
        let hidden = MemRange::new(0x2000, 0x2008);
        assert!(
            answer(
                &Request::Verify {
                    range: hidden,
                    seed: 9
                },
                &v
            )
            .1
            .contains("private")
        );
    }

    #[test]
    fn scan_finds_canaries_only_in_visible_memory() {
        let v = FlatView::new(0x1000, 0x2000);
        assert!(answer(&Request::Scan { canary: 0xc0ffee }, &v).0);
        v.mem.borrow_mut()[0x1800..0x1808].copy_from_slice(&0xc0ffee_u64.to_le_bytes());
        assert!(
            answer(&Request::Scan { canary: 0xc0ffee }, &v).0,
            "hidden half"
        );
        v.mem.borrow_mut()[0x10..0x18].copy_from_slice(&0xc0ffee_u64.to_le_bytes());
        let (ok, d) = answer(&Request::Scan { canary: 0xc0ffee }, &v);
        assert!(!ok && d.contains("0x1010"), "{d}");
    }

    #[test]
    fn noread_passes_only_when_refused() {
        let v = FlatView::new(0x1000, 0x2000);
        assert!(
            answer(
                &Request::NoRead {
                    range: MemRange::new(0x2000, 0x2010)
                },
                &v
            )
            .0
        );
        assert!(
            !answer(
                &Request::NoRead {
                    range: MemRange::new(0x1000, 0x1010)
                },
                &v
            )
            .0
        );
    }
}
