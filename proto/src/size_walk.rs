//! The walk both confidential-memory page operations share: TDX's
//! `TDG.MEM.PAGE.ACCEPT` and SEV-SNP's `PVALIDATE` take one page per call,
//! 2 MiB where the range allows it, and when the platform answers that its
//! own mapping of that 2 MiB is made of 4 KiB pages (TDX
//! `PAGE_SIZE_MISMATCH`, SNP `FAIL_SIZEMISMATCH`) the same 2 MiB is done
//! again as 512 pages of 4 KiB (td-shim's `td_accept_pages`, Linux's
//! `pval_pages`; docs/design.md §4). Which answers mean what is the
//! caller's business; this only says which page comes next.

use crate::range::{MemRange, is_aligned};

pub const SIZE_4K: u64 = 4096;
pub const SIZE_2M: u64 = 2 << 20;

/// The size of one page operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Size4K,
    Size2M,
}

impl PageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => SIZE_4K,
            PageSize::Size2M => SIZE_2M,
        }
    }

    /// 4 KiB pages in one page of this size.
    pub const fn pages(self) -> u64 {
        self.bytes() / SIZE_4K
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            PageSize::Size4K => "4K",
            PageSize::Size2M => "2M",
        }
    }
}

/// One page the walk wants operated on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub gpa: u64,
    pub size: PageSize,
}

/// Where the walk stands in `range` (4 KiB-aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeWalk {
    range: MemRange,
    next: u64,
    /// End of the 2 MiB being done as 4 KiB pages after a size mismatch.
    split_until: Option<u64>,
    /// 2 MiB pages the platform made the walk split.
    splits: u64,
}

impl SizeWalk {
    pub fn new(range: MemRange) -> SizeWalk {
        SizeWalk {
            range,
            next: range.start,
            split_until: None,
            splits: 0,
        }
    }

    /// The page to operate on next; `None` once the range is done.
    pub fn page(&self) -> Option<Page> {
        if self.next >= self.range.end {
            return None;
        }
        let big = self.split_until.is_none()
            && is_aligned(self.next, SIZE_2M)
            && self.range.end - self.next >= SIZE_2M;
        Some(Page {
            gpa: self.next,
            size: if big {
                PageSize::Size2M
            } else {
                PageSize::Size4K
            },
        })
    }

    /// The current page is done (whatever the platform said about it).
    pub fn advance(&mut self) {
        let Some(p) = self.page() else { return };
        self.next += p.size.bytes();
        if self.split_until.is_some_and(|end| self.next >= end) {
            self.split_until = None;
        }
    }

    /// The platform refused the current 2 MiB page for its size: do the same
    /// 2 MiB as 4 KiB pages. Returns false (nothing changes) when the
    /// current page already is 4 KiB: there is nothing smaller to try.
    pub fn split(&mut self) -> bool {
        match self.page() {
            Some(Page {
                gpa,
                size: PageSize::Size2M,
            }) => {
                self.split_until = Some(gpa + SIZE_2M);
                self.splits += 1;
                true
            }
            _ => false,
        }
    }

    /// Bytes from the start of the range that are done.
    pub fn done(&self) -> u64 {
        self.next - self.range.start
    }

    pub fn range(&self) -> MemRange {
        self.range
    }

    /// How many 2 MiB pages were split into 4 KiB ones.
    pub fn splits(&self) -> u64 {
        self.splits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn pages(mut w: SizeWalk) -> Vec<(u64, PageSize)> {
        let mut out = Vec::new();
        while let Some(p) = w.page() {
            out.push((p.gpa, p.size));
            w.advance();
        }
        out
    }

    #[test]
    fn big_pages_only_where_aligned_and_whole() {
        // 4K head, one 2M page, 4K tail.
        let r = MemRange::new(SIZE_2M - SIZE_4K, 2 * SIZE_2M + SIZE_4K);
        let p = pages(SizeWalk::new(r));
        assert_eq!(p.first(), Some(&(SIZE_2M - SIZE_4K, PageSize::Size4K)));
        assert_eq!(p[1], (SIZE_2M, PageSize::Size2M));
        assert_eq!(p[2], (2 * SIZE_2M, PageSize::Size4K));
        assert_eq!(p.len(), 3);
        // An aligned start without 2 MiB left stays 4K.
        let p = pages(SizeWalk::new(MemRange::from_len(
            SIZE_2M,
            SIZE_2M - SIZE_4K,
        )));
        assert!(p.iter().all(|&(_, s)| s == PageSize::Size4K));
        assert_eq!(p.len(), 511);
    }

    #[test]
    fn a_split_redoes_the_same_2m_as_512_pages() {
        let mut w = SizeWalk::new(MemRange::from_len(0, 2 * SIZE_2M));
        assert!(w.split());
        let mut small = 0;
        while w.page().is_some_and(|p| p.size == PageSize::Size4K) {
            w.advance();
            small += 1;
        }
        assert_eq!(small, 512);
        assert_eq!(
            w.page(),
            Some(Page {
                gpa: SIZE_2M,
                size: PageSize::Size2M
            })
        );
        assert_eq!((w.done(), w.splits()), (SIZE_2M, 1));
        w.advance();
        assert_eq!(w.page(), None);
        assert!(!w.split(), "nothing left to split");
    }

    #[test]
    fn a_4k_page_cannot_split() {
        let mut w = SizeWalk::new(MemRange::from_len(SIZE_4K, SIZE_4K));
        assert!(!w.split());
        assert_eq!(w.splits(), 0);
    }
}
