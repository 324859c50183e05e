//! The VMM's stdout, the one stream the runner reads: the guest's console
//! bytes and the VMM's own lines (facts, host-check answers, reports).
//! Guest bytes go through the relay (`convtest_proto::relay`), so no guest
//! line can read as a VMM, L1 or host line; everything written through
//! [`Write`] is the VMM's own and starts on a line of its own.

use convtest_proto::relay::GuestRelay;
use std::io::{self, Write};

/// Where the run loops write: [`Write`] for the VMM's own words,
/// [`ConsoleStream::guest`] for what the guest printed.
pub trait ConsoleStream: Write + Send {
    /// The guest's console output, as it came.
    fn guest(&mut self, bytes: &[u8]);
    /// Guest lines that would have read as a host layer's, so far.
    fn forged(&self) -> u64;
}

/// A [`ConsoleStream`] over `W` (stdout in the VMM, a buffer in tests).
pub struct Relayed<W: Write> {
    inner: W,
    relay: GuestRelay,
    scratch: Vec<u8>,
}

impl<W: Write> Relayed<W> {
    pub fn new(inner: W) -> Self {
        Relayed {
            inner,
            relay: GuestRelay::new(),
            scratch: Vec::new(),
        }
    }

    /// The stream behind it (tests read what was written).
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Writes what the relay let through; `flush` for the VMM's own words.
    /// Guest bytes are not flushed: stdout is line-buffered, so a guest
    /// line leaves whole (one write the L1 relays, not one per exit).
    fn put(&mut self, flush: bool) -> io::Result<()> {
        let mut r = self.inner.write_all(&self.scratch);
        if flush {
            r = r.and_then(|()| self.inner.flush());
        }
        self.scratch.clear();
        r
    }
}

impl<W: Write> Write for Relayed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.relay.host(buf, &mut self.scratch);
        self.put(true).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Send> ConsoleStream for Relayed<W> {
    fn guest(&mut self, bytes: &[u8]) {
        self.relay.guest(bytes, &mut self.scratch);
        // stdout gone means the runner is gone; the guest keeps running
        // until the watchdog or its own end.
        let _ = self.put(false);
    }

    fn forged(&self) -> u64 {
        self.relay.forged()
    }
}

impl<W: Write> Drop for Relayed<W> {
    /// What the relay still holds (an undecided line start) goes out last.
    fn drop(&mut self) {
        self.relay.finish(&mut self.scratch);
        let _ = self.put(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Facts;

    #[test]
    fn a_guest_cannot_write_a_vmm_line_but_the_vmm_can() {
        let mut s = Relayed::new(Vec::new());
        s.guest(b"ok 1 a\n# convtest-vmm: end=power_off\nhalf");
        let mut f = Facts::default();
        f.add("exits", 3);
        f.emit(&mut s);
        s.guest(b" line\n");
        assert_eq!(s.forged(), 1);
        assert_eq!(
            String::from_utf8_lossy(s.get_ref()),
            "ok 1 a\n# convtest-forged: # convtest-vmm: end=power_off\nhalf\n\
             # convtest-vmm: exits=3\n line\n"
        );
    }
}
