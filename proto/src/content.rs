//! What a conversion did to a page's bytes: the guest writes a known
//! pattern, converts, reads the page back and classifies what it sees. Pure
//! logic over the words read, so the rules are tested on the host.

use crate::plan::Content;
use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentClass {
    /// Every word still holds the pattern written before the conversion.
    Preserved,
    /// Every word reads as zero.
    Zeroed,
    /// Anything else: `words_differing` of the page match neither, the first
    /// at `first_pa` (read `got`, pattern `want`).
    Neither {
        first_pa: u64,
        got: u64,
        want: u64,
        words_differing: u64,
    },
}

impl ContentClass {
    /// The plan's name for this class; `None` for `Neither`.
    pub fn as_content(self) -> Option<Content> {
        match self {
            ContentClass::Preserved => Some(Content::Preserve),
            ContentClass::Zeroed => Some(Content::Zero),
            ContentClass::Neither { .. } => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ContentClass::Preserved => "preserved",
            ContentClass::Zeroed => "zeroed",
            ContentClass::Neither { .. } => "neither",
        }
    }

    /// Same class, ignoring where a `Neither` differed.
    pub fn same_kind(self, other: ContentClass) -> bool {
        self.name() == other.name()
    }
}

impl fmt::Display for ContentClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentClass::Neither {
                first_pa,
                got,
                want,
                words_differing,
            } => write!(
                f,
                "neither preserved nor zeroed: {words_differing} words differ, first at {first_pa:#x} (read {got:#x}, pattern {want:#x})"
            ),
            other => f.write_str(other.name()),
        }
    }
}

/// Classifies `(pa, word read, pattern word written)` triples of one page.
/// A page that is part pattern, part zero is `Neither` (something cleared
/// only some of it). An all-zero pattern could not tell the classes apart;
/// `pattern_word` makes one vanishingly unlikely.
pub fn classify(words: impl Iterator<Item = (u64, u64, u64)>) -> ContentClass {
    let mut all_zero = true;
    let mut first = None;
    let mut differing = 0u64;
    for (pa, got, want) in words {
        all_zero &= got == 0;
        if got != want {
            differing += 1;
            first.get_or_insert((pa, got, want));
        }
    }
    match first {
        None => ContentClass::Preserved,
        Some(_) if all_zero => ContentClass::Zeroed,
        Some((first_pa, got, want)) => ContentClass::Neither {
            first_pa,
            got,
            want,
            words_differing: differing,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn page(f: impl Fn(u64, u64) -> u64) -> Vec<(u64, u64, u64)> {
        (0..512u64)
            .map(|i| {
                let pa = 0x1000 + 8 * i;
                let want = crate::hostcheck::pattern_word(7, pa);
                (pa, f(pa, want), want)
            })
            .collect()
    }

    #[test]
    fn classes() {
        assert_eq!(
            classify(page(|_, w| w).into_iter()),
            ContentClass::Preserved
        );
        assert_eq!(classify(page(|_, _| 0).into_iter()), ContentClass::Zeroed);
        let c = classify(page(|pa, w| if pa == 0x1010 { 5 } else { w }).into_iter());
        assert_eq!(
            c,
            ContentClass::Neither {
                first_pa: 0x1010,
                got: 5,
                want: crate::hostcheck::pattern_word(7, 0x1010),
                words_differing: 1
            }
        );
        assert_eq!(c.as_content(), None);
        assert!(std::string::ToString::to_string(&c).contains("0x1010"));
    }

    #[test]
    fn half_zeroed_is_neither() {
        let c = classify(page(|pa, w| if pa < 0x1800 { 0 } else { w }).into_iter());
        assert_eq!(c.name(), "neither");
        assert!(c.same_kind(ContentClass::Neither {
            first_pa: 1,
            got: 1,
            want: 1,
            words_differing: 1
        }));
        assert!(!c.same_kind(ContentClass::Zeroed));
    }

    #[test]
    fn content_names_match_plan() {
        assert_eq!(ContentClass::Zeroed.as_content(), Some(Content::Zero));
        assert_eq!(
            ContentClass::Preserved.as_content(),
            Some(Content::Preserve)
        );
    }
}
