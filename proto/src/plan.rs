//! The plan: what the runner asks the guest to do, carried on the kernel
//! command line as `key=value` words (docs/design.md §2).
//!
//! Unknown words are kept aside (a command line may carry other people's
//! options) and named in the guest's header; a known key with a bad value is
//! an error the guest reports as a failing `boot.plan` test.

use crate::tracker::Target;
use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inject {
    /// Touch an unmapped address mid-run: the exception path must end the run.
    Fault,
    /// Spin forever mid-run: the runner's timeout must end it.
    Hang,
    /// Print lines only the host side may print (a VMM fact, an L1 run
    /// end, a host-check answer) and pass: the relay between guest and
    /// runner must mark them and the verdict name them.
    Forge,
}

impl Inject {
    pub const fn as_str(self) -> &'static str {
        match self {
            Inject::Fault => "fault",
            Inject::Hang => "hang",
            Inject::Forge => "forge",
        }
    }
}

/// What page content must look like after a conversion (`content=`), as
/// the VMM that chose it tells the guest. Absent: the guest only reports
/// what it saw and checks that it is one of the two and stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// The bytes read back as zero after every conversion.
    Zero,
    /// The bytes written before a conversion are still there after it.
    Preserve,
}

impl Content {
    pub const fn as_str(self) -> &'static str {
        match self {
            Content::Zero => "zero",
            Content::Preserve => "preserve",
        }
    }
}

/// A deliberate bug in the guest's own conversion path (`gfault=`): what
/// buggy firmware does, so a run can show which tests notice. The only way
/// to show the checks of a lane whose hypervisor answers at EL2, without the
/// VMM, can fail (pKVM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestFault {
    /// Share calls report success without being made.
    SkipShare,
    /// Unshare (to-private) calls report success without being made.
    SkipUnshare,
    /// Reset-to-private records success without converting anything.
    SkipReset,
    /// Conversions are made but the page-state tracker is not told.
    ForgetTracker,
    /// Host checks are never sent: the guest prints the host's copy of an
    /// `ok` answer itself and takes it (the runner must catch the forgery).
    ForgeHost,
    /// A conversion to this state of a range of several granules leaves one
    /// granule out (its call skipped, or the range split around it) while
    /// the tracker and the ABI's record take the whole range.
    Partial(Target, Omitted),
}

/// Which granule of a multi-granule conversion a `Partial` fault leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Omitted {
    /// The first (ranges of 2 granules and more).
    First,
    /// The one at half the length (3 granules and more: never an end).
    Middle,
    /// The last (2 granules and more).
    Last,
}

impl GuestFault {
    pub const ALL: [GuestFault; 11] = [
        GuestFault::SkipShare,
        GuestFault::SkipUnshare,
        GuestFault::SkipReset,
        GuestFault::ForgetTracker,
        GuestFault::ForgeHost,
        GuestFault::Partial(Target::Shared, Omitted::First),
        GuestFault::Partial(Target::Shared, Omitted::Middle),
        GuestFault::Partial(Target::Shared, Omitted::Last),
        GuestFault::Partial(Target::Private, Omitted::First),
        GuestFault::Partial(Target::Private, Omitted::Middle),
        GuestFault::Partial(Target::Private, Omitted::Last),
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            GuestFault::SkipShare => "skip-share",
            GuestFault::SkipUnshare => "skip-unshare",
            GuestFault::SkipReset => "skip-reset",
            GuestFault::ForgetTracker => "forget-tracker",
            GuestFault::ForgeHost => "forge-host",
            GuestFault::Partial(Target::Shared, Omitted::First) => "partial-share-first",
            GuestFault::Partial(Target::Shared, Omitted::Middle) => "partial-share-middle",
            GuestFault::Partial(Target::Shared, Omitted::Last) => "partial-share-last",
            GuestFault::Partial(Target::Private, Omitted::First) => "partial-unshare-first",
            GuestFault::Partial(Target::Private, Omitted::Middle) => "partial-unshare-middle",
            GuestFault::Partial(Target::Private, Omitted::Last) => "partial-unshare-last",
        }
    }

    pub fn parse(s: &str) -> Option<GuestFault> {
        GuestFault::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The granule (index from 0) a conversion of `granules` granules to
    /// `to` leaves out under this fault; `None`: it converts them all.
    pub const fn omits(self, to: Target, granules: u64) -> Option<u64> {
        let GuestFault::Partial(t, at) = self else {
            return None;
        };
        if !matches!(
            (t, to),
            (Target::Shared, Target::Shared) | (Target::Private, Target::Private)
        ) {
            return None;
        }
        match at {
            Omitted::First if granules >= 2 => Some(0),
            Omitted::Last if granules >= 2 => Some(granules - 1),
            Omitted::Middle if granules >= 3 => Some(granules / 2),
            _ => None,
        }
    }
}

/// What the VMM does to guest memory when the guest resets (`reset=`, as
/// the VMM that applies it tells the guest). The guest's expectations for
/// what survives a reboot are keyed by it; absent (QEMU): memory is kept,
/// as QEMU's system reset keeps RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetPolicy {
    /// Memory, attributes and guest_memfd survive the reset: only the
    /// guest's firmware can make memory private again.
    Keep,
    /// The VMM makes all memory private on reset (attributes, punch).
    Private,
    /// The VMM builds a new VM (new VM fd, new guest_memfd).
    Recreate,
}

impl ResetPolicy {
    pub const ALL: [ResetPolicy; 3] = [
        ResetPolicy::Keep,
        ResetPolicy::Private,
        ResetPolicy::Recreate,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ResetPolicy::Keep => "keep",
            ResetPolicy::Private => "private",
            ResetPolicy::Recreate => "recreate",
        }
    }

    pub fn parse(s: &str) -> Option<ResetPolicy> {
        ResetPolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Does guest memory keep its bytes across the reset?
    pub const fn keeps_memory(self) -> bool {
        matches!(self, ResetPolicy::Keep)
    }
}

/// Who serves the guest's conversion exits, as that VMM says of itself
/// (`vmm=`): the suite's expected answers for what the ABI leaves to the
/// VMM are keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmmKind {
    /// convtest's own VMM (`convtest vmm`).
    Convtest,
}

impl VmmKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            VmmKind::Convtest => "convtest",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// Comma-separated globs over catalog names.
    pub tests: &'a str,
    pub seed: u64,
    /// Repetitions for stress-style tests (heap rounds, flip-flops).
    pub iters: u32,
    /// Bytes of free RAM the memory-pattern tests cover (0 = all free RAM).
    pub mem_bytes: u64,
    /// Which boot of a reboot series this is (0 = first).
    pub boot: u32,
    pub reboots: u32,
    pub host: bool,
    pub bench: bool,
    pub inject: Option<Inject>,
    /// Content semantics the VMM promises for conversions (`content=`).
    pub content: Option<Content>,
    /// A deliberate firmware bug to inject (`gfault=`).
    pub guest_fault: Option<GuestFault>,
    /// Wall budget per op and size in the bench suite, ms (`bench_ms=`).
    pub bench_ms: u32,
    /// The VMM, as it names itself (`vmm=`); unknown when absent.
    pub vmm: Option<VmmKind>,
    /// What the VMM does to memory on a reset (`reset=`); unknown when absent.
    pub reset: Option<ResetPolicy>,
    /// CPUs the platform was started with (`cpus=`, ≥ 1): the guest brings
    /// up that many and fails `smp.online` if one does not check in.
    pub cpus: u32,
    /// Stop a seeded storm after this operation index (`replay=`): re-runs a
    /// failing storm up to the operation that failed.
    pub replay: Option<u64>,
    /// Operations in a seeded storm (`storm_ops=`; default iters × 100).
    /// The sequence does not depend on it: a longer storm extends a shorter.
    pub storm_ops: Option<u64>,
    /// Operations of the hostile traffic (`hostile.vmm`; `hostile_ops=`;
    /// default iters × 10).
    pub hostile_ops: Option<u64>,
}

pub const DEFAULT_SEED: u64 = 0x5eed;
pub const DEFAULT_ITERS: u32 = 1000;
pub const DEFAULT_MEM_BYTES: u64 = 16 << 20;
pub const DEFAULT_BENCH_MS: u32 = 100;
/// Storm operations per `iters=` unit when the plan names no `storm_ops=`:
/// the default iters=1000 gives 1e5.
pub const STORM_OPS_PER_ITER: u64 = 100;
/// Hostile operations per `iters=` unit when the plan names no `hostile_ops=`.
pub const HOSTILE_OPS_PER_ITER: u64 = 10;
/// Most CPUs a plan may name (the guest's per-CPU tables are this big).
pub const MAX_CPUS: u32 = 64;

impl Default for Plan<'_> {
    fn default() -> Self {
        Plan {
            tests: "*",
            seed: DEFAULT_SEED,
            iters: DEFAULT_ITERS,
            mem_bytes: DEFAULT_MEM_BYTES,
            boot: 0,
            reboots: 0,
            host: false,
            bench: true,
            inject: None,
            content: None,
            guest_fault: None,
            vmm: None,
            reset: None,
            bench_ms: DEFAULT_BENCH_MS,
            cpus: 1,
            replay: None,
            storm_ops: None,
            hostile_ops: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanError<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub expected: &'static str,
}

impl fmt::Display for PlanError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plan key {}={:?}: expected {}",
            self.key, self.value, self.expected
        )
    }
}

/// Outcome of parsing a command line: the plan, the first bad key (if any;
/// its default stays in force) and how many words were not ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub plan: Plan<'a>,
    pub error: Option<PlanError<'a>>,
    pub foreign_words: usize,
}

impl<'a> Plan<'a> {
    pub fn parse(cmdline: &'a str) -> Parsed<'a> {
        let mut plan = Plan::default();
        let mut error = None;
        let mut foreign_words = 0;
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                foreign_words += 1;
                continue;
            };
            let res = match key {
                "tests" => {
                    plan.tests = value;
                    Ok(())
                }
                "seed" => parse_u64(value)
                    .map(|v| plan.seed = v)
                    .ok_or("an integer (decimal or 0x-hex)"),
                "iters" => parse_u32(value)
                    .map(|v| plan.iters = v)
                    .ok_or("an integer below 2^32"),
                "mem" => parse_size(value)
                    .map(|v| plan.mem_bytes = v)
                    .ok_or("a size like 16M, 4096 or 0 (all)"),
                "boot" => parse_u32(value)
                    .map(|v| plan.boot = v)
                    .ok_or("an integer below 2^32"),
                "reboots" => parse_u32(value)
                    .map(|v| plan.reboots = v)
                    .ok_or("an integer below 2^32"),
                "host" => parse_switch(value)
                    .map(|v| plan.host = v)
                    .ok_or("on or off"),
                "bench" => parse_switch(value)
                    .map(|v| plan.bench = v)
                    .ok_or("on or off"),
                "inject" => parse_inject(value)
                    .map(|v| plan.inject = v)
                    .ok_or("fault, hang, forge or none"),
                "content" => parse_content(value)
                    .map(|v| plan.content = Some(v))
                    .ok_or("zero or preserve"),
                "bench_ms" => parse_u32(value)
                    .filter(|&v| v > 0)
                    .map(|v| plan.bench_ms = v)
                    .ok_or("a positive number of milliseconds"),
                "gfault" => GuestFault::parse(value)
                    .map(|v| plan.guest_fault = Some(v))
                    .ok_or("skip-share, skip-unshare, skip-reset, forget-tracker, forge-host or partial-share|partial-unshare-first|middle|last"),
                "reset" => ResetPolicy::parse(value)
                    .map(|v| plan.reset = Some(v))
                    .ok_or("keep, private or recreate"),
                "cpus" => parse_u32(value)
                    .filter(|&v| (1..=MAX_CPUS).contains(&v))
                    .map(|v| plan.cpus = v)
                    .ok_or("a CPU count from 1 to 64"),
                "replay" => parse_u64(value)
                    .map(|v| plan.replay = Some(v))
                    .ok_or("an operation index (decimal or 0x-hex)"),
                "storm_ops" => parse_u64(value)
                    .filter(|&v| v > 0)
                    .map(|v| plan.storm_ops = Some(v))
                    .ok_or("a positive operation count"),
                "hostile_ops" => parse_u64(value)
                    .filter(|&v| v > 0)
                    .map(|v| plan.hostile_ops = Some(v))
                    .ok_or("a positive operation count"),
                "vmm" => match value {
                    "convtest" => {
                        plan.vmm = Some(VmmKind::Convtest);
                        Ok(())
                    }
                    _ => Err("convtest"),
                },
                _ => {
                    foreign_words += 1;
                    Ok(())
                }
            };
            if let Err(expected) = res {
                error.get_or_insert(PlanError {
                    key,
                    value,
                    expected,
                });
            }
        }
        Parsed {
            plan,
            error,
            foreign_words,
        }
    }
}

impl Plan<'_> {
    /// Operations a seeded storm runs: `storm_ops=`, else iters × 100.
    pub fn storm_len(&self) -> u64 {
        self.storm_ops
            .unwrap_or(u64::from(self.iters.max(1)) * STORM_OPS_PER_ITER)
    }

    /// Operations of the hostile traffic: `hostile_ops=`, else iters × 10.
    pub fn hostile_len(&self) -> u64 {
        self.hostile_ops
            .unwrap_or(u64::from(self.iters.max(1)) * HOSTILE_OPS_PER_ITER)
    }
}

/// The command-line form the guest parses back into the same plan.
impl fmt::Display for Plan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let onoff = |b: bool| if b { "on" } else { "off" };
        write!(
            f,
            "tests={} seed={:#x} iters={} mem={} boot={} reboots={} host={} bench={}",
            self.tests,
            self.seed,
            self.iters,
            self.mem_bytes,
            self.boot,
            self.reboots,
            onoff(self.host),
            onoff(self.bench)
        )?;
        if let Some(i) = self.inject {
            write!(f, " inject={}", i.as_str())?;
        }
        if let Some(c) = self.content {
            write!(f, " content={}", c.as_str())?;
        }
        if let Some(g) = self.guest_fault {
            write!(f, " gfault={}", g.as_str())?;
        }
        if self.bench_ms != DEFAULT_BENCH_MS {
            write!(f, " bench_ms={}", self.bench_ms)?;
        }
        if let Some(v) = self.vmm {
            write!(f, " vmm={}", v.as_str())?;
        }
        if let Some(r) = self.reset {
            write!(f, " reset={}", r.as_str())?;
        }
        if self.cpus != 1 {
            write!(f, " cpus={}", self.cpus)?;
        }
        if let Some(r) = self.replay {
            write!(f, " replay={r}")?;
        }
        if let Some(n) = self.storm_ops {
            write!(f, " storm_ops={n}")?;
        }
        if let Some(n) = self.hostile_ops {
            write!(f, " hostile_ops={n}")?;
        }
        Ok(())
    }
}

fn parse_u64(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn parse_u32(v: &str) -> Option<u32> {
    parse_u64(v).and_then(|x| u32::try_from(x).ok())
}

fn parse_inject(v: &str) -> Option<Option<Inject>> {
    match v {
        "fault" => Some(Some(Inject::Fault)),
        "hang" => Some(Some(Inject::Hang)),
        "forge" => Some(Some(Inject::Forge)),
        "none" => Some(None),
        _ => None,
    }
}

fn parse_content(v: &str) -> Option<Content> {
    match v {
        "zero" => Some(Content::Zero),
        "preserve" => Some(Content::Preserve),
        _ => None,
    }
}

fn parse_switch(v: &str) -> Option<bool> {
    match v {
        "on" | "1" | "yes" | "true" => Some(true),
        "off" | "0" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// `4096`, `64K`, `16M`, `1G` (binary units).
pub fn parse_size(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 10),
        b'm' | b'M' => (&v[..v.len() - 1], 20),
        b'g' | b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    parse_u64(digits)?.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn empty_cmdline_is_default_plan() {
        let p = Plan::parse("");
        assert_eq!(p.plan, Plan::default());
        assert_eq!(p.error, None);
    }

    #[test]
    fn all_keys() {
        let p = Plan::parse(
            "console=ttyS0 tests=mem.*,heap.* seed=0x2a iters=7 mem=1M boot=1 reboots=3 host=on bench=off inject=hang quiet",
        );
        assert_eq!(p.error, None);
        assert_eq!(p.foreign_words, 2);
        let q = p.plan;
        assert_eq!(
            (q.tests, q.seed, q.iters, q.mem_bytes),
            ("mem.*,heap.*", 42, 7, 1 << 20)
        );
        assert_eq!(
            (q.boot, q.reboots, q.host, q.bench, q.inject),
            (1, 3, true, false, Some(Inject::Hang))
        );
    }

    #[test]
    fn cpus_and_replay_round_trip_and_bounds() {
        let p = Plan::parse("cpus=4 replay=0x10 storm_ops=2000 hostile_ops=10000");
        assert_eq!(p.error, None);
        assert_eq!(
            (
                p.plan.cpus,
                p.plan.replay,
                p.plan.storm_ops,
                p.plan.hostile_len()
            ),
            (4, Some(16), Some(2000), 10_000)
        );
        assert_eq!(Plan::parse("iters=7").plan.hostile_len(), 70);
        assert_eq!(
            Plan::parse("hostile_ops=0").error.map(|e| e.key),
            Some("hostile_ops")
        );
        let text = p.plan.to_string();
        let again = Plan::parse(&text).plan;
        assert_eq!(again, p.plan);
        assert_eq!(Plan::default().cpus, 1);
        for bad in ["cpus=0", "cpus=65", "cpus=x"] {
            let e = Plan::parse(bad).error.expect(bad);
            assert_eq!(e.key, "cpus");
        }
    }

    #[test]
    fn bad_value_is_reported_and_default_kept() {
        let p = Plan::parse("seed=banana iters=5 host=maybe");
        assert_eq!(p.plan.seed, DEFAULT_SEED);
        assert_eq!(p.plan.iters, 5);
        let e = p.error.unwrap();
        assert_eq!((e.key, e.value), ("seed", "banana"));
        assert!(e.to_string().contains("integer"));
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(Plan::parse("iters=4294967296").error.is_some());
        assert!(Plan::parse("mem=99999999999999999G").error.is_some());
    }

    #[test]
    fn encode_roundtrips() {
        let plan = Plan {
            tests: "boot.*",
            seed: 99,
            inject: Some(Inject::Fault),
            host: true,
            content: Some(Content::Zero),
            guest_fault: Some(GuestFault::SkipReset),
            vmm: Some(VmmKind::Convtest),
            bench_ms: 250,
            ..Plan::default()
        };
        let line = plan.to_string();
        let back = Plan::parse(&line);
        assert_eq!(back.error, None);
        assert_eq!(back.foreign_words, 0);
        assert_eq!(back.plan, plan);
    }

    #[test]
    fn content_key() {
        assert_eq!(Plan::parse("").plan.content, None);
        // The VMM appends it after the runner's plan.
        let p = Plan::parse("tests=conv.* host=on content=preserve");
        assert_eq!(p.plan.content, Some(Content::Preserve));
        assert_eq!(p.foreign_words, 0);
        let bad = Plan::parse("content=shred");
        assert_eq!(bad.plan.content, None);
        assert_eq!(bad.error.map(|e| e.key), Some("content"));
        assert!(!Plan::default().to_string().contains("content"));
    }

    #[test]
    fn a_partial_fault_leaves_out_one_granule_of_its_direction() {
        let f = |t, at| GuestFault::Partial(t, at);
        let (s, p) = (Target::Shared, Target::Private);
        assert_eq!(f(s, Omitted::First).omits(s, 512), Some(0));
        assert_eq!(f(s, Omitted::Last).omits(s, 512), Some(511));
        assert_eq!(f(s, Omitted::Middle).omits(s, 512), Some(256));
        assert_eq!(f(p, Omitted::Middle).omits(p, 3), Some(1));
        // One granule is all or nothing, not partial; two have no middle.
        assert_eq!(f(s, Omitted::First).omits(s, 1), None);
        assert_eq!(f(s, Omitted::Last).omits(s, 2), Some(1));
        assert_eq!(f(s, Omitted::Middle).omits(s, 2), None);
        // The other direction is untouched.
        assert_eq!(f(s, Omitted::First).omits(p, 512), None);
        assert_eq!(f(p, Omitted::Last).omits(s, 512), None);
        assert_eq!(GuestFault::SkipShare.omits(s, 512), None);
    }

    #[test]
    fn guest_fault_and_vmm_keys() {
        for g in GuestFault::ALL {
            let line = alloc::format!("gfault={}", g.as_str());
            assert_eq!(Plan::parse(&line).plan.guest_fault, Some(g));
        }
        let names: alloc::vec::Vec<&str> = GuestFault::ALL.iter().map(|g| g.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} twice");
        }
        let bad = Plan::parse("gfault=skip-everything vmm=qemu");
        assert_eq!(bad.error.map(|e| e.key), Some("gfault"));
        assert_eq!(bad.plan.vmm, None);
        assert_eq!(
            Plan::parse("vmm=convtest").plan.vmm,
            Some(VmmKind::Convtest)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size(""), None);
    }
}
