//! Closed sets of words a user or a file names a choice by (`--arch x86_64`,
//! `--vmm-fault leak`, `reset=keep`): one list per set, so the CLI's
//! possible values, its help, the VMM's argv reader and every writer agree.

/// A choice named by one word.
pub trait Keyword: Copy + Sized + 'static {
    /// Every value, in the order help lists them.
    const ALL: &'static [Self];

    /// The word.
    fn as_str(self) -> &'static str;

    /// One line for a help listing (empty: none).
    fn help(self) -> &'static str {
        ""
    }

    /// The value `word` names.
    fn from_word(word: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == word)
    }
}

impl Keyword for crate::arch::Arch {
    const ALL: &'static [Self] = &crate::arch::Arch::ALL;
    fn as_str(self) -> &'static str {
        crate::arch::Arch::as_str(self)
    }
}

impl Keyword for crate::plan::ResetPolicy {
    const ALL: &'static [Self] = &crate::plan::ResetPolicy::ALL;
    fn as_str(self) -> &'static str {
        crate::plan::ResetPolicy::as_str(self)
    }
}

impl Keyword for crate::plan::Content {
    const ALL: &'static [Self] = &[crate::plan::Content::Zero, crate::plan::Content::Preserve];
    fn as_str(self) -> &'static str {
        crate::plan::Content::as_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    #[test]
    fn words_name_their_values() {
        for a in Arch::ALL {
            assert_eq!(<Arch as Keyword>::from_word(a.as_str()), Some(a));
        }
        assert_eq!(<Arch as Keyword>::from_word("X86_64"), None);
    }
}
