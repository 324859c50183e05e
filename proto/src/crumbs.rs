//! Breadcrumbs: a small table the guest keeps in its own image and the VMM
//! reads after a crash the guest could not report (a triple fault, where
//! SVM even loses the registers: svm.c `shutdown_interception` re-INITs the
//! vCPU). Each CPU stores what it is doing (a test, a job, idling) and every
//! exception handler stores the vector, RIP, RSP and fault address before it
//! tries to print anything. The VMM finds the table by its magic in the
//! kernel ELF's loaded bytes, once, and decodes it with [`decode`].
//!
//! Layout, little-endian u64 words from the table's start:
//! - words 0..2: [`MAGIC`]; word 2: [`LAYOUT`] ([`VERSION`] | (CPU slots << 32));
//! - per CPU slot `c`, words `3 + 2c`: what it is doing ([`Doing`]) and how
//!   many times it changed (a CPU that changes nothing is stuck);
//! - then the exception count and [`EXC_SLOTS`] records of [`EXC_WORDS`]
//!   words in order of arrival: x86 vector, RIP, RSP, CR2 and the GDT's
//!   base (which CPU took it: each has its own GDT); arm64 vector slot,
//!   ELR, the saved frame's address, FAR and ESR.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// 16 bytes no other data in the image starts with.
pub const MAGIC: [u8; 16] = *b"convtest-crumbs\x01";
pub const VERSION: u64 = 1;
/// CPU slots: as many as the plan may ask for.
pub const CPU_SLOTS: usize = crate::plan::MAX_CPUS as usize;
/// Exceptions kept (the first ones: the one that started a cascade matters).
pub const EXC_SLOTS: usize = 4;
pub const EXC_WORDS: usize = 5;

/// The magic and the layout word.
pub const HEADER_WORDS: usize = 3;
/// Word 2: what a reader checks before it trusts the rest.
pub const LAYOUT: u64 = VERSION | ((CPU_SLOTS as u64) << 32);

pub const CPU_BASE: usize = HEADER_WORDS;
pub const EXC_COUNT: usize = CPU_BASE + 2 * CPU_SLOTS;
pub const EXC_BASE: usize = EXC_COUNT + 1;
/// Words in the table.
pub const WORDS: usize = EXC_BASE + EXC_SLOTS * EXC_WORDS;

const KIND_SHIFT: u32 = 56;
const VALUE_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// What a CPU is doing: kind in the top byte, value below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doing {
    Nothing,
    /// CPU 0 runs the test with this catalog index.
    Test(u64),
    /// Running job generation N.
    Job(u64),
    /// Finished job generation N, waiting for the next.
    Idle(u64),
    /// Storm operation N of this CPU's lane.
    StormOp(u64),
    /// A kind this decoder does not know.
    Unknown(u64),
}

impl Doing {
    pub fn encode(self) -> u64 {
        let (kind, v) = match self {
            Doing::Nothing => (0, 0),
            Doing::Test(v) => (1, v),
            Doing::Job(v) => (2, v),
            Doing::Idle(v) => (3, v),
            Doing::StormOp(v) => (4, v),
            Doing::Unknown(w) => return w,
        };
        (kind << KIND_SHIFT) | (v & VALUE_MASK)
    }

    pub fn decode(w: u64) -> Doing {
        let v = w & VALUE_MASK;
        match w >> KIND_SHIFT {
            0 => Doing::Nothing,
            1 => Doing::Test(v),
            2 => Doing::Job(v),
            3 => Doing::Idle(v),
            4 => Doing::StormOp(v),
            _ => Doing::Unknown(w),
        }
    }

    /// One word for a fact value: `test:conv.content`, `job:12`, `idle:12`.
    pub fn describe(self) -> String {
        match self {
            Doing::Nothing => "nothing".into(),
            Doing::Test(i) => match crate::catalog::TESTS.get(i as usize) {
                Some(t) => format!("test:{}", t.name),
                None => format!("test:#{i}"),
            },
            Doing::Job(g) => format!("job:{g}"),
            Doing::Idle(g) => format!("idle_after_job:{g}"),
            Doing::StormOp(i) => format!("storm_op:{i}"),
            Doing::Unknown(w) => format!("unknown:{w:#x}"),
        }
    }
}

/// One exception as the handler saw it on entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    pub vector: u64,
    pub pc: u64,
    pub sp: u64,
    pub addr: u64,
    /// x86: the GDT base (which CPU); arm64: ESR.
    pub extra: u64,
}

/// A decoded table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crumbs {
    /// Per CPU that ever changed its state: (cpu, doing, changes).
    pub cpus: Vec<(usize, Doing, u64)>,
    pub exceptions: u64,
    pub first: Vec<Exception>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Short,
    BadMagic,
    Version(u64),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Short => f.write_str("table shorter than its layout"),
            DecodeError::BadMagic => f.write_str("magic overwritten"),
            DecodeError::Version(v) => {
                write!(f, "layout version {v:#x}, this runner reads {VERSION}")
            }
        }
    }
}

/// Decodes the table from its bytes (at least `WORDS * 8`).
pub fn decode(bytes: &[u8]) -> Result<Crumbs, DecodeError> {
    if bytes.len() < WORDS * 8 {
        return Err(DecodeError::Short);
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    if bytes[..16] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let v = word(2);
    if v != LAYOUT {
        return Err(DecodeError::Version(v));
    }
    let cpus = (0..CPU_SLOTS)
        .map(|c| (c, word(CPU_BASE + 2 * c), word(CPU_BASE + 2 * c + 1)))
        .filter(|&(_, _, changes)| changes > 0)
        .map(|(c, d, changes)| (c, Doing::decode(d), changes))
        .collect();
    let exceptions = word(EXC_COUNT);
    let kept = (exceptions as usize).min(EXC_SLOTS);
    let first = (0..kept)
        .map(|i| {
            let b = EXC_BASE + i * EXC_WORDS;
            Exception {
                vector: word(b),
                pc: word(b + 1),
                sp: word(b + 2),
                addr: word(b + 3),
                extra: word(b + 4),
            }
        })
        .collect();
    Ok(Crumbs {
        cpus,
        exceptions,
        first,
    })
}

/// Where the table starts in an image: the byte offset of the only copy of
/// [`MAGIC`] (None when absent or ambiguous).
pub fn find(image: &[u8]) -> Option<usize> {
    let mut hits = image
        .windows(MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == MAGIC);
    let (first, _) = hits.next()?;
    hits.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(words: &[(usize, u64)]) -> Vec<u8> {
        let mut t = alloc::vec![0u8; WORDS * 8];
        t[..16].copy_from_slice(&MAGIC);
        let mut put = |i: usize, v: u64| t[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        put(2, LAYOUT);
        for &(i, v) in words {
            put(i, v);
        }
        t
    }

    #[test]
    fn every_kind_round_trips() {
        for d in [
            Doing::Nothing,
            Doing::Test(7),
            Doing::Job(3),
            Doing::Idle(3),
            Doing::StormOp(99_999),
        ] {
            assert_eq!(Doing::decode(d.encode()), d);
        }
        assert_eq!(Doing::decode(0xff << 56), Doing::Unknown(0xff << 56));
    }

    #[test]
    fn a_table_names_the_cpus_that_moved_and_the_first_exceptions() {
        let t = table(&[
            (CPU_BASE, Doing::Test(0).encode()),
            (CPU_BASE + 1, 5),
            (CPU_BASE + 2, Doing::Idle(4).encode()),
            (CPU_BASE + 3, 9),
            (EXC_COUNT, 6),
            (EXC_BASE, 14),
            (EXC_BASE + 1, 0x1234),
        ]);
        let c = decode(&t).unwrap();
        assert_eq!(c.cpus, [(0, Doing::Test(0), 5), (1, Doing::Idle(4), 9)]);
        assert_eq!(c.exceptions, 6);
        assert_eq!(c.first.len(), EXC_SLOTS);
        assert_eq!((c.first[0].vector, c.first[0].pc), (14, 0x1234));
        assert!(Doing::Test(0).describe().starts_with("test:"));
    }

    #[test]
    fn a_damaged_table_says_how() {
        let mut t = table(&[]);
        assert_eq!(decode(&t[..16]), Err(DecodeError::Short));
        t[2 * 8] = 9;
        assert!(matches!(decode(&t), Err(DecodeError::Version(_))));
        t[0] = b'X';
        assert_eq!(decode(&t), Err(DecodeError::BadMagic));
    }

    #[test]
    fn find_wants_exactly_one_copy() {
        let mut img = alloc::vec![0u8; 64];
        assert_eq!(find(&img), None);
        img[8..24].copy_from_slice(&MAGIC);
        assert_eq!(find(&img), Some(8));
        img[40..56].copy_from_slice(&MAGIC);
        assert_eq!(find(&img), None);
    }
}
