//! The order a guest touch writes its range in: sequential, strided or
//! scattered granule by granule, every word exactly once.

use crate::range::MemRange;

/// The order a touch writes its range in (every word is written once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Sequential,
    /// Word `i`, `i + stride`, … for each `i < stride`.
    Strided(u64),
    /// Granules in a seeded order, words sequential within each.
    Scattered(u64),
}

/// The word offsets (in 8-byte words from `range.start`) a touch writes, in
/// order; each exactly once.
pub fn touch_order(range: MemRange, granule: u64, pattern: Pattern) -> TouchOrder {
    let words = range.len() / 8;
    let granules = (range.len() / granule).max(1);
    let (stride, scatter) = match pattern {
        Pattern::Sequential => (1, None),
        Pattern::Strided(s) => (s.clamp(1, words.max(1)), None),
        // Granule k goes to (k * step + off) mod n: a permutation when step
        // and n are coprime (odd step for a power of two, else step 1).
        Pattern::Scattered(salt) => {
            let step = if granules.is_power_of_two() {
                ((salt | 1) % granules) | 1
            } else {
                1
            };
            (1, Some((step, (salt >> 32) % granules)))
        }
    };
    TouchOrder {
        words,
        per_granule: granule / 8,
        granules,
        stride,
        scatter,
        column: 0,
        next: 0,
        emitted: 0,
    }
}

/// Iterator of `touch_order`.
#[derive(Clone, Debug)]
pub struct TouchOrder {
    words: u64,
    per_granule: u64,
    granules: u64,
    stride: u64,
    scatter: Option<(u64, u64)>,
    column: u64,
    next: u64,
    emitted: u64,
}

impl Iterator for TouchOrder {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.emitted == self.words {
            return None;
        }
        let n = self.emitted;
        self.emitted += 1;
        if let Some((step, off)) = self.scatter {
            let (k, w) = (n / self.per_granule, n % self.per_granule);
            let k = k.wrapping_mul(step).wrapping_add(off) % self.granules;
            return Some(k * self.per_granule + w);
        }
        // Strided: column by column, `stride` words apart.
        if self.next >= self.words {
            self.column += 1;
            self.next = self.column;
        }
        let w = self.next;
        self.next += self.stride;
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const G: u64 = 4096;

    #[test]
    fn touch_orders_are_permutations() {
        let r = MemRange::from_len(0x10_0000, 4 * G);
        for p in [
            Pattern::Sequential,
            Pattern::Strided(7),
            Pattern::Strided(64),
            Pattern::Scattered(0x1234_5678_9abc),
        ] {
            let v: std::vec::Vec<u64> = touch_order(r, G, p).collect();
            let set: BTreeSet<u64> = v.iter().copied().collect();
            assert_eq!(set.len() as u64, r.len() / 8, "{p:?}");
            assert_eq!(v.len() as u64, r.len() / 8, "{p:?}");
        }
        let three = MemRange::from_len(0x10_0000, 3 * G);
        let set: BTreeSet<u64> = touch_order(three, G, Pattern::Scattered(99)).collect();
        assert_eq!(set.len() as u64, three.len() / 8);
    }
}
