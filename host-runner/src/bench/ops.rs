//! The op names of `# bench:` lines this command reads, written once.
//! The guest's `bench.*` suite and `conv.cost` print the first group, the
//! own VMM (x86) its `vmm_*` ops. Any other op is kept in the JSON and
//! named in the report, never guessed at.

/// Raw conversion of 1, 2, 4 … 512 granules.
pub const SHARE: &str = "share";
pub const UNSHARE: &str = "unshare";
/// share + first touch of every page + unshare: the in-place I/O path.
pub const IO_ROUND_TRIP: &str = "io_round_trip";
/// memcpy private → pre-shared and back: the swiotlb path.
pub const BOUNCE_WARM: &str = "bounce_warm";
pub const BOUNCE_COLD: &str = "bounce_cold";
/// The cheapest round trip to the conversion handler (size 0): the floor.
pub const NULL_EXIT: &str = "null_exit";
/// The guest's own tracker/ledger updates per size.
pub const BOOKKEEPING: &str = "bookkeeping";
/// 2 MiB- and 1 GiB-aligned ranges with the ABI's size hint.
pub const SHARE_2M: &str = "share_2m";
pub const UNSHARE_2M: &str = "unshare_2m";
pub const SHARE_1G: &str = "share_1g";
pub const UNSHARE_1G: &str = "unshare_1g";
/// `conv.cost`: one granule's share+unshare and the no-op call next to it,
/// from the same harness (`noop_map_gpa_private`, `noop_kvm_features`, …).
pub const SHARE_UNSHARE: &str = "share_unshare";
pub const NOOP_PREFIX: &str = "noop_";
/// The own VMM's part of serving each conversion exit (ns only, by size),
/// and its breakdown (`vmm_set_attributes`, `vmm_clear`, `vmm_model`, …).
pub const VMM_SHARE: &str = "vmm_share";
pub const VMM_UNSHARE: &str = "vmm_unshare";
pub const VMM_OP_PREFIX: &str = "vmm_";

/// Ops with one line per size that the lane table has a column for.
pub const SIZED: [&str; 7] = [
    SHARE,
    UNSHARE,
    IO_ROUND_TRIP,
    BOUNCE_WARM,
    BOUNCE_COLD,
    VMM_SHARE,
    VMM_UNSHARE,
];

/// What a lane needs at a size for that size to count as measured.
pub const REQUIRED_PER_SIZE: [&str; 5] = [SHARE, UNSHARE, IO_ROUND_TRIP, BOUNCE_WARM, BOUNCE_COLD];

/// Ops the report shows somewhere (table, notes); everything else is
/// listed as "not shown".
pub fn is_known(op: &str) -> bool {
    SIZED.contains(&op)
        || [
            NULL_EXIT,
            BOOKKEEPING,
            SHARE_2M,
            UNSHARE_2M,
            SHARE_1G,
            UNSHARE_1G,
            SHARE_UNSHARE,
        ]
        .contains(&op)
        || op.starts_with(NOOP_PREFIX)
        || op.starts_with(VMM_OP_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_and_vmm_ops_are_known_and_others_are_not() {
        for op in [
            "share",
            "bounce_cold",
            "noop_kvm_features",
            "vmm_set_attributes",
            "unshare_1g",
        ] {
            assert!(is_known(op), "{op}");
        }
        assert!(!is_known("memcpy") && !is_known(""));
    }
}
