//! The VMM's own share of every conversion exit, so `convtest bench` can
//! set what the VMM adds apart from what KVM and the exit itself cost.
//!
//! The run loop times each MAP_GPA_RANGE exit it serves, from the exit's
//! arrival to the guest's rax being set; memory.rs times the host calls
//! inside ([`HostTime`]: KVM_SET_MEMORY_ATTRIBUTES, and the content clear —
//! fallocate punch plus madvise discard); what is left is the model (the
//! checks, the page-state walk, the fault plan, the record). Not in the
//! window: the way back (the console pump, the watchdog, KVM_RUN's entry),
//! which is the exit's cost. At the VMM's end [`ExitTimes::write_bench`]
//! prints one `# bench:` line per
//! (direction, page-size hint, npages) bucket and part, ns only:
//!
//! ```text
//! # bench: op=vmm_share size_bytes=4096 pages=1 iters=200 ns_p50=… ns_p99=… ns_min=…
//! ```
//!
//! Ops: `vmm_share`, `vmm_unshare` (exits that changed pages) with parts
//! `_attributes`, `_clear`, `_model`; `vmm_noop` (every page already in the
//! target state: no host call, total only). A request with the 2M or 1G
//! hint gets `_2m`/`_1g` after the direction (`vmm_share_2m_clear`), like
//! the guest's `share_2m`. A part the bucket's exits never made (no
//! attribute change in emulated-private memory, no clear with
//! `--content preserve`) has no line rather than a line of zeros.
//! Requests that were rejected, failed or had a `--vmm-fault` applied are
//! not timed: they are not the cost of a conversion. The lines are printed
//! only when the guest ended the run itself; the closing facts always carry
//! `vmm_time_{share,unshare,noop}_ms` (every timed exit, caps or not),
//! `vmm_time_dropped` and `vmm_clock_ns` (what one clock read costs: a
//! timed exit makes two, plus two per host call).
//!
//! Bounded: at most [`MAX_BUCKETS`] buckets, [`MAX_SAMPLES`] samples per
//! bucket and [`MAX_KEPT`] in all (12 bytes each, so at most 12 MB); beyond
//! that samples are counted as dropped, and the totals still add up.
use super::host_time::{HostTime, ns_since};
use super::serve::{Effect, Served};
use crate::end::GuestEnd;
use crate::facts::Facts;
use convtest_proto::bench::Spread;
use convtest_proto::ktap::BENCH_PREFIX;
use convtest_proto::map_gpa::PAGE_4K;
use convtest_proto::map_gpa::{ATTR_PAGE_SZ_1G, ATTR_PAGE_SZ_2M};
use convtest_proto::tracker::Target;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

pub const MAX_BUCKETS: usize = 64;
pub const MAX_SAMPLES: usize = 100_000;
pub const MAX_KEPT: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Share,
    Unshare,
    Noop,
}

impl Kind {
    fn op(self) -> &'static str {
        match self {
            Kind::Share => "vmm_share",
            Kind::Unshare => "vmm_unshare",
            Kind::Noop => "vmm_noop",
        }
    }
}

/// What one timed exit is filed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    /// The request's page-size hint (attrs bits 0..3, 0..=2 once checked).
    pub hint: u64,
    pub pages: u64,
}

impl Key {
    /// The bucket of a served exit with attributes `attrs`; `None` for an
    /// exit that is not a conversion's cost (rejected, failed, faulted,
    /// converted nothing).
    pub fn of(s: &Served, attrs: u64) -> Option<Key> {
        if s.faulted {
            return None;
        }
        let (kind, req) = match &s.outcome {
            Effect::Converted { req, pages } if *pages > 0 => (
                match req.state {
                    Target::Shared => Kind::Share,
                    Target::Private => Kind::Unshare,
                },
                req,
            ),
            Effect::Unchanged(req) => (Kind::Noop, req),
            _ => return None,
        };
        Some(Key {
            kind,
            hint: attrs & 0xf,
            pages: req.range.len() / PAGE_4K,
        })
    }

    /// `vmm_share`, `vmm_share_2m`, …
    fn op(&self) -> String {
        let hint = match self.hint {
            0 => "",
            ATTR_PAGE_SZ_2M => "_2m",
            ATTR_PAGE_SZ_1G => "_1g",
            _ => "_hint",
        };
        format!("{}{hint}", self.kind.op())
    }
}

/// One exit: total, attributes, clear (ns, saturated to u32: 4.2 s).
type Sample = [u32; 3];

struct Bucket {
    key: Key,
    samples: Vec<Sample>,
    attributes_called: bool,
    clear_called: bool,
}

#[derive(Default)]
pub struct ExitTimes {
    buckets: Vec<Bucket>,
    kept: usize,
    /// Samples not kept (a cap was reached).
    pub dropped: u64,
    /// Total ns per kind, every timed exit counted.
    total_ns: [u64; 3],
}

fn sat32(ns: u64) -> u32 {
    u32::try_from(ns).unwrap_or(u32::MAX)
}

impl ExitTimes {
    /// Files one exit: `total_ns` of serving it, `host` of that in host calls.
    pub fn record(&mut self, key: Key, total_ns: u64, host: HostTime) {
        let sum = &mut self.total_ns[key.kind as usize];
        *sum = sum.saturating_add(total_ns);
        let i = match self.buckets.iter().position(|b| b.key == key) {
            Some(i) => i,
            None if self.buckets.len() < MAX_BUCKETS => {
                self.buckets.push(Bucket {
                    key,
                    samples: Vec::new(),
                    attributes_called: false,
                    clear_called: false,
                });
                self.buckets.len() - 1
            }
            None => {
                self.dropped += 1;
                return;
            }
        };
        let b = &mut self.buckets[i];
        if b.samples.len() >= MAX_SAMPLES || self.kept >= MAX_KEPT {
            self.dropped += 1;
            return;
        }
        b.attributes_called |= host.attributes.is_some();
        b.clear_called |= host.clear.is_some();
        b.samples.push([
            sat32(total_ns),
            sat32(host.attributes.unwrap_or(0)),
            sat32(host.clear.unwrap_or(0)),
        ]);
        self.kept += 1;
    }

    /// Total ms spent serving exits of `kind`, to the µs.
    pub fn total_ms(&self, kind: Kind) -> String {
        let ns = self.total_ns[kind as usize];
        format!("{}.{:03}", ns / 1_000_000, ns / 1_000 % 1_000)
    }

    /// The closing facts' share: `vmm_time_share_ms=` … .
    pub fn add_facts(&self, f: &mut Facts) {
        f.add("vmm_time_share_ms", self.total_ms(Kind::Share))
            .add("vmm_time_unshare_ms", self.total_ms(Kind::Unshare))
            .add("vmm_time_noop_ms", self.total_ms(Kind::Noop))
            .add("vmm_time_dropped", self.dropped);
    }

    /// Every bucket's lines, buckets sorted by kind, hint, pages.
    pub fn bench_lines(&self) -> Vec<String> {
        let mut order: Vec<&Bucket> = self.buckets.iter().collect();
        order.sort_by_key(|b| b.key);
        let mut out = Vec::new();
        for b in order {
            let op = b.key.op();
            let part = |f: fn(&Sample) -> u64| b.samples.iter().map(f).collect::<Vec<u64>>();
            let mut parts = vec![(op.clone(), part(|s| u64::from(s[0])))];
            if b.key.kind != Kind::Noop {
                if b.attributes_called {
                    parts.push((format!("{op}_attributes"), part(|s| u64::from(s[1]))));
                }
                if b.clear_called {
                    parts.push((format!("{op}_clear"), part(|s| u64::from(s[2]))));
                }
                let model =
                    |s: &Sample| u64::from(s[0]).saturating_sub(u64::from(s[1]) + u64::from(s[2]));
                parts.push((format!("{op}_model"), part(model)));
            }
            for (name, mut samples) in parts {
                out.extend(bench_line(&name, b.key.pages, &mut samples));
            }
        }
        out
    }

    /// Writes [`ExitTimes::bench_lines`] to the console stream, but only
    /// when the guest ended the run itself: after a hang or an unserved
    /// exit the runner quotes the last console line that is not a VMM fact,
    /// which must stay the guest's.
    pub fn write_bench(&self, out: &mut dyn Write, end: GuestEnd) {
        let lines = match end {
            GuestEnd::DebugExit(_) | GuestEnd::PowerOff | GuestEnd::Reset => self.bench_lines(),
            GuestEnd::Hang | GuestEnd::Unserved(_) => return,
        };
        let mut text = String::new();
        for line in lines {
            text.push('\n');
            text.push_str(&line);
        }
        if !text.is_empty() {
            // Starts on a fresh line: the guest may have left one unfinished.
            text.push('\n');
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
    }
}

/// `# bench: op=<op> size_bytes=… pages=<pages> iters=… ns_p50=… ns_p99=…
/// ns_min=…` (proto/src/bench.rs's form without the cycle fields: the VMM
/// has no guest counter); `None` without samples.
pub fn bench_line(op: &str, pages: u64, samples: &mut [u64]) -> Option<String> {
    let s = Spread::of(samples)?;
    let mut line = String::new();
    let _ = write!(
        line,
        "{BENCH_PREFIX}op={op} size_bytes={} pages={pages} iters={} ns_p50={} ns_p99={} ns_min={}",
        pages.saturating_mul(PAGE_4K),
        samples.len(),
        s.p50,
        s.p99,
        s.min
    );
    Some(line)
}

/// What one `Instant::now()` costs here (the best of a few reads), so a
/// reader knows the timing's own weight: each timed exit reads the clock
/// 2 + 2 per host call.
pub fn clock_cost_ns() -> u64 {
    (0..64)
        .map(|_| {
            let t = Instant::now();
            let _ = std::hint::black_box(Instant::now());
            ns_since(t)
        })
        .min()
        .unwrap_or(0)
        / 2
}

#[cfg(test)]
mod tests {
    use super::super::hypercall::{RET_EIO, RET_OK, Rejected, Request};
    use super::super::platform::PlatformError;
    use super::*;
    use convtest_proto::range::MemRange;

    fn served(outcome: Effect, faulted: bool) -> Served {
        Served {
            ret: RET_OK,
            outcome,
            faulted,
            host: HostTime::default(),
        }
    }

    fn req(pages: u64, state: Target) -> Request {
        Request {
            range: MemRange::new(0x200000, 0x200000 + pages * PAGE_4K),
            state,
        }
    }

    #[test]
    fn the_line_has_the_fixed_form_without_cycles() {
        let mut s = vec![300, 100, 200];
        assert_eq!(
            bench_line("vmm_share", 2, &mut s).unwrap(),
            "# bench: op=vmm_share size_bytes=8192 pages=2 iters=3 ns_p50=200 ns_p99=300 ns_min=100"
        );
        assert_eq!(bench_line("vmm_share", 1, &mut []), None);
    }

    #[test]
    fn only_clean_conversions_and_no_ops_are_timed() {
        let share = served(
            Effect::Converted {
                req: req(4, Target::Shared),
                pages: 3,
            },
            false,
        );
        assert_eq!(
            Key::of(&share, 1),
            Some(Key {
                kind: Kind::Share,
                hint: 1,
                pages: 4
            }),
            "bucketed by the request's size, not the pages that flipped"
        );
        let unshare = Effect::Unchanged(req(1, Target::Private));
        assert_eq!(
            Key::of(&served(unshare.clone(), false), 0x10).map(|k| k.kind),
            Some(Kind::Noop)
        );
        assert_eq!(Key::of(&served(unshare, true), 0x10), None, "faulted");
        let nothing = Effect::Converted {
            req: req(1, Target::Shared),
            pages: 0,
        };
        assert_eq!(Key::of(&served(nothing, false), 0), None);
        let failed = Effect::Failed {
            req: req(1, Target::Shared),
            pages: 0,
            error: PlatformError::Os {
                call: "x",
                errno: 5,
            },
        };
        let mut s = served(failed, false);
        s.ret = RET_EIO;
        assert_eq!(Key::of(&s, 0), None);
        assert_eq!(
            Key::of(&served(Effect::Rejected(Rejected::ZeroPages), false), 0),
            None
        );
    }

    fn key(kind: Kind, hint: u64, pages: u64) -> Key {
        Key { kind, hint, pages }
    }

    fn host(attributes: Option<u64>, clear: Option<u64>) -> HostTime {
        HostTime { attributes, clear }
    }

    #[test]
    fn parts_add_up_and_unused_parts_have_no_line() {
        let mut t = ExitTimes::default();
        for i in 0..10 {
            t.record(
                key(Kind::Unshare, 0, 1),
                1000 + i,
                host(Some(600), Some(300)),
            );
        }
        t.record(key(Kind::Share, 1, 512), 5000, host(None, Some(4000)));
        t.record(key(Kind::Noop, 0, 1), 50, HostTime::default());
        let lines = t.bench_lines();
        let ops: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(
            ops,
            [
                "op=vmm_share_2m",
                "op=vmm_share_2m_clear",
                "op=vmm_share_2m_model",
                "op=vmm_unshare",
                "op=vmm_unshare_attributes",
                "op=vmm_unshare_clear",
                "op=vmm_unshare_model",
                "op=vmm_noop",
            ]
        );
        assert!(lines[6].ends_with("iters=10 ns_p50=104 ns_p99=109 ns_min=100"));
        assert!(lines[1].contains("size_bytes=2097152 pages=512 iters=1 ns_p50=4000"));
        assert_eq!(t.total_ms(Kind::Unshare), "0.010");
        let mut f = Facts::default();
        t.add_facts(&mut f);
        assert!(
            f.line()
                .contains("vmm_time_share_ms=0.005 vmm_time_unshare_ms=0.010")
        );
    }

    /// The line form the runner's KTAP reader takes (its test reads this
    /// exact line): the guest's bench fields without the cycle ones.
    #[test]
    fn every_line_has_the_bench_form() {
        let mut t = ExitTimes::default();
        t.record(key(Kind::Share, 0, 1), 7000, host(Some(3000), Some(2000)));
        t.record(key(Kind::Noop, 0, 1), 400, HostTime::default());
        let lines = t.bench_lines();
        assert_eq!(lines.len(), 5);
        for l in &lines {
            let words: Vec<&str> = l.split(' ').collect();
            assert_eq!(&words[..2], ["#", "bench:"], "{l}");
            let keys: Vec<&str> = words[2..]
                .iter()
                .map(|w| w.split_once('=').expect("key=value").0)
                .collect();
            assert_eq!(
                keys,
                [
                    "op",
                    "size_bytes",
                    "pages",
                    "iters",
                    "ns_p50",
                    "ns_p99",
                    "ns_min"
                ],
                "{l}"
            );
        }
        assert_eq!(
            lines[4],
            "# bench: op=vmm_noop size_bytes=4096 pages=1 iters=1 ns_p50=400 ns_p99=400 ns_min=400"
        );
    }

    #[test]
    fn lines_are_written_only_when_the_guest_ended_the_run() {
        let mut t = ExitTimes::default();
        let mut out = Vec::new();
        t.write_bench(&mut out, GuestEnd::DebugExit(0));
        assert!(out.is_empty(), "nothing timed, nothing written");
        t.record(key(Kind::Noop, 0, 1), 400, HostTime::default());
        t.write_bench(&mut out, GuestEnd::Hang);
        t.write_bench(&mut out, GuestEnd::Unserved(crate::end::Unserved::Halt));
        assert!(out.is_empty());
        t.write_bench(&mut out, GuestEnd::DebugExit(0));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n# bench: op=vmm_noop size_bytes=4096 pages=1 iters=1 ns_p50=400 ns_p99=400 ns_min=400\n"
        );
    }

    #[test]
    fn a_guest_cannot_grow_the_book_without_bound() {
        let mut t = ExitTimes::default();
        for pages in 1..=(MAX_BUCKETS as u64 + 10) {
            t.record(key(Kind::Share, 0, pages), 1, HostTime::default());
        }
        assert_eq!(t.buckets.len(), MAX_BUCKETS);
        assert_eq!(t.dropped, 10);
        // Bucket 1 holds one already.
        for _ in 0..MAX_SAMPLES + 4 {
            t.record(key(Kind::Share, 0, 1), u64::MAX, HostTime::default());
        }
        assert_eq!(t.buckets[0].samples.len(), MAX_SAMPLES);
        assert_eq!(t.dropped, 15);
        assert_eq!(t.buckets[0].samples[1][0], u32::MAX, "saturated");
        assert_eq!(t.total_ms(Kind::Share), "18446744073709.551", "saturated");
        assert!(clock_cost_ns() < 1_000_000);
    }
}
