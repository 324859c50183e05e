//! Streaming KTAP v1 parser over the clean lines (clean.rs): nothing before
//! the first `KTAP version 1` (or convtest header) is read as a result.
//! Case results are the lines nested one level or more (4-space indent);
//! top-level results are suites. The VMM layers' `# convtest-vmm:`,
//! `# convtest-l1:` and `# convtest-host:` lines are read anywhere, and so
//! are the guest lines the relay between guest and runner marked
//! `# convtest-forged:` (convtest_proto::relay): each is kept with the test
//! it came in, for the verdict to name.

use super::clean::LineCleaner;
use super::log::{Bench, BootLog, Counts, Done, Forged, Log, TestResult};
use convtest_proto::hostcheck::{Ack, AnswerKind, Evidence};
use convtest_proto::ktap::{
    BENCH_PREFIX, CRASH_PREFIX, DONE_PREFIX, HEADER_PREFIX, INDENT, Outcome, VERSION_LINE,
};
use convtest_proto::wire::{
    BOOT_KEY, CUT_PREFIX, FORGED_PREFIX, HOST_LAYER_PREFIXES, HOST_PREFIX, L1_PREFIX, VMM_PREFIX,
};

/// Something the runner may want to show as it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `KTAP version 1` at top level (the second one means the guest rebooted).
    Version,
    Header(Vec<(String, String)>),
    Case(TestResult),
    Suite(TestResult),
    Crash(String),
    Done(Done),
    Bench(Bench),
}

/// The guest's timing of its boot's reset-to-private (a top-level diagnostic).
pub const RESET_PREFIX: &str = "reset-to-private:";

#[derive(Default)]
pub struct Parser {
    log: Log,
    clean: LineCleaner,
    started: bool,
    /// `# Subtest: <name>` per depth, for case names that lack the suite.
    subtest: Vec<Option<String>>,
    /// Diagnostics waiting for the next result line at the same depth.
    diags: Vec<(usize, String)>,
    /// Cases recorded since the last top-level result (0: that result is a leaf).
    cases_in_suite: usize,
    /// The host's answers since the last case result: they belong to the
    /// case that reports next.
    host_answers: Vec<(Option<Evidence>, String)>,
    /// `log.bench` indices since the last case result: the next case
    /// printed them.
    pending_bench: Vec<usize>,
    /// Forged lines since the last case result (indices into the log's):
    /// the case that reports next printed them.
    forged: Vec<usize>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds raw console bytes; returns what became known from complete lines.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut lines = Vec::new();
        self.clean.feed(bytes, &mut |line| lines.push(line));
        let mut events = Vec::new();
        for line in lines {
            self.end_line(line, &mut events);
        }
        events
    }

    /// Ends the stream: a partial last line is kept as the last line seen
    /// (and read for a crash marker) but never taken as a result.
    pub fn finish(mut self) -> (Log, Vec<Event>) {
        let mut events = Vec::new();
        if let Some(line) = self.clean.finish() {
            self.log.truncated = true;
            self.log.last_line = Some(line.clone());
            if self.started {
                self.log.ktap_lines.push(line.clone());
            }
            if let Some(crash) = line.trim_start().strip_prefix(CRASH_PREFIX.trim_end()) {
                self.record_crash(crash.trim(), &mut events);
            }
        }
        (self.log, events)
    }

    fn end_line(&mut self, line: String, events: &mut Vec<Event>) {
        // The VMM layers' lines are not what the guest last said.
        let trimmed = line.trim_start();
        if !HOST_LAYER_PREFIXES
            .iter()
            .filter(|p| **p != FORGED_PREFIX)
            .any(|p| trimmed.starts_with(p))
        {
            self.log.last_line = Some(line.clone());
        }
        self.line(line, events);
    }

    fn line(&mut self, line: String, events: &mut Vec<Event>) {
        let (depth, body) = split_indent(&line);
        // Facts from the VMM layers come before the guest's KTAP and after it.
        for (prefix, facts) in [
            (VMM_PREFIX, &mut self.log.vmm),
            (L1_PREFIX, &mut self.log.l1),
        ] {
            if let Some(rest) = body.trim_start().strip_prefix(prefix) {
                if prefix == VMM_PREFIX && key_values(rest).any(|(k, _)| k == BOOT_KEY) {
                    self.log.vmm_resets.push(
                        key_values(rest)
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    );
                }
                for (k, v) in key_values(rest) {
                    match facts.iter_mut().find(|(key, _)| key == k) {
                        Some(slot) => slot.1 = v.to_string(),
                        None => facts.push((k.to_string(), v.to_string())),
                    }
                }
                return;
            }
        }
        if let Some(rest) = body.trim_start().strip_prefix(HOST_PREFIX) {
            let (kind, ack) = rest.split_once(' ').unwrap_or((rest, ""));
            match (AnswerKind::parse(kind), Ack::parse(ack)) {
                (Some(kind), Some(ack)) => {
                    self.log.host_answers.add(kind);
                    let status = if ack.ok { "ok" } else { "fail" };
                    let evidence = ack.evidence.map_or("(no evidence named)", Evidence::as_str);
                    self.host_answers.push((
                        ack.evidence,
                        format!("host: {status} {evidence} {}", ack.detail),
                    ));
                }
                _ => self
                    .log
                    .malformed_host_lines
                    .push(body.trim_start().to_string()),
            }
            return;
        }
        if let Some(rest) = body.trim_start().strip_prefix(FORGED_PREFIX) {
            self.forged.push(self.log.forged.len());
            self.log.forged.push(Forged {
                line: rest.trim().to_string(),
                boot: self.log.boot_logs.len().saturating_sub(1),
                test: None,
            });
            return;
        }
        if body.trim_start().starts_with(CUT_PREFIX) {
            return;
        }
        // Before the first boot, firmware may leave text on the guest's first line.
        let top_version =
            (depth == 0 && body == VERSION_LINE) || (!self.started && body.ends_with(VERSION_LINE));
        if top_version {
            self.start_boot(events);
            self.log.ktap_lines.push(VERSION_LINE.to_string());
            return;
        }
        if !self.started {
            if body.starts_with(HEADER_PREFIX) {
                self.start_boot(events);
            } else {
                return;
            }
        }
        self.log.ktap_lines.push(line.clone());
        if body == VERSION_LINE {
            return; // nested subtest version line
        }
        if let Some(rest) = body.strip_prefix('#') {
            self.diagnostic(depth, body, rest.trim(), events);
        } else if let Some(result) = parse_result(body, depth) {
            self.result(result, events);
        }
        // Plan lines (`1..N`) and anything else carry nothing the verdict needs.
    }

    fn start_boot(&mut self, events: &mut Vec<Event>) {
        self.started = true;
        self.log.boot_logs.push(BootLog {
            first_test: self.log.tests.len(),
            ..BootLog::default()
        });
        self.subtest.clear();
        self.diags.clear();
        self.host_answers.clear();
        self.pending_bench.clear();
        self.forged.clear();
        self.cases_in_suite = 0;
        events.push(Event::Version);
    }

    fn diagnostic(&mut self, depth: usize, body: &str, text: &str, events: &mut Vec<Event>) {
        if let Some(rest) = body.strip_prefix(HEADER_PREFIX) {
            self.log.header = key_values(rest)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if let Some(b) = self.log.boot_logs.last_mut() {
                b.header = self.log.header.clone();
            }
            events.push(Event::Header(self.log.header.clone()));
        } else if let Some(rest) = body.strip_prefix(DONE_PREFIX) {
            let done = Done {
                counts: parse_counts(rest),
                raw: body.to_string(),
            };
            self.log.done = Some(done.clone());
            if let Some(b) = self.log.boot_logs.last_mut() {
                b.done = Some(done.clone());
            }
            events.push(Event::Done(done));
        } else if let Some(rest) = body.strip_prefix(CRASH_PREFIX) {
            self.record_crash(rest.trim(), events);
        } else if let Some(rest) = body.strip_prefix(BENCH_PREFIX) {
            let bench = parse_bench(rest);
            self.pending_bench.push(self.log.bench.len());
            self.log.bench.push(bench.clone());
            events.push(Event::Bench(bench));
        } else if let Some(name) = text.strip_prefix("Subtest:") {
            if self.subtest.len() <= depth {
                self.subtest.resize(depth + 1, None);
            }
            self.subtest[depth] = Some(name.trim().to_string());
        } else if depth == 0 {
            if let (Some(reset), Some(b)) = (
                text.strip_prefix(RESET_PREFIX),
                self.log.boot_logs.last_mut(),
            ) {
                b.reset = Some(reset.trim().to_string());
            }
            self.log.diagnostics.push(text.to_string());
        } else {
            self.diags.push((depth, text.to_string()));
        }
    }

    fn record_crash(&mut self, what: &str, events: &mut Vec<Event>) {
        let crash = format!("{}{}", CRASH_PREFIX, what);
        if self.log.crash.is_none() {
            self.log.crash = Some(crash.clone());
        }
        if let Some(b) = self.log.boot_logs.last_mut() {
            b.crash.get_or_insert(crash.clone());
        }
        events.push(Event::Crash(crash));
    }

    fn result(&mut self, mut result: TestResult, events: &mut Vec<Event>) {
        let depth = result.depth;
        result.boot = self.log.boot_logs.len().saturating_sub(1);
        // Diagnostics at this depth or deeper that came before this line are its own.
        let (mine, rest): (Vec<_>, Vec<_>) = self.diags.drain(..).partition(|(d, _)| *d >= depth);
        self.diags = rest;
        result.diagnostics = mine.into_iter().map(|(_, d)| d).collect();
        if depth == 0 {
            let leaf = self.cases_in_suite == 0;
            self.cases_in_suite = 0;
            self.subtest.clear();
            if leaf {
                self.own_bench(&result);
                self.log.tests.push(result.clone());
                events.push(Event::Case(result));
            } else {
                // A bench line after a suite's last case has no test.
                self.pending_bench.clear();
                self.log.suites.push(result.clone());
                events.push(Event::Suite(result));
            }
            return;
        }
        if !result.name.contains('.') {
            let suite = self.subtest.get(depth).and_then(Option::as_ref);
            if let Some(suite) = suite {
                result.name = format!("{suite}.{}", result.name);
            }
        }
        let vouches = convtest_proto::catalog::vouches(&result.name);
        for (evidence, text) in self.host_answers.drain(..) {
            if vouches {
                // A host that names no evidence proves no more than bookkeeping.
                let e = evidence.unwrap_or(Evidence::Bookkeeping);
                result.evidence = Some(result.evidence.map_or(e, |old| old.weakest(e)));
            }
            result.diagnostics.push(text);
        }
        for i in std::mem::take(&mut self.forged) {
            if let Some(f) = self.log.forged.get_mut(i) {
                f.test = Some(result.name.clone());
                result.forged.push(f.line.clone());
            }
        }
        self.cases_in_suite += 1;
        self.own_bench(&result);
        self.log.tests.push(result.clone());
        events.push(Event::Case(result));
    }

    /// The bench lines printed since the last case belong to `result`.
    fn own_bench(&mut self, result: &TestResult) {
        for i in self.pending_bench.drain(..) {
            if let Some(b) = self.log.bench.get_mut(i) {
                b.test = Some(result.name.clone());
                b.boot = Some(result.boot);
            }
        }
    }
}

/// Indentation depth (4 spaces per level) and the rest of the line.
fn split_indent(line: &str) -> (usize, &str) {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    (spaces / INDENT.len(), line.trim_start())
}

/// `ok 3 name # SKIP why`, `not ok 2 - name # why`.
fn parse_result(body: &str, depth: usize) -> Option<TestResult> {
    let (failed, rest) = if let Some(r) = body.strip_prefix("not ok ") {
        (true, r)
    } else {
        (false, body.strip_prefix("ok ")?)
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let number = rest[..digits].parse().ok()?;
    let rest = &rest[digits..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (name, directive) = match rest.split_once('#') {
        Some((n, d)) => (n.trim(), d.trim()),
        None => (rest.trim(), ""),
    };
    let (result, reason) = match strip_word(directive, "SKIP") {
        Some(why) => (Outcome::Skip, why),
        None if failed => (Outcome::Fail, directive),
        None => (Outcome::Pass, directive),
    };
    Some(TestResult {
        name: name.to_string(),
        result,
        reason: reason.to_string(),
        diagnostics: Vec::new(),
        evidence: None,
        forged: Vec::new(),
        boot: 0,
        number,
        depth,
    })
}

/// `word rest` (case-insensitive word) -> `rest`.
fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    let tail = &s[word.len()..];
    (head.eq_ignore_ascii_case(word) && (tail.is_empty() || tail.starts_with(' ')))
        .then(|| tail.trim())
}

fn key_values(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split_ascii_whitespace().filter_map(|w| w.split_once('='))
}

fn parse_counts(s: &str) -> Option<Counts> {
    let (mut pass, mut fail, mut skip) = (None, None, None);
    for (k, v) in key_values(s) {
        let slot = match k {
            "pass" => &mut pass,
            "fail" => &mut fail,
            "skip" => &mut skip,
            _ => continue,
        };
        *slot = Some(v.parse().ok()?);
    }
    Some(Counts {
        pass: pass?,
        fail: fail?,
        skip: skip?,
    })
}

fn parse_bench(s: &str) -> Bench {
    let mut b = Bench::default();
    for (k, v) in key_values(s) {
        let n = v.parse().ok();
        match k {
            "op" => b.op = v.to_string(),
            "size_bytes" => b.size_bytes = n,
            "pages" => b.pages = n,
            "iters" => b.iters = n,
            "ns_p50" => b.ns_p50 = n,
            "ns_p99" => b.ns_p99 = n,
            "ns_min" => b.ns_min = n,
            "cycles_p50" => b.cycles_p50 = n,
            "cycles_p99" => b.cycles_p99 = n,
            "cycles_min" => b.cycles_min = n,
            _ => {}
        }
    }
    b
}

/// Parses a whole recorded console at once.
pub fn parse_all(bytes: &[u8]) -> Log {
    let mut p = Parser::new();
    p.feed(bytes);
    p.finish().0
}

#[cfg(test)]
mod tests {
    use super::super::clean::MAX_LINE;
    use super::*;

    const GOOD: &str = include_str!("../../tests/fixtures/x86_pvh_pass.ktap");

    fn names(log: &Log, outcome: Outcome) -> Vec<&str> {
        log.tests
            .iter()
            .filter(|t| t.result == outcome)
            .map(|t| t.name.as_str())
            .collect()
    }

    #[test]
    fn clean_run() {
        let log = parse_all(GOOD.as_bytes());
        assert_eq!(log.boot_logs.len(), 1);
        assert_eq!(log.header_value("arch"), Some("x86_64"));
        assert_eq!(log.header_value("converter"), Some("none"));
        assert_eq!(log.header_value("granule"), Some("4096"));
        let done = log.done.clone().expect("done marker");
        assert_eq!(done.counts, Some(log.counts()));
        assert_eq!(
            log.counts(),
            Counts {
                pass: 11,
                fail: 0,
                skip: 6
            }
        );
        assert!(names(&log, Outcome::Pass).contains(&"mem.walking_ones"));
        let conv = log
            .tests
            .iter()
            .find(|t| t.name == "conv.flipflop")
            .expect("conv.flipflop");
        assert_eq!(conv.result, Outcome::Skip);
        assert_eq!(
            conv.reason,
            "hypervisor TCGTCGTCGTCG offers no conversion ABI"
        );
        assert_eq!(log.suites.len(), 6);
        assert!(log.crash.is_none() && !log.truncated);
        assert_eq!(
            log.ktap_lines.first().map(String::as_str),
            Some(VERSION_LINE)
        );
        assert!(log.diagnostics.iter().any(|d| d.starts_with("probe:")));
    }

    #[test]
    fn diagnostics_attach_to_the_next_result() {
        let log = parse_all(GOOD.as_bytes());
        let heap = log
            .tests
            .iter()
            .find(|t| t.name == "heap.stress")
            .expect("heap.stress");
        assert_eq!(heap.diagnostics, ["rounds=1000 live_max=64 seed=0x5eed"]);
        let plan = log
            .tests
            .iter()
            .find(|t| t.name == "boot.plan")
            .expect("boot.plan");
        assert!(plan.diagnostics.is_empty());
    }

    /// The VMM's `# convtest-host:` echoes (lines as a nested run printed
    /// them) give each test the weakest evidence of its host checks.
    #[test]
    fn host_answers_give_each_test_its_evidence() {
        let text = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: conv\n    1..3\n\
            \x20   # convtest-req 5 verify 0xa01000 0x1000 0xc8cb19933f89b2a4\n\
            # convtest-host: verify convtest-ack 5 ok enforced 4096 bytes at [0xa01000-0xa02000) hold the guest's pattern\n\
            \x20   ok 1 conv.share_verify\n\
            \x20   # convtest-req 6 scan 0xaf50cada31eb87bb\n\
            # convtest-host: scan convtest-ack 6 ok enforced canary absent from 4096 host-visible bytes\n\
            \x20   # convtest-req 7 noread 0xa02000 0x1000 0xaf50cada31eb87bb\n\
            # convtest-host: noread convtest-ack 7 ok bookkeeping [0xa02000-0xa03000) is private in the VMM's tracking\n\
            \x20   ok 2 conv.unshare_private # bookkeeping only\n\
            \x20   ok 3 conv.content\n\
            ok 1 conv\n";
        let log = parse_all(text.as_bytes());
        let ev = |n: &str| log.tests.iter().find(|t| t.name == n).map(|t| t.evidence);
        assert_eq!(ev("conv.share_verify"), Some(Some(Evidence::Enforced)));
        assert_eq!(
            ev("conv.unshare_private"),
            Some(Some(Evidence::Bookkeeping))
        );
        assert_eq!(ev("conv.content"), Some(None), "no host check, no evidence");
        let unshare = &log.tests[1];
        assert_eq!(
            unshare.diagnostics.last().map(String::as_str),
            Some("host: ok bookkeeping [0xa02000-0xa03000) is private in the VMM's tracking")
        );
        assert!(
            log.diagnostics.is_empty(),
            "host lines are not guest diagnostics"
        );
        assert_eq!(log.last_line.as_deref(), Some("ok 1 conv"));
        // A host that names no evidence counts as bookkeeping.
        let old = parse_all(
            b"KTAP version 1\n    # Subtest: conv\n# convtest-host: scan convtest-ack 1 ok fine\n    ok 1 conv.x\n",
        );
        assert_eq!(old.tests[0].evidence, Some(Evidence::Bookkeeping));
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let mut p = Parser::new();
        for b in GOOD.as_bytes() {
            p.feed(std::slice::from_ref(b));
        }
        assert_eq!(p.finish().0, parse_all(GOOD.as_bytes()));
    }

    #[test]
    fn firmware_noise_escapes_and_carriage_returns() {
        let mut raw = Vec::new();
        raw.extend_from_slice(
            b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r\n",
        );
        raw.extend_from_slice(b"SeaBIOS (version 1.16)\r\nok 1 not.a.test\r\n"); // before KTAP: noise
        raw.extend_from_slice(b"Booting from Hard Disk...\r\x1b[0m");
        raw.extend_from_slice(GOOD.replace('\n', "\r\n").as_bytes());
        let log = parse_all(&raw);
        let clean = parse_all(GOOD.as_bytes());
        assert_eq!(log.tests, clean.tests);
        assert_eq!(log.done, clean.done);
        assert!(!log.tests.iter().any(|t| t.name == "not.a.test"));
    }

    #[test]
    fn recorded_ovmf_console() {
        // Raw serial output of the UEFI lane (tests=boot.*), recorded from QEMU + OVMF.
        let log = parse_all(include_bytes!("../../tests/fixtures/x86_uefi_boot.raw"));
        assert_eq!(log.boot_logs.len(), 1);
        assert_eq!(log.header_value("entry"), Some("bootloader-uefi"));
        assert_eq!(
            log.counts(),
            Counts {
                pass: 3,
                fail: 0,
                skip: 0
            }
        );
        assert_eq!(log.done.as_ref().and_then(|d| d.counts), Some(log.counts()));
        assert_eq!(
            log.ktap_lines.first().map(String::as_str),
            Some(VERSION_LINE)
        );
        assert!(
            log.ktap_lines
                .iter()
                .all(|l| !l.contains("BdsDxe") && !l.contains('\x1b'))
        );
    }

    #[test]
    fn version_line_after_firmware_text_on_the_same_line() {
        let log = parse_all(b"[ INFO]: Jumping to kernel KTAP version 1\n1..0\n# convtest-done: pass=0 fail=0 skip=0\n");
        assert_eq!(log.boot_logs.len(), 1);
        assert!(log.done.is_some());
    }

    #[test]
    fn garbage_and_invalid_utf8_survive() {
        let mut raw = b"\xff\xfe\x00\x80garbage\n".to_vec();
        raw.extend_from_slice(
            b"KTAP version 1\n\xc3\x28bad utf8 diag\n    ok 1 boot.plan \xe2\x82\n",
        );
        raw.extend_from_slice(b"\x00\x00    ok 2 boot.ram_map\n");
        let log = parse_all(&raw);
        assert_eq!(log.tests.len(), 2);
        assert_eq!(log.tests[0].name, "boot.plan \u{fffd}");
        assert_eq!(log.tests[1].name, "boot.ram_map");
        assert!(log.done.is_none());
    }

    #[test]
    fn truncated_mid_line() {
        let cut = GOOD.find("    ok 2 mem.address_in").expect("fixture line") + 12;
        let log = parse_all(&GOOD.as_bytes()[..cut]);
        assert!(log.truncated);
        assert_eq!(log.last_line.as_deref(), Some("    ok 2 mem"));
        assert!(
            !log.tests.iter().any(|t| t.name == "mem"),
            "a partial line is never a result"
        );
        assert!(log.done.is_none());
    }

    #[test]
    fn crash_line_and_partial_crash_line() {
        let raw = "KTAP version 1\n1..1\n    # Subtest: inject\n    1..1\n    # touching\n\
                   # convtest-crash: #PF at 0xdead0000 pc=0x1234\n    not ok 1 inject.requested # crashed (see convtest-crash line)\n";
        let log = parse_all(raw.as_bytes());
        assert_eq!(
            log.crash.as_deref(),
            Some("# convtest-crash: #PF at 0xdead0000 pc=0x1234")
        );
        assert_eq!(names(&log, Outcome::Fail), ["inject.requested"]);
        assert_eq!(log.tests[0].diagnostics, ["touching"]);

        let log = parse_all(b"KTAP version 1\n# convtest-crash: ESR=0x96000004 FAR=0x0");
        assert_eq!(
            log.crash.as_deref(),
            Some("# convtest-crash: ESR=0x96000004 FAR=0x0")
        );
        assert!(log.truncated);
    }

    #[test]
    fn directives() {
        let r = parse_result("ok 3 conv.sizes # SKIP no ABI", 1).expect("parses");
        assert_eq!(
            (r.result, r.reason.as_str(), r.number),
            (Outcome::Skip, "no ABI", 3)
        );
        let r = parse_result("not ok 12 - mem.random # mismatch at 0x1000", 1).expect("parses");
        assert_eq!(
            (r.name.as_str(), r.result, r.reason.as_str()),
            ("mem.random", Outcome::Fail, "mismatch at 0x1000")
        );
        let r = parse_result("ok 1 x # skip", 0).expect("parses");
        assert_eq!((r.result, r.reason.as_str()), (Outcome::Skip, ""));
        let r = parse_result("ok 1 x # SKIPPY reason", 0).expect("parses");
        assert_eq!(
            (r.result, r.reason.as_str()),
            (Outcome::Pass, "SKIPPY reason")
        );
        assert!(parse_result("okay 1 x", 0).is_none());
        assert!(parse_result("ok x", 0).is_none());
        assert!(parse_result("ok 1x", 0).is_none());
    }

    #[test]
    fn bare_case_names_get_the_subtest_name() {
        let raw = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: kunit\n    1..1\n    ok 1 case_a\nok 1 kunit\n";
        let log = parse_all(raw.as_bytes());
        assert_eq!(log.tests[0].name, "kunit.case_a");
        assert_eq!(log.suites[0].name, "kunit");
    }

    #[test]
    fn top_level_leaf_result_is_a_test() {
        let log = parse_all(b"KTAP version 1\n1..1\nok 1 lonely # SKIP nothing to do\n");
        assert_eq!(log.tests.len(), 1);
        assert_eq!(
            (log.tests[0].name.as_str(), log.tests[0].result),
            ("lonely", Outcome::Skip)
        );
        assert!(log.suites.is_empty());
    }

    #[test]
    fn vmm_and_l1_facts_anywhere_merge_by_key() {
        let raw = "# convtest-l1: kernel=7.3.4 kvm=swprot\n# convtest-vmm: memory=sw-protected content=zero\n\
                   KTAP version 1\n1..0\n# convtest-done: pass=0 fail=0\n\n# convtest-vmm: exits=9 content=zero\n\
                   # convtest-l1: vmm_exit=33\n";
        let log = parse_all(raw.as_bytes());
        let kv = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kv(&log.vmm),
            ["memory=sw-protected", "content=zero", "exits=9"]
        );
        assert_eq!(kv(&log.l1), ["kernel=7.3.4", "kvm=swprot", "vmm_exit=33"]);
        assert!(log.done.is_some() && log.diagnostics.is_empty());
        assert_eq!(
            log.last_line.as_deref(),
            Some("# convtest-done: pass=0 fail=0")
        );
    }

    #[test]
    fn done_and_bench_lines() {
        let raw = "KTAP version 1\n    # bench: op=share pages=512 iters=200 ns_p50=1500 ns_p99=2200 cycles_p50=4000\n\
                   # bench: op=memcpy pages=x\n# convtest-done: pass=1 fail=0\n";
        let log = parse_all(raw.as_bytes());
        assert_eq!(log.bench.len(), 2);
        assert_eq!(log.bench[0].op, "share");
        assert_eq!(
            (
                log.bench[0].pages,
                log.bench[0].ns_p99,
                log.bench[0].cycles_p50
            ),
            (Some(512), Some(2200), Some(4000))
        );
        assert_eq!(
            (log.bench[1].op.as_str(), log.bench[1].pages),
            ("memcpy", None)
        );
        let done = log.done.expect("done");
        assert_eq!(done.counts, None, "skip= missing: malformed");
        assert_eq!(done.raw, "# convtest-done: pass=1 fail=0");
    }

    /// A bench line belongs to the case that reports after it, in its boot;
    /// one after a suite's last case belongs to none.
    #[test]
    fn bench_lines_name_their_test_and_boot() {
        let boot = |n: u32, cost: &str| {
            format!(
                "KTAP version 1\n# convtest: boot={n}\n1..1\n    KTAP version 1\n    # Subtest: conv\n    1..2\n\
                 \x20   ok 1 conv.sizes\n    # bench: op=share_unshare size_bytes=4096 ns_p50={cost}\n\
                 \x20   # bench: op=noop size_bytes=0 ns_p50=9\n    ok 2 cost\n\
                 \x20   # bench: op=stray ns_p50=1\nok 1 conv\n"
            )
        };
        let log = parse_all(format!("{}{}", boot(0, "50"), boot(1, "60")).as_bytes());
        let owners: Vec<(&str, Option<&str>, Option<usize>)> = log
            .bench
            .iter()
            .map(|b| (b.op.as_str(), b.test.as_deref(), b.boot))
            .collect();
        assert_eq!(
            owners,
            [
                ("share_unshare", Some("conv.cost"), Some(0)),
                ("noop", Some("conv.cost"), Some(0)),
                ("stray", None, None),
                ("share_unshare", Some("conv.cost"), Some(1)),
                ("noop", Some("conv.cost"), Some(1)),
                ("stray", None, None),
            ]
        );
    }

    #[test]
    fn second_version_line_is_a_reboot() {
        let raw = format!("{GOOD}\x1b[2JSeaBIOS\r\n{GOOD}");
        let log = parse_all(raw.as_bytes());
        assert_eq!(log.boot_logs.len(), 2);
        assert_eq!(log.tests.len(), 34);
    }

    #[test]
    fn runaway_line_is_capped() {
        let mut raw = b"KTAP version 1\n# ".to_vec();
        raw.extend(std::iter::repeat_n(b'x', 100_000));
        raw.push(b'\n');
        let log = parse_all(&raw);
        assert!(log.diagnostics[0].len() < MAX_LINE);
    }

    #[test]
    fn events_arrive_per_line() {
        let mut p = Parser::new();
        assert!(p.feed(b"KTAP vers").is_empty());
        assert_eq!(p.feed(b"ion 1\n"), [Event::Version]);
        let ev = p.feed(b"    ok 1 boot.plan\n    ok 2 boo");
        assert!(matches!(&ev[..], [Event::Case(t)] if t.name == "boot.plan"));
        let ev = p.feed(b"t.ram_map # SKIP why\n");
        assert!(
            matches!(&ev[..], [Event::Case(t)] if t.name == "boot.ram_map" && t.reason == "why")
        );
    }

    /// The own VMM's exit timings (convtest-vmm's timing.rs writes this
    /// exact line): bench fields without the cycle ones.
    #[test]
    fn the_vmm_bench_line_parses() {
        let raw = "KTAP version 1\n1..0\n# convtest-done: pass=0 fail=0 skip=0\n\
                   # bench: op=vmm_noop size_bytes=4096 pages=1 iters=1 ns_p50=400 ns_p99=400 ns_min=400\n";
        let log = parse_all(raw.as_bytes());
        let b = &log.bench[0];
        assert_eq!(
            (
                b.op.as_str(),
                b.size_bytes,
                b.pages,
                b.iters,
                b.ns_p50,
                b.ns_p99,
                b.ns_min,
                b.cycles_p50
            ),
            (
                "vmm_noop",
                Some(4096),
                Some(1),
                Some(1),
                Some(400),
                Some(400),
                Some(400),
                None
            )
        );
    }
}
