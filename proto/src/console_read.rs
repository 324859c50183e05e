//! How the runner reads console bytes, one at a time: a line ends at `\n`
//! or `\r` outside an escape sequence; ANSI escape sequences and control
//! bytes are dropped; a tab reads as a space. The runner's line cleaner
//! (host-runner `ktap/clean.rs`) and the relay that keeps guest lines from
//! reading as host lines (`relay.rs`) both read through this, so they
//! cannot disagree on where a line starts or what it says.

/// Where the reader is inside an ANSI escape sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC: the next byte is the sequence's (a `[` opens a CSI).
    Start,
    /// After `ESC [`: parameters until a final byte 0x40..=0x7e.
    Csi,
}

/// What one byte is to the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The line ends here.
    Break,
    /// Text: this byte goes into the line.
    Text(u8),
    /// Nothing the line shows (part of an escape, a control byte).
    Dropped,
}

/// The reader's state between bytes (an escape may span chunks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteReader {
    escape: Escape,
}

impl ByteReader {
    pub fn read(&mut self, b: u8) -> Read {
        match self.escape {
            Escape::Start => {
                self.escape = if b == b'[' { Escape::Csi } else { Escape::None };
                return Read::Dropped;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = Escape::None;
                }
                return Read::Dropped;
            }
            Escape::None => {}
        }
        match b {
            b'\n' | b'\r' => Read::Break,
            0x1b => {
                self.escape = Escape::Start;
                Read::Dropped
            }
            b'\t' => Read::Text(b' '),
            0x00..=0x1f | 0x7f => Read::Dropped,
            _ => Read::Text(b),
        }
    }

    /// Whether an escape sequence is open (a line break now would be
    /// swallowed by it).
    pub fn in_escape(&self) -> bool {
        self.escape != Escape::None
    }

    /// The byte that closes an open escape sequence whatever its state:
    /// after ESC it is the one byte the sequence takes, after `ESC [` a
    /// final byte.
    pub const CLOSE_ESCAPE: u8 = b'm';

    /// Ends an open escape sequence as reading [`Self::CLOSE_ESCAPE`]
    /// would; true when one was open (a writer then owes every later
    /// reader that byte).
    pub fn close_escape(&mut self) -> bool {
        let open = self.in_escape();
        self.escape = Escape::None;
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> alloc::vec::Vec<Read> {
        let mut r = ByteReader::default();
        bytes.iter().map(|&b| r.read(b)).collect()
    }

    #[test]
    fn escapes_and_controls_drop_tabs_are_spaces_breaks_end_lines() {
        use Read::{Break, Dropped, Text};
        assert_eq!(
            read_all(b"a\x1b[1;31mb\tc\x07\r\x1b(d\n"),
            [
                Text(b'a'),
                Dropped,
                Dropped,
                Dropped,
                Dropped,
                Dropped,
                Dropped,
                Dropped,
                Text(b'b'),
                Text(b' '),
                Text(b'c'),
                Dropped,
                Break,
                Dropped,
                Dropped,
                Text(b'd'),
                Break
            ]
        );
    }

    #[test]
    fn a_break_inside_an_escape_is_swallowed_unless_closed() {
        let mut r = ByteReader::default();
        assert_eq!(r.read(0x1b), Read::Dropped);
        assert_eq!(r.read(b'['), Read::Dropped);
        assert!(r.in_escape());
        assert_eq!(r.read(b'\n'), Read::Dropped, "inside CSI");
        assert!(r.close_escape());
        assert_eq!(r.read(b'\n'), Read::Break);
        assert!(!r.close_escape());
        // The closing byte does what close_escape models, from either state.
        for open in [&b"\x1b"[..], b"\x1b[12;"] {
            let mut r = ByteReader::default();
            for &b in open {
                r.read(b);
            }
            assert_eq!(r.read(ByteReader::CLOSE_ESCAPE), Read::Dropped);
            assert!(!r.in_escape());
        }
    }
}
