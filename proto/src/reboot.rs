//! Reboot series (`reboots=N`): which boot this is, and the dirty state each
//! boot but the last leaves behind for the next one to clean up.
//!
//! ## The boot record
//!
//! The boot index must survive a reset without trusting the host. The guest
//! keeps it in one page of RAM it owns: private memory (guest_memfd on a
//! sw-protected VM, a protected VM's page on pKVM) that is never shared, so
//! the host can neither read nor forge it. Under a reset policy that keeps
//! memory the record survives; one that wipes memory (the VMM makes it
//! private with a punched hole, or builds a new VM) leaves zeroes, and the
//! guest falls back to the host's `boot=` — and says so in its header.
//! The record carries the series' seed and length, so a record of another
//! series (or random bytes) is never taken for this one, and a stage: a boot
//! that finds `Running` knows the boot before it ended without leaving its
//! dirty state (a crash, an unplanned reset).
//!
//! Layout in 64-bit words: magic, seed, `reboots << 32 | boot`, stage,
//! checksum over the words before it.
//!
//! ## The dirty set
//!
//! What a crashed or kexec'ing OS leaves: ranges shared (single granules, a
//! 2 MiB-aligned 2 MiB range, a range straddling a 2 MiB boundary) and
//! canaries in shared and in private pages. It is a pure function of
//! (seed, boot, area, granule): the next boot recomputes the previous one's
//! set instead of trusting a record the reset may have wiped.

use crate::prng::{SplitMix64, mix};
use crate::range::MemRange;

pub const MAGIC: u64 = u64::from_le_bytes(*b"ctbootv1");
pub const WORDS: usize = 5;

/// How far the boot that wrote the record got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The boot started (written before any test).
    Running,
    /// The boot left its dirty state and is about to reset.
    Dirty,
}

impl Stage {
    const fn word(self) -> u64 {
        match self {
            Stage::Running => 1,
            Stage::Dirty => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootRecord {
    pub seed: u64,
    pub reboots: u32,
    /// The boot that wrote the record.
    pub boot: u32,
    pub stage: Stage,
}

fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0x6375_7374_6f6d_6572, |h, &w| mix(h ^ w))
}

impl BootRecord {
    pub fn encode(&self) -> [u64; WORDS] {
        let mut w = [
            MAGIC,
            self.seed,
            (u64::from(self.reboots) << 32) | u64::from(self.boot),
            self.stage.word(),
            0,
        ];
        w[WORDS - 1] = checksum(&w[..WORDS - 1]);
        w
    }

    /// `None` for anything but a record this module wrote.
    pub fn decode(w: &[u64; WORDS]) -> Option<BootRecord> {
        if w[0] != MAGIC || w[WORDS - 1] != checksum(&w[..WORDS - 1]) {
            return None;
        }
        let stage = match w[3] {
            1 => Stage::Running,
            2 => Stage::Dirty,
            _ => return None,
        };
        Some(BootRecord {
            seed: w[1],
            reboots: (w[2] >> 32) as u32,
            boot: w[2] as u32,
            stage,
        })
    }
}

/// Where the boot index came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The guest's own record, left by the previous boot in `stage`.
    Record(Stage),
    /// No record of this series survived: the host's `boot=` (> 0).
    Host,
    /// No record and no `boot=`: the series' first boot.
    First,
}

impl Source {
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Record(Stage::Dirty) => "record",
            Source::Record(Stage::Running) => "record-unfinished",
            Source::Host => "host",
            Source::First => "first",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootIndex {
    pub index: u32,
    pub source: Source,
    /// The host's `boot=` when it disagrees with the record.
    pub host_disagrees: Option<u32>,
}

/// Which boot this is, from the record found in RAM (if any), the plan's
/// seed and `reboots=`, and the host's `boot=`. The guest's own record
/// wins over the host's word.
pub fn boot_index(found: Option<BootRecord>, seed: u64, reboots: u32, host_boot: u32) -> BootIndex {
    match found.filter(|r| r.seed == seed && r.reboots == reboots) {
        Some(r) => {
            let index = r.boot.saturating_add(1);
            BootIndex {
                index,
                source: Source::Record(r.stage),
                host_disagrees: (host_boot != 0 && host_boot != index).then_some(host_boot),
            }
        }
        None => BootIndex {
            index: host_boot,
            source: if host_boot > 0 {
                Source::Host
            } else {
                Source::First
            },
            host_disagrees: None,
        },
    }
}

/// Bytes of the area the dirty set is drawn from: 8 MiB, 2 MiB-aligned.
pub const AREA: u64 = 8 << 20;
const TWO_MIB: u64 = 2 << 20;
pub const SHARED: usize = 5;
pub const PRIVATE: usize = 3;

/// One boot's dirty state inside an 8 MiB, 2 MiB-aligned area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtySet {
    /// Left shared: three single granules in the first 2 MiB, the 2 MiB
    /// range at +2 MiB, and a range straddling the +6 MiB boundary.
    pub shared: [MemRange; SHARED],
    /// Private granules in [+4 MiB, +5 MiB) holding `private_canary`.
    pub private: [MemRange; PRIVATE],
    /// Written into every word of the shared ranges.
    pub shared_canary: u64,
    pub private_canary: u64,
}

/// Three distinct granule indexes below `n`.
fn three_distinct(rng: &mut SplitMix64, n: u64) -> [u64; 3] {
    let a = rng.below(n);
    let b = (a + 1 + rng.below(n - 1)) % n;
    let mut c = rng.below(n);
    while c == a || c == b {
        c = (c + 1) % n;
    }
    [a, b, c]
}

impl DirtySet {
    /// The set boot `boot` of a series with `seed` leaves in `area` (whose
    /// start is 2 MiB-aligned, at least [`AREA`] long). `granule` must be a
    /// power of two no larger than 64 KiB.
    pub fn new(seed: u64, boot: u32, area_start: u64, granule: u64) -> DirtySet {
        let mut rng = SplitMix64::fork(seed ^ mix(u64::from(boot)), "reboot.dirty");
        let per_2m = TWO_MIB / granule;
        let g = |i: u64| MemRange::from_len(area_start + i * granule, granule);
        let singles = three_distinct(&mut rng, per_2m);
        // Up to 256 granules (1 MiB at 4K) on either side of +6 MiB.
        let reach = (per_2m / 2).min(256);
        let before = 1 + rng.below(reach);
        let after = 1 + rng.below(reach);
        let straddle = MemRange::new(
            area_start + 3 * TWO_MIB - before * granule,
            area_start + 3 * TWO_MIB + after * granule,
        );
        let private = three_distinct(&mut rng, per_2m / 2);
        DirtySet {
            shared: [
                g(singles[0]),
                g(singles[1]),
                g(singles[2]),
                MemRange::from_len(area_start + TWO_MIB, TWO_MIB),
                straddle,
            ],
            private: private.map(|i| g(2 * per_2m + i)),
            shared_canary: mix(seed ^ mix(u64::from(boot) ^ 0x5ead)) | 1,
            private_canary: mix(seed ^ mix(u64::from(boot) ^ 0x9e1f)) | 1,
        }
    }

    /// Granules in the shared ranges (what a ledger must unshare).
    pub fn shared_granules(&self, granule: u64) -> u64 {
        self.shared.iter().map(|r| r.len() / granule).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 4096;
    const BASE: u64 = 0x400_0000;

    #[test]
    fn a_record_round_trips_and_nothing_else_decodes() {
        let r = BootRecord {
            seed: 0x5eed,
            reboots: 3,
            boot: 2,
            stage: Stage::Dirty,
        };
        assert_eq!(BootRecord::decode(&r.encode()), Some(r));
        assert_eq!(BootRecord::decode(&[0; WORDS]), None);
        let mut w = r.encode();
        w[2] ^= 1;
        assert_eq!(BootRecord::decode(&w), None, "a flipped bit");
    }

    #[test]
    fn the_record_wins_over_the_host_and_must_be_of_this_series() {
        let rec = |stage| {
            Some(BootRecord {
                seed: 7,
                reboots: 3,
                boot: 1,
                stage,
            })
        };
        let b = boot_index(rec(Stage::Dirty), 7, 3, 0);
        assert_eq!((b.index, b.source), (2, Source::Record(Stage::Dirty)));
        assert_eq!(
            boot_index(rec(Stage::Dirty), 7, 3, 5).host_disagrees,
            Some(5)
        );
        assert_eq!(boot_index(rec(Stage::Dirty), 7, 3, 2).host_disagrees, None);
        let other_series = boot_index(rec(Stage::Dirty), 8, 3, 0);
        assert_eq!(
            (other_series.index, other_series.source),
            (0, Source::First)
        );
        let wiped = boot_index(None, 7, 3, 2);
        assert_eq!((wiped.index, wiped.source), (2, Source::Host));
        assert_eq!(
            boot_index(rec(Stage::Running), 7, 3, 0).source.as_str(),
            "record-unfinished"
        );
    }

    #[test]
    fn the_dirty_set_has_the_promised_shapes_and_is_reproducible() {
        for boot in 0..200 {
            let d = DirtySet::new(0x5eed, boot, BASE, G);
            assert_eq!(d, DirtySet::new(0x5eed, boot, BASE, G));
            let area = MemRange::from_len(BASE, AREA);
            for r in d.shared.iter().chain(d.private.iter()) {
                assert!(area.covers(r), "{r:?}");
                assert!(r.start % G == 0 && r.end % G == 0 && !r.is_empty());
            }
            for r in &d.shared[..3] {
                assert_eq!(r.len(), G);
                assert!(r.end <= BASE + TWO_MIB);
            }
            assert_eq!(d.shared[3], MemRange::from_len(BASE + TWO_MIB, TWO_MIB));
            let s = d.shared[4];
            assert!(s.start < BASE + 3 * TWO_MIB && s.end > BASE + 3 * TWO_MIB);
            // Disjoint: shared from each other and from the private pages.
            let all: alloc::vec::Vec<MemRange> =
                d.shared.iter().chain(d.private.iter()).copied().collect();
            for (i, a) in all.iter().enumerate() {
                for b in &all[i + 1..] {
                    assert!(!a.overlaps(b), "boot {boot}: {a:?} {b:?}");
                }
            }
            assert_ne!(d.shared_canary, d.private_canary);
        }
        assert_ne!(
            DirtySet::new(1, 0, BASE, G),
            DirtySet::new(1, 1, BASE, G),
            "each boot leaves its own set"
        );
    }

    #[test]
    fn large_granules_still_fit() {
        let d = DirtySet::new(3, 4, BASE, 64 << 10);
        assert!(d.shared.iter().all(|r| r.len() % (64 << 10) == 0));
        assert_eq!(
            d.shared_granules(64 << 10),
            3 + 32 + d.shared[4].len() / (64 << 10)
        );
    }
}
