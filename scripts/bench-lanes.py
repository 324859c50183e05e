#!/usr/bin/env python3
"""How long the lanes take: the table of issue 25, measured.

Runs, each --runs times (default 3), and prints medians:

  pKVM        convtest run --arch aarch64 --backend nested
              whole process, the L1's boot (l1.boot_ms), the inner run
              (l1.run_ms), the console's exits (UART and word console)
  pKVM console  the same lane with only the tests that ask the host nothing
              (boot, heap, mem, exc, clock): the console's cost per line as
              the guest measured it (its `# console:` line) — a line that
              asks the host would also count the host's answer
  pKVM console uart  the same with the word console refused (--vmm-console
              uart): the 16550's cost per line, the fallback path
  swprot      convtest run --backend nested --l1-swprot
              whole process, L1 boot, inner run
  first line  convtest run --backend qemu [--arch aarch64] --tests 'boot.*'
              timing.first_line_ms: QEMU's start to the guest's first KTAP
              line (the selection does not change it: the line comes first)
  cargo test  (only with --cargo-test) `cargo test` in a fresh clone of
              HEAD, with its own empty target/ and the warm nested cache

Every run holds /tmp/convtest-vm.lock while it runs (others share the
machine), and the lock wait is not timed. The load average at each run's
start is printed beside the figures: compare tables taken in one sitting.

    scripts/bench-lanes.py [--runs N] [--convtest PATH] [--cargo-test]
                           [--only pkvm,pkvm-console,pkvm-console-uart,swprot,first-x86,first-arm64]
                           [--json PATH]

Exit 0 when every run passed; 1 otherwise (the table says which).
"""

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = "/tmp/convtest-vm.lock"

LANES = {
    "pkvm": ["--arch", "aarch64", "--backend", "nested"],
    "pkvm-console": [
        "--arch", "aarch64", "--backend", "nested", "--tests", "boot.*,heap.*,mem.*,exc.*,clock.*",
    ],
    "pkvm-console-uart": [
        "--arch", "aarch64", "--backend", "nested", "--tests", "boot.*,heap.*,mem.*,exc.*,clock.*",
        "--vmm-console", "uart",
    ],
    "swprot": ["--arch", "x86_64", "--backend", "nested", "--l1-swprot"],
    "first-x86": ["--arch", "x86_64", "--backend", "qemu", "--tests", "boot.*"],
    "first-arm64": ["--arch", "aarch64", "--backend", "qemu", "--tests", "boot.*"],
}


class Locked:
    """Holds the shared VM lock; the wait for it is not part of a figure."""

    def __enter__(self):
        self.fd = open(LOCK, "a")
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.fd.close()


def console_line(ktap_path):
    """The guest's `# console: k=v ...` words, or {} (older guests)."""
    try:
        with open(ktap_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("# console:"):
                    return dict(
                        w.split("=", 1) for w in line[len("# console:"):].split() if "=" in w
                    )
    except OSError:
        pass
    return {}


def one_run(convtest, lane, scratch):
    report = os.path.join(scratch, f"{lane}.json")
    ktap = os.path.join(scratch, f"{lane}.ktap")
    argv = [convtest, "run", *LANES[lane], "--quiet", "--json", report, "--ktap", ktap]
    with Locked():
        load = os.getloadavg()[0]
        t = time.monotonic()
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - t
    try:
        with open(report, encoding="utf-8") as f:
            j = json.load(f)
    except (OSError, ValueError):
        j = {}
    l1 = j.get("l1") or {}
    vmm = j.get("vmm") or {}
    con = console_line(ktap)
    num = lambda d, k: float(d[k]) if str(d.get(k, "")).replace(".", "", 1).isdigit() else None
    r = {
        "lane": lane,
        "ok": p.returncode == 0 and j.get("verdict") == "pass",
        "exit": p.returncode,
        "load": load,
        "wall_s": wall,
        "first_line_ms": (j.get("timing") or {}).get("first_line_ms"),
        "l1_boot_s": (num(l1, "boot_ms") or 0) / 1000 if "boot_ms" in l1 else None,
        "inner_run_s": (num(l1, "run_ms") or 0) / 1000 if "run_ms" in l1 else None,
        "console_exits": (num(vmm, "uart_exits") or 0) + (num(vmm, "word_console_exits") or 0)
        if "uart_exits" in vmm else None,
        "console_path": con.get("path"),
        "console_lines": num(con, "lines"),
        "console_bytes": num(con, "bytes"),
        "console_ms": (num(con, "ns") or 0) / 1e6 if "ns" in con else None,
    }
    if r["console_ms"] is not None and r["console_lines"]:
        r["console_us_per_line"] = r["console_ms"] * 1000 / r["console_lines"]
    if not r["ok"]:
        r["tail"] = (p.stdout + p.stderr).strip().splitlines()[-5:]
    return r


def cargo_test_fresh_clone():
    """`cargo test` in a fresh clone of HEAD (its own empty target/)."""
    with tempfile.TemporaryDirectory(prefix="convtest-clone-") as d:
        clone = os.path.join(d, "convtest")
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", ROOT, clone], check=True)
        env = dict(os.environ)
        env.pop("CARGO_TARGET_DIR", None)
        with Locked():
            load = os.getloadavg()[0]
            t = time.monotonic()
            p = subprocess.run(
                ["cargo", "test"], cwd=clone, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            wall = time.monotonic() - t
        log = os.path.join(tempfile.gettempdir(), "convtest-bench-lanes-cargo-test.log")
        with open(log, "w") as f:
            f.write(p.stdout)
        # Each test binary's "Running …" line and its "finished in N s".
        binaries, current = [], None
        for line in p.stdout.splitlines():
            line = line.strip()
            if line.startswith("Running ") or line.startswith("Doc-tests "):
                current = line.split("(")[0].replace("Running ", "").strip()
            elif line.startswith("test result:") and "finished in " in line and current:
                secs = float(line.rsplit("finished in ", 1)[1].rstrip("s"))
                binaries.append((current, secs))
                current = None
        return {"lane": "cargo-test", "ok": p.returncode == 0, "exit": p.returncode,
                "load": load, "wall_s": wall, "binaries": binaries, "log": log,
                "tail": [] if p.returncode == 0 else p.stdout.strip().splitlines()[-10:]}


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, unit, digits=1):
    if v is None:
        return "-"
    return f"{v:.{digits}f} {unit}"


def table(results):
    by = {}
    for r in results:
        by.setdefault(r["lane"], []).append(r)
    out = ["| what | median | each run | load (1 min) | target |", "|---|---:|---|---:|---|"]

    def row(name, lane, key, unit, target, digits=1, scale=1.0):
        rows = by.get(lane, [])
        if not rows:
            return
        m = med(rows, key)
        each = " ".join(
            "-" if r.get(key) is None else f"{r[key] * scale:.{digits}f}" for r in rows
        )
        fails = sum(1 for r in rows if not r["ok"])
        note = f" ({fails} failed)" if fails else ""
        load = statistics.median(r["load"] for r in rows)
        out.append(
            f"| {name} | {fmt(None if m is None else m * scale, unit, digits)}{note} | {each} "
            f"| {load:.1f} | {target} |"
        )

    row("pKVM `run --arch aarch64 --backend nested`", "pkvm", "wall_s", "s", "≤ 8 s", 2)
    row("  L1 boot", "pkvm", "l1_boot_s", "s", "", 2)
    row("  inner run", "pkvm", "inner_run_s", "s", "", 2)
    row("  console exits", "pkvm", "console_exits", "", "", 0)
    row("pKVM console (boot, heap, mem, exc, clock)", "pkvm-console", "wall_s", "s", "", 2)
    row("  console exits", "pkvm-console", "console_exits", "", "", 0)
    row("  console lines", "pkvm-console", "console_lines", "", "", 0)
    row("  console time (guest)", "pkvm-console", "console_ms", "ms", "", 0)
    row("  console cost per line (guest)", "pkvm-console", "console_us_per_line", "µs", "", 0)
    row("pKVM console, 16550 (word console refused)", "pkvm-console-uart", "wall_s", "s", "", 2)
    row("  console exits", "pkvm-console-uart", "console_exits", "", "", 0)
    row("  console lines", "pkvm-console-uart", "console_lines", "", "", 0)
    row("  console time (guest)", "pkvm-console-uart", "console_ms", "ms", "", 0)
    row("  console cost per line (guest)", "pkvm-console-uart", "console_us_per_line", "µs", "", 0)
    row("swprot `run --backend nested --l1-swprot`", "swprot", "wall_s", "s", "≤ 6 s", 2)
    row("  L1 boot", "swprot", "l1_boot_s", "s", "", 2)
    row("  inner run", "swprot", "inner_run_s", "s", "", 2)
    row("first KTAP line, x86 PVH microvm (TCG)", "first-x86", "first_line_ms", "ms", "≤ 40 ms", 0)
    row("first KTAP line, arm64 virt (TCG)", "first-arm64", "first_line_ms", "ms", "≤ 40 ms", 0)
    row("`cargo test`, fresh clone, warm cache", "cargo-test", "wall_s", "s", "≤ 360 s", 0)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--convtest", help="the convtest binary (default: build this checkout's)")
    ap.add_argument("--only", default=",".join(LANES), help="lanes: " + ",".join(LANES))
    ap.add_argument("--cargo-test", action="store_true", help="also `cargo test` in a fresh clone")
    ap.add_argument("--json", help="write every run's figures here")
    a = ap.parse_args()
    lanes = [x for x in a.only.split(",") if x]
    for x in lanes:
        if x not in LANES:
            ap.error(f"unknown lane {x!r}; lanes: {', '.join(LANES)}")
    convtest = a.convtest
    if not convtest:
        subprocess.run(["cargo", "build", "--quiet", "-p", "convtest"], cwd=ROOT, check=True)
        convtest = os.path.join(ROOT, "target", "debug", "convtest")
    results = []
    with tempfile.TemporaryDirectory(prefix="convtest-bench-lanes-") as scratch:
        for lane in lanes:
            # Builds the guest and the L1 /init, fills caches: not counted.
            print(f"bench-lanes: {lane}: warm-up run", file=sys.stderr, flush=True)
            one_run(convtest, lane, scratch)
            for i in range(a.runs):
                r = one_run(convtest, lane, scratch)
                print(
                    f"bench-lanes: {lane} {i + 1}/{a.runs}: {r['wall_s']:.2f} s"
                    f" load {r['load']:.1f}{'' if r['ok'] else ' FAILED'}",
                    file=sys.stderr, flush=True,
                )
                results.append(r)
    if a.cargo_test:
        print("bench-lanes: cargo test in a fresh clone ...", file=sys.stderr, flush=True)
        results.append(cargo_test_fresh_clone())
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          stdout=subprocess.PIPE, text=True).stdout.strip()
    print(f"convtest {head} ({convtest}), {os.cpu_count()} CPUs, medians of {a.runs} run(s)")
    print(table(results))
    for r in results:
        if r.get("binaries"):
            tested = sum(t for _, t in r["binaries"])
            print(f"\n`cargo test` {r['wall_s']:.0f} s: {tested:.0f} s in test binaries, "
                  f"{r['wall_s'] - tested:.0f} s building and starting them (log: {r['log']})")
            for name, t in sorted(r["binaries"], key=lambda b: -b[1]):
                if t >= 1:
                    print(f"  {t:7.1f} s  {name}")
    for r in results:
        if not r["ok"]:
            print(f"FAILED {r['lane']} (exit {r['exit']}): " + " / ".join(r.get("tail", [])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"head": head, "runs": results}, f, indent=1)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
