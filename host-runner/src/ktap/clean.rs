//! Console bytes to clean lines. The console is not a clean KTAP stream:
//! firmware (SeaBIOS, OVMF, the bootloader) prints before the guest, with
//! ANSI escapes and bare `\r`; a crashing guest may stop mid-line or emit
//! garbage bytes. So bytes are cut into lines on `\n` *and* `\r`, escapes
//! and control bytes are dropped, tabs become spaces, invalid UTF-8 is
//! replaced, and blank lines are left out — byte by byte as
//! `convtest_proto::console_read` reads them (the relay that guards line
//! origins reads the same way).

use convtest_proto::console_read::{ByteReader, Read};

/// Longest line kept: a runaway guest printing without newlines must not
/// grow the buffer without bound.
pub(super) const MAX_LINE: usize = 4096;

#[derive(Default)]
pub(super) struct LineCleaner {
    pending: Vec<u8>,
    /// Where the last chunk left off (an escape sequence may span two).
    reader: ByteReader,
}

impl LineCleaner {
    /// Feeds raw console bytes; `line` gets each complete line that has
    /// text, trailing spaces cut.
    pub(super) fn feed(&mut self, bytes: &[u8], line: &mut impl FnMut(String)) {
        for &b in bytes {
            match self.reader.read(b) {
                Read::Break => {
                    if let Some(l) = self.take_line() {
                        line(l);
                    }
                }
                Read::Text(k) => self.push(k),
                Read::Dropped => {}
            }
        }
    }

    /// Ends the stream: the partial last line, if it has text.
    pub(super) fn finish(&mut self) -> Option<String> {
        self.take_line()
    }

    fn push(&mut self, b: u8) {
        if self.pending.len() < MAX_LINE {
            self.pending.push(b);
        }
    }

    fn take_line(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let line = String::from_utf8_lossy(&self.pending)
            .trim_end()
            .to_string();
        self.pending.clear();
        (!line.trim().is_empty()).then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut c = LineCleaner::default();
        let mut out = Vec::new();
        for chunk in chunks {
            c.feed(chunk, &mut |l| out.push(l));
        }
        (out, c.finish())
    }

    #[test]
    fn escapes_split_across_chunks_and_bare_carriage_returns() {
        let (out, rest) = lines(&[
            b"\x1b[0",
            b"1;01Hfirm\tware\r\n\r\n",
            b"\x1b",
            b"[2Jok 1 x  \npart",
        ]);
        assert_eq!(out, ["firm ware", "ok 1 x"]);
        assert_eq!(rest.as_deref(), Some("part"));
        assert_eq!(lines(&[b"  \n\x00\x07 \r"]), (Vec::new(), None));
    }
}
