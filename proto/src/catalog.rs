//! Every test the guest knows, in run order. The guest numbers and filters
//! by this list; `convtest list` prints it; KTAP, JSON and JUnit all use
//! these names.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestDef {
    /// `<suite>.<case>`
    pub name: &'static str,
    pub about: &'static str,
    /// Runs only when the plan explicitly asks for it (failure injection).
    pub on_request: bool,
    /// Proves nothing without host checks: SKIPs when the plan has host=off.
    pub needs_host: bool,
    /// A benchmark: SKIPs when the plan has bench=off.
    pub needs_bench: bool,
    /// Not part of `*`: runs only when a glob other than a bare `*` names
    /// it (the `bench.*` suite, which takes a minute and prints a lot).
    pub explicit: bool,
    /// Part of a reboot series (`reboots=N` > 0) rather than of the globs:
    /// which boots run it.
    pub reboot: Option<Boots>,
    /// CPUs it needs (`cpus=`): SKIPs with fewer.
    pub min_cpus: u32,
}

/// The boots of a series a reboot test runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boots {
    /// Every boot after the first: it checks what the boot before left.
    Later,
    /// Every boot but the last: it leaves the next boot's dirty state.
    NotLast,
}

const fn t(name: &'static str, about: &'static str) -> TestDef {
    TestDef {
        name,
        about,
        on_request: false,
        needs_host: false,
        needs_bench: false,
        explicit: false,
        reboot: None,
        min_cpus: 1,
    }
}

/// A test of the reboot series, run in `boots`.
const fn reboot(name: &'static str, about: &'static str, boots: Boots) -> TestDef {
    TestDef {
        reboot: Some(boots),
        ..t(name, about)
    }
}

/// A `bench.*` test: asked for by name, skipped with bench=off.
const fn bench(name: &'static str, about: &'static str) -> TestDef {
    TestDef {
        needs_bench: true,
        explicit: true,
        ..t(name, about)
    }
}

/// A test whose claim is about what the host sees.
const fn host(name: &'static str, about: &'static str) -> TestDef {
    TestDef {
        needs_host: true,
        ..t(name, about)
    }
}

pub const TESTS: &[TestDef] = &[
    t(
        "boot.plan",
        "the command line parses into a plan with no bad key",
    ),
    t(
        "boot.ram_map",
        "the boot RAM map is non-empty and no two ranges overlap",
    ),
    t(
        "boot.kernel_in_ram",
        "the loaded kernel image lies inside one RAM range",
    ),
    TestDef {
        explicit: true,
        ..t(
            "smp.online",
            "every CPU the plan names (cpus=) checks in on its own stack and runs CPU 0's jobs concurrently (seeded work, an exact shared atomic count); added to the run by --vcpus N > 1, SKIP with cpus=1",
        )
    },
    reboot(
        "reset.content",
        "what the previous boot's private and shared pages hold now, against the reset policy (keep: private content survives; private, recreate: zero) and the content promise",
        Boots::Later,
    ),
    TestDef {
        needs_host: true,
        ..reboot(
            "reset.private_again",
            "the previous boot's shared ranges are private after this boot's reset, proven by the platform: the host finds none of that boot's canaries, is refused the ranges, and the converter's own probe (pKVM: MEM_UNSHARE answers not-shared) agrees",
            Boots::Later,
        )
    },
    reboot(
        "reset.calls",
        "this boot's reset-to-private made exactly the calls the previous boot's dirty state needs under the reset policy (x86 sweep: one per RAM range; pKVM ledger: its shared granules; none after a wipe), and left nothing unknown",
        Boots::Later,
    ),
    t(
        "heap.stress",
        "seeded alloc/free rounds; every live block keeps its fill pattern",
    ),
    t(
        "heap.large",
        "one allocation of half the heap is written, verified and freed",
    ),
    t(
        "mem.walking_ones",
        "walking-ones words over free RAM, written then verified",
    ),
    t(
        "mem.address_in_address",
        "each word holds its own address, written then verified",
    ),
    t(
        "mem.random",
        "seeded pseudo-random words over free RAM, written then verified",
    ),
    t(
        "exc.trap_roundtrip",
        "a deliberate #UD / BRK is caught and execution resumes",
    ),
    t(
        "clock.monotonic",
        "the cycle counter never goes backwards and does advance",
    ),
    t(
        "clock.frequency",
        "the platform states the counter frequency and it is plausible",
    ),
    TestDef {
        explicit: true,
        ..t(
            "hostile.vmm",
            "a seeded, bounded flood of hostile traffic at the VMM through real exits (hostile_ops=, default iters×10): random hypercalls and MAP_GPA_RANGE edges, port I/O over every port, loads and stores where no RAM is, malformed, binary, too long and out-of-order host-check lines, console floods, random SMCCC/PSCI on arm64; every answer the ABI fixes is checked, every host line must be answered, the scratch area ends private. Run it before conv.* to show the VMM still serves them",
        )
    },
    host(
        "conv.reset_private",
        "reset-to-private ran at boot; ranges shared on purpose (the dirty state a crashed OS leaves) are private after a second reset, proven by the host: a canary written afterwards is invisible to it",
    ),
    host(
        "conv.share_verify",
        "share a page; the host sees the guest's pattern in the same page",
    ),
    host(
        "conv.unshare_private",
        "unshare a page; a canary written afterwards is invisible to the host, which sees it in a still-shared control page",
    ),
    t(
        "conv.content",
        "what each conversion direction does to page content: preserved or zeroed, stable over repeats, as the plan's content= says",
    ),
    t(
        "conv.rejects",
        "the hypervisor rejects malformed requests with the documented code (x86: unaligned, empty, overflowing, outside RAM; pKVM: unaligned, already in that state)",
    ),
    t(
        "conv.sizes",
        "1 granule, 2 MiB at a granule-aligned address and a 2 MiB-aligned 2 MiB range (with the 2M hint where the ABI has one)",
    ),
    t(
        "conv.flipflop",
        "repeated share/unshare of one page (iters=) with content checked each time",
    ),
    TestDef {
        needs_bench: true,
        ..t(
            "conv.cost",
            "bench lines: 1-granule share+unshare round trip vs a no-op hypervisor call, same run (bench=)",
        )
    },
    bench(
        "bench.convert",
        "share and unshare of 1, 2, 4 … 512 granules timed apart, raw calls with no bookkeeping (op share, unshare)",
    ),
    bench(
        "bench.io_path",
        "per size: share + the guest's first touch of every page + unshare, the in-place I/O path (op io_round_trip)",
    ),
    bench(
        "bench.bounce",
        "per size: memcpy from a private buffer into a pre-shared one and back, warm and cold cache (op bounce_warm, bounce_cold)",
    ),
    bench(
        "bench.null_exit",
        "the platform's cheapest round trip to the conversion handler (op null_exit)",
    ),
    bench(
        "bench.bookkeeping",
        "per size: the guest's own page-tracker (and pKVM ledger) updates a conversion needs, timed on their own (op bookkeeping)",
    ),
    bench(
        "bench.hint_2m",
        "a 2 MiB-aligned 2 MiB range with the ABI's 2M hint where it has one: share, unshare (op share_2m, unshare_2m)",
    ),
    bench(
        "bench.hint_1g",
        "a 1 GiB-aligned 1 GiB range with the 1G hint where RAM allows: share, unshare (op share_1g, unshare_1g)",
    ),
    TestDef {
        needs_host: true,
        explicit: true,
        ..t(
            "stress.storm",
            "a seeded storm of iters×100 operations (share, unshare, guest writes in sequential/strided/scattered order, guest and host verifies, host probes of private granules) over random ranges incl. 2 MiB-aligned and 2 MiB / 1 GiB straddles; a model predicts every answer and is checked against the tracker, the ABI and the host every 1000 ops; replay= stops after an op",
        )
    },
    TestDef {
        needs_host: true,
        explicit: true,
        min_cpus: 2,
        ..t(
            "stress.race",
            "cpu 0 converts 16 granules while every other CPU reads and writes them; at each quiet point a racing CPU writes every granule and the host must find its canary nowhere, be refused the private ones and read its pattern in the shared ones (iters/10 rounds; SKIP with one CPU)",
        )
    },
    TestDef {
        needs_host: true,
        explicit: true,
        min_cpus: 2,
        ..t(
            "stress.overlap",
            "every CPU converts at once, no lock held across the calls: overlapping copies of one hot range (same direction), adjacent pieces (neighbours in opposite directions), whole 2 MiB blocks, around a 2 MiB boundary; per granule exactly one call succeeds where the ABI refuses a granule already converted (pKVM), every call elsewhere; then the tracker against the suite's model, the host's view and the ABI's probe (iters/10 rounds; SKIP with one CPU)",
        )
    },
    reboot(
        "reboot.leave_dirty",
        "before a planned reset: share the seeded dirty ranges (granules, 2 MiB-aligned, straddling), write canaries in them and in private pages, check the host sees the shared ones, record the boot and reset without cleaning up",
        Boots::NotLast,
    ),
    TestDef {
        on_request: true,
        ..t(
            "inject.requested",
            "with inject=fault|hang|forge only: faults, hangs or prints host lines on purpose to test the runner's verdict",
        )
    },
];

pub fn find(name: &str) -> Option<&'static TestDef> {
    TESTS.iter().find(|t| t.name == name)
}

/// Whether running `name` converts memory (every `conv.*` and `bench.*`
/// test but the bounce memcpy, which needs no converter; and the reboot
/// series' dirty state, which is left shared).
pub fn converts(name: &str) -> bool {
    ((name.starts_with("conv.") || name.starts_with("bench.") || name.starts_with("stress."))
        && name != "bench.bounce")
        || name == "reboot.leave_dirty"
}

/// Whether the host's answers during `name` vouch for what the platform
/// did: not the hostile traffic's, whose host-check lines are junk on
/// purpose.
pub fn vouches(name: &str) -> bool {
    suite_of(name) != "hostile"
}

/// The suite part of a dotted name.
pub fn suite_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(s, _)| s)
}

impl TestDef {
    /// Whether a plan with these globs runs this test; `on_request` tests
    /// need `requested` too.
    pub fn is_selected(&self, globs: &str, requested: bool) -> bool {
        let named = |list: &str| {
            list.split(',')
                .map(str::trim)
                .filter(|g| !self.explicit || *g != "*")
                .any(|g| !g.is_empty() && crate::glob::matches(g, self.name))
        };
        self.reboot.is_none() && named(globs) && (!self.on_request || requested)
    }

    /// Whether boot `boot` of a series of `reboots` resets runs this test:
    /// the globs decide for ordinary tests, the series for reboot tests.
    pub fn runs_in_boot(&self, globs: &str, requested: bool, boot: u32, reboots: u32) -> bool {
        match self.reboot {
            None => self.is_selected(globs, requested),
            Some(Boots::Later) => reboots > 0 && (1..=reboots).contains(&boot),
            Some(Boots::NotLast) => boot < reboots,
        }
    }
}

/// Tests the plan's globs select, in catalog order (no reboot tests: a
/// series brings its own, see [`selected_in_boot`]).
pub fn selected(globs: &str, requested: bool) -> impl Iterator<Item = &'static TestDef> + '_ {
    TESTS
        .iter()
        .filter(move |t| t.is_selected(globs, requested))
}

/// Tests boot `boot` of a series of `reboots` resets runs, in catalog order.
pub fn selected_in_boot(
    globs: &str,
    requested: bool,
    boot: u32,
    reboots: u32,
) -> impl Iterator<Item = &'static TestDef> + '_ {
    TESTS
        .iter()
        .filter(move |t| t.runs_in_boot(globs, requested, boot, reboots))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::vec::Vec;

    #[test]
    fn names_are_unique_dotted_and_grouped() {
        let mut seen = HashSet::new();
        let mut suites: Vec<&str> = Vec::new();
        for t in TESTS {
            assert!(seen.insert(t.name), "duplicate {}", t.name);
            let (suite, case) = t.name.split_once('.').expect("dotted");
            assert!(!suite.is_empty() && !case.is_empty() && !case.contains('.'));
            assert!(
                t.name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'.'
                    || b == b'_')
            );
            if suites.last() != Some(&suite) {
                assert!(!suites.contains(&suite), "suite {suite} split in catalog");
                suites.push(suite);
            }
        }
    }

    #[test]
    fn a_series_brings_its_reboot_tests_to_the_right_boots() {
        let names = |boot, reboots| -> Vec<&str> {
            selected_in_boot("boot.plan", false, boot, reboots)
                .map(|t| t.name)
                .collect()
        };
        assert_eq!(names(0, 0), ["boot.plan"]);
        assert_eq!(names(0, 2), ["boot.plan", "reboot.leave_dirty"]);
        assert_eq!(
            names(1, 2),
            [
                "boot.plan",
                "reset.content",
                "reset.private_again",
                "reset.calls",
                "reboot.leave_dirty"
            ]
        );
        assert_eq!(
            names(2, 2),
            [
                "boot.plan",
                "reset.content",
                "reset.private_again",
                "reset.calls"
            ]
        );
        assert!(selected("*", false).all(|t| t.reboot.is_none()));
    }

    #[test]
    fn selection() {
        let mem: Vec<_> = selected("mem.*", false).map(|t| t.name).collect();
        assert_eq!(
            mem,
            ["mem.walking_ones", "mem.address_in_address", "mem.random"]
        );
        assert!(selected("*", false).all(|t| !t.on_request));
        assert!(selected("*", true).any(|t| t.name == "inject.requested"));
        assert_eq!(suite_of("conv.flipflop"), "conv");
        assert!(find("heap.stress").is_some() && find("heap").is_none());
        assert!(
            selected("*", false).all(|t| !t.name.starts_with("bench.")),
            "the bench suite is not part of *"
        );
        assert_eq!(selected("bench.*", false).count(), 7);
        assert_eq!(
            selected("*,bench.null_exit", false)
                .filter(|t| t.name.starts_with("bench."))
                .count(),
            1
        );
    }
}
