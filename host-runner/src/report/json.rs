//! The JSON report: a stable contract (fields are only ever added). Field
//! names are spelled out here on purpose; tests pin them.

use super::{Conversions, LaneEvidence, RunRecord};
use crate::ktap::{Bench, TestResult};
use crate::verdict::Verdict;
use serde::Serialize;

#[derive(Serialize)]
struct Report<'a> {
    verdict: Verdict,
    reason: &'a str,
    arch: &'a str,
    backend: &'a str,
    accel: &'a str,
    boot: &'a str,
    machine: &'a str,
    /// The lane's name, as `convtest mutants` / `convtest bench` spell it.
    lane: &'a str,
    plan: &'a str,
    guest: Guest<'a>,
    tests: &'a [TestResult],
    /// One entry per boot (a run without `--reboots` has one).
    boots: Vec<BootEntry<'a>>,
    /// What the host-checked claims rest on, for the whole run.
    evidence: LaneEvidence,
    /// Whether any conversion test ran, and if not why.
    conversions: Conversions,
    bench: &'a [Bench],
    timing: Timing,
    qemu: Qemu<'a>,
    /// convtest's own VMM facts (vmm/nested backends), `{}` otherwise.
    vmm: Facts<'a>,
    /// The KVM capabilities the own VMM probed (from its `cap.<NAME>=<number>:<value>` facts).
    caps: Vec<Cap>,
    /// The nested lane's L1 facts, `{}` otherwise.
    l1: Facts<'a>,
    exit_code: Option<i32>,
}

/// `k=v` facts as a flat JSON object of strings, in arrival order.
struct Facts<'a>(&'a [(String, String)]);

impl Serialize for Facts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize, Debug, PartialEq, Eq)]
struct Cap {
    number: u32,
    name: String,
    value: i64,
    /// Where KVM was asked: `kvm` (/dev/kvm) or `vm` (the VM's fd).
    fd: &'static str,
}

/// The VMM's `cap.<NAME>=<number>:<value>@<fd>` facts as objects;
/// malformed ones are skipped.
fn caps(facts: &[(String, String)]) -> Vec<Cap> {
    use convtest_proto::wire::{AskedOn, CapFact};
    facts
        .iter()
        .filter_map(|(k, v)| CapFact::parse(k, v))
        .map(|c| Cap {
            number: c.number,
            name: c.name.to_string(),
            value: c.value,
            fd: match c.on {
                AskedOn::Kvm => "kvm",
                AskedOn::Vm => "vm",
            },
        })
        .collect()
}

/// One boot of the run.
#[derive(Serialize)]
struct BootEntry<'a> {
    /// The index the guest gave itself (header `boot=`), `null` if none.
    index: Option<u32>,
    /// Where that index came from: `first`, `record` (the guest's own boot
    /// record survived the reset), `host` (it did not: the VMM's `boot=`).
    from: Option<&'a str>,
    pass: usize,
    fail: usize,
    skip: usize,
    /// The guest printed its plan-complete marker.
    done: bool,
    /// This boot's reset-to-private as the guest timed it.
    reset: Option<GuestReset>,
    /// The own VMM's reset that started this boot (`reset_*` facts), `{}`
    /// for the first boot and for QEMU.
    vmm_reset: Facts<'a>,
}

/// The guest's `# reset-to-private: ranges=… pages=… cycles=… ns=… calls=…
/// unknown=… method=…` line.
#[derive(Serialize)]
struct GuestReset {
    method: Option<String>,
    calls: Option<u64>,
    pages: Option<u64>,
    ranges: Option<u64>,
    unknown: Option<u64>,
    cycles: Option<u64>,
    ns: Option<u64>,
    /// The line as printed (a failed reset says why here).
    raw: String,
}

impl GuestReset {
    fn parse(text: &str) -> GuestReset {
        let kv: Vec<(&str, &str)> = text
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let num = |k: &str| get(k).and_then(|v| v.parse().ok());
        GuestReset {
            method: get("method").map(str::to_string),
            calls: num("calls"),
            pages: num("pages"),
            ranges: num("ranges"),
            unknown: num("unknown"),
            cycles: num("cycles"),
            ns: num("ns"),
            raw: text.to_string(),
        }
    }
}

fn boots(log: &crate::ktap::Log) -> Vec<BootEntry<'_>> {
    log.boot_logs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let c = crate::ktap::Counts::of(log.boot_tests(i));
            BootEntry {
                index: b.index(),
                from: b.header_value("boot_from"),
                pass: c.pass,
                fail: c.fail,
                skip: c.skip,
                done: b.done.is_some(),
                reset: b.reset.as_deref().map(GuestReset::parse),
                vmm_reset: Facts(
                    b.index()
                        .filter(|&n| n > 0)
                        .and_then(|n| log.vmm_reset(n))
                        .unwrap_or(&[]),
                ),
            }
        })
        .collect()
}

/// From the guest's header line; `null` when the guest never printed it.
#[derive(Serialize)]
struct Guest<'a> {
    hypervisor: Option<&'a str>,
    converter: Option<&'a str>,
    granule: Option<u64>,
    entry: Option<&'a str>,
    /// CPUs the guest brought up and runs jobs on (header `cpus=`).
    cpus: Option<u32>,
}

#[derive(Serialize)]
struct Timing {
    first_line_ms: Option<u64>,
    total_ms: u64,
    build_ms: u64,
}

#[derive(Serialize)]
struct Qemu<'a> {
    command: Option<&'a str>,
}

pub fn render(r: &RunRecord) -> String {
    let log = &r.log;
    let report = Report {
        verdict: r.judgement.verdict,
        reason: &r.judgement.reason,
        arch: &r.arch,
        backend: &r.backend,
        accel: &r.accel,
        boot: &r.boot,
        machine: &r.machine,
        lane: &r.lane,
        plan: &r.plan,
        guest: Guest {
            hypervisor: log.header_value("hypervisor"),
            converter: log.header_value("converter"),
            granule: log.header_value("granule").and_then(|g| g.parse().ok()),
            entry: log.header_value("entry"),
            cpus: log.header_value("cpus").and_then(|c| c.parse().ok()),
        },
        tests: &log.tests,
        boots: boots(log),
        evidence: LaneEvidence::of(log),
        conversions: Conversions::of(log),
        bench: &log.bench,
        vmm: Facts(&log.vmm),
        caps: caps(&log.vmm),
        l1: Facts(&log.l1),
        timing: Timing {
            first_line_ms: r.timing.first_line.map(|d| d.as_millis() as u64),
            total_ms: r.timing.total.as_millis() as u64,
            build_ms: r.timing.build.as_millis() as u64,
        },
        qemu: Qemu {
            command: r.command.as_deref(),
        },
        exit_code: r.exit_code,
    };
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample as record;
    use serde_json::Value;

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn field_names_are_the_contract() {
        let text = include_str!("../../tests/fixtures/x86_pvh_pass.ktap").to_string()
            + "# bench: op=share pages=512 iters=200 ns_p50=1 ns_p99=2 cycles_p50=3\n"
            + "# convtest-vmm: memory=sw-protected content=zero cap.KVM_CAP_EXIT_HYPERCALL=201:0x1000@vm cap.KVM_CAP_VM_TYPES=235:-0x19@kvm\n# convtest-l1: kernel=7.3.4+deb13-amd64\n";
        let v: Value =
            serde_json::from_str(&render(&record(&text, Verdict::Pass, ""))).expect("valid JSON");
        assert_eq!(
            keys(&v),
            [
                "accel",
                "arch",
                "backend",
                "bench",
                "boot",
                "boots",
                "caps",
                "conversions",
                "evidence",
                "exit_code",
                "guest",
                "l1",
                "lane",
                "machine",
                "plan",
                "qemu",
                "reason",
                "tests",
                "timing",
                "verdict",
                "vmm"
            ]
        );
        assert_eq!(
            keys(&v["guest"]),
            ["converter", "cpus", "entry", "granule", "hypervisor"]
        );
        assert_eq!(
            keys(&v["timing"]),
            ["build_ms", "first_line_ms", "total_ms"]
        );
        assert_eq!(
            keys(&v["tests"][0]),
            [
                "boot",
                "diagnostics",
                "evidence",
                "name",
                "reason",
                "result"
            ]
        );
        assert_eq!(
            keys(&v["bench"][0]),
            [
                "cycles_min",
                "cycles_p50",
                "cycles_p99",
                "iters",
                "lane",
                "ns_min",
                "ns_p50",
                "ns_p99",
                "op",
                "pages",
                "size_bytes"
            ]
        );
        assert_eq!(v["verdict"], "pass");
        assert_eq!(v["guest"]["hypervisor"], "TCGTCGTCGTCG");
        assert_eq!(v["guest"]["converter"], "none");
        assert_eq!(v["guest"]["granule"], 4096);
        assert_eq!(v["guest"]["entry"], "pvh");
        assert_eq!(v["timing"]["first_line_ms"], 412);
        assert_eq!(v["qemu"]["command"], "qemu-system-x86_64 -M microvm");
        assert_eq!(v["exit_code"], 33);
        assert_eq!(v["vmm"]["memory"], "sw-protected");
        assert_eq!(v["vmm"]["content"], "zero");
        assert_eq!(v["l1"]["kernel"], "7.3.4+deb13-amd64");
        assert_eq!(v["tests"].as_array().map(Vec::len), Some(17));
        let conv = &v["tests"][16];
        assert_eq!(
            (&conv["name"], &conv["result"]),
            (&Value::from("conv.flipflop"), &Value::from("skip"))
        );
        assert_eq!(
            v["tests"][3]["diagnostics"][0],
            "rounds=1000 live_max=64 seed=0x5eed"
        );
        assert_eq!(v["bench"][0]["pages"], 512);
        assert_eq!(v["evidence"]["level"], "none");
        assert_eq!(
            v["caps"],
            serde_json::json!([
                {"number": 201, "name": "KVM_CAP_EXIT_HYPERCALL", "value": 4096, "fd": "vm"},
                {"number": 235, "name": "KVM_CAP_VM_TYPES", "value": -25, "fd": "kvm"}
            ])
        );
        assert!(v["tests"][0]["evidence"].is_null());
        assert_eq!(v["boots"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            keys(&v["boots"][0]),
            [
                "done",
                "fail",
                "from",
                "index",
                "pass",
                "reset",
                "skip",
                "vmm_reset"
            ]
        );
    }

    #[test]
    fn boots_carry_the_guest_reset_and_the_vmm_reset_that_started_them() {
        let boot = |i: u32| {
            format!(
                "KTAP version 1\n# convtest: arch=x86_64 converter=kvm-map-gpa-range boot={i} boot_from=record\n\
                 # reset-to-private: ranges=2 pages=65000 cycles=10 ns=4000 calls=2 unknown=0 method=map-gpa-range\n\
                 1..0\n# convtest-done: pass=0 fail=0 skip=0\n"
            )
        };
        let text = boot(0)
            + "# convtest-vmm: reset_boot=1 reset_policy=private reset_applied=yes reset_ns=900 reset_pages=12\n"
            + &boot(1);
        let v: Value =
            serde_json::from_str(&render(&record(&text, Verdict::Pass, ""))).expect("valid JSON");
        let b = &v["boots"];
        assert_eq!(b.as_array().map(Vec::len), Some(2));
        assert_eq!(
            (&b[1]["index"], &b[1]["from"]),
            (&Value::from(1), &Value::from("record"))
        );
        assert_eq!(b[1]["reset"]["calls"], 2);
        assert_eq!(b[1]["reset"]["ns"], 4000);
        assert_eq!(b[1]["reset"]["method"], "map-gpa-range");
        assert_eq!(b[1]["vmm_reset"]["reset_policy"], "private");
        assert_eq!(b[1]["vmm_reset"]["reset_ns"], "900");
        assert_eq!(b[0]["vmm_reset"], serde_json::json!({}));
    }

    #[test]
    fn error_before_boot_has_nulls_not_missing_fields() {
        let mut r = record("", Verdict::Error, "qemu-system-x86_64 not found");
        r.timing.first_line = None;
        r.command = None;
        r.exit_code = None;
        let v: Value = serde_json::from_str(&render(&r)).expect("valid JSON");
        assert_eq!(v["verdict"], "error");
        assert_eq!(v["reason"], "qemu-system-x86_64 not found");
        assert!(v["guest"]["hypervisor"].is_null() && v["timing"]["first_line_ms"].is_null());
        assert!(v["qemu"]["command"].is_null() && v["exit_code"].is_null());
        assert_eq!(v["tests"], Value::Array(Vec::new()));
    }
}
