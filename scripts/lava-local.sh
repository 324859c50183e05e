#!/usr/bin/env bash
# A private LAVA dispatcher for running convtest's LAVA jobs on this machine
# (`convtest lava-job --device-type qemu`, tests/lava.rs), installed without
# touching the system: Debian 12's own lava-dispatcher 2023.01 is not
# installed with apt (it pulls systemd-sysv, udev and ~150 packages into the
# machine CI runs on) but downloaded through a private apt state and unpacked
# under one directory, with its Python dependencies in a venv from PyPI.
#
#   DIR/apt/     private apt state (bookworm main, amd64 + arm64); the
#                system's sources and lists are never read or written
#   DIR/debs/    lava-common, lava-dispatcher(-host), lava-server (only for its
#                device-type templates), cpio (LAVA repacks ramdisks with it),
#                busybox-static:arm64 (the test ramdisk's userland)
#   DIR/root/    the .debs unpacked (dpkg-deb -x); nothing of it is on a
#                system path
#   DIR/venv/    python3 -m venv with what lava-run imports on the qemu path
#   DIR/bin/     lava-run (the dispatcher, run from root/ and venv/, its job
#                scratch in DIR/work), lava-device (renders a device
#                dictionary with a job's context, as lava-server does)
#   DIR/rootfs-arm64.cpio.gz   a busybox ramdisk: the lab's root filesystem
#                for the qemu device type (/init mounts /proc, /sys, /dev and
#                starts a shell on the console, as a lab's ramdisk does)
#
# DIR is $CONVTEST_LAVA_DIR, default /var/cache/convtest/lava. Idempotent:
# each step is skipped when its result is there. Needs root (lava-run itself
# refuses to run as anyone else). Takes ~30 s and ~100 MB the first time.
set -euo pipefail
dir=${CONVTEST_LAVA_DIR:-/var/cache/convtest/lava}
log() { printf 'lava-local: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "lava-run runs as root only: run 'sudo $0'"
    exit 2
fi
for tool in apt-get dpkg-deb gzip; do
    command -v "$tool" >/dev/null || { log "$tool is missing (a Debian host has it)"; exit 2; }
done
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
"$python" -c 'import venv, ensurepip' 2>/dev/null || {
    log "$python has no venv/ensurepip: apt-get install python3-venv"
    exit 2
}
mkdir -p "$dir"/{apt/lists/partial,apt/cache/partial,debs,root,bin}

# --- Debian packages through a private apt state -----------------------------
apt_opts=(
    -o "Dir::Etc::SourceList=$dir/apt/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/apt/lists"
    -o "Dir::Cache=$dir/apt/cache"
    -o "Dir::Cache::Archives=$dir/apt/cache"
    -o "APT::Architectures::=amd64"
    -o "APT::Architectures::=arm64"
    -o Acquire::Languages=none
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o APT::Sandbox::User=root
)
echo 'deb http://deb.debian.org/debian bookworm main' >"$dir/apt/sources.list"
# Pinned to bookworm's 2023.01: the version this job format was checked against.
lava_version=2023.01-2
packages=(
    "lava-common=$lava_version" "lava-dispatcher=$lava_version" "lava-dispatcher-host=$lava_version"
    "lava-server=$lava_version"
    cpio:amd64 busybox-static:arm64
)
have_deb() { compgen -G "$dir/debs/${1%%[:=]*}_*.deb" >/dev/null; }
missing=()
for p in "${packages[@]}"; do have_deb "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get update (private state in $dir/apt: bookworm main)"
    apt-get "${apt_opts[@]}" -q update >/dev/null
    log "downloading ${missing[*]}"
    (cd "$dir/debs" && apt-get "${apt_opts[@]}" -q download "${missing[@]}" >/dev/null)
fi
if [ ! -x "$dir/root/usr/bin/lava-run" ] || [ ! -x "$dir/root/bin/cpio" ] || [ ! -d "$dir/root/usr/lib/python3/dist-packages/lava_dispatcher_host" ]; then
    log "unpacking into $dir/root"
    for deb in "$dir"/debs/lava-*.deb "$dir"/debs/cpio_*.deb; do
        dpkg-deb -x "$deb" "$dir/root"
    done
fi

# --- Python dependencies of lava-run on the qemu path ------------------------
site_ok() {
    [ -x "$dir/venv/bin/python" ] && PYTHONPATH="$dir/root/usr/lib/python3/dist-packages" \
        "$dir/venv/bin/python" -c 'import lava_dispatcher.parser, lava_dispatcher.actions.boot.qemu' 2>/dev/null
}
if ! site_ok; then
    log "venv $dir/venv (PyPI: lava-dispatcher's Python dependencies)"
    "$python" -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q --disable-pip-version-check \
        pexpect jinja2 pyyaml requests configobj voluptuous setproctitle \
        python-magic netifaces pytz pyudev aiohttp
    # libguestfs' binding is not on PyPI, and lava_dispatcher imports it when
    # any deploy action loads; only disk-image overlays (ext4 and the like)
    # call it. convtest's jobs overlay a cpio ramdisk, which LAVA repacks
    # with cpio. A job that does reach it fails naming why.
    site=$("$dir/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    cat >"$site/guestfs.py" <<'PY'
"""Stand-in for libguestfs' Python binding (python3-guestfs, not on PyPI) in
convtest's private LAVA: lava_dispatcher imports it at load time, only
disk-image overlays use it, and convtest's jobs deploy a cpio ramdisk."""


class GuestFS:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            "libguestfs is not in convtest's private LAVA (scripts/lava-local.sh): "
            "this job overlays a disk image; deploy a cpio ramdisk instead"
        )
PY
    site_ok || { log "lava_dispatcher still does not import from the venv"; exit 1; }
fi

# --- lava-run and lava-device -------------------------------------------------
# A job's scratch files go to /var/lib/lava/dispatcher/tmp/<prefix><job id>;
# the dispatcher's `prefix` joined as an absolute path keeps them under DIR.
mkdir -p "$dir/work"
printf '# lava-run --dispatcher: job scratch under %s\nprefix: %s/\n' "$dir/work" "$dir/work" \
    >"$dir/dispatcher.yaml"
cat >"$dir/bin/lava-run" <<SH
#!/bin/sh
# lava-run (lava-dispatcher $lava_version) from $dir, installed by scripts/lava-local.sh.
PATH="$dir/root/bin:$dir/root/usr/bin:\$PATH" \\
PYTHONPATH="$dir/root/usr/lib/python3/dist-packages" \\
    exec "$dir/venv/bin/python" "$dir/root/usr/bin/lava-run" --dispatcher "$dir/dispatcher.yaml" "\$@"
SH
cat >"$dir/bin/lava-device.py" <<'PY'
"""Renders a device dictionary as lava-server does before it hands a job to
lava-run: `{% extends '<device type>.jinja2' %}` plus the device's own
variables, rendered with the job's `context:` (jinja2 sandbox, trim_blocks)
against lava-server's device-type templates."""
import argparse
import sys

import jinja2.sandbox
import yaml

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--templates", required=True, help="lava-server's device-types dir")
p.add_argument("--device-type", required=True)
p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
               help="a device dictionary variable (a YAML value)")
p.add_argument("job", help="the job definition (its context: is applied)")
a = p.parse_args()
with open(a.job, encoding="utf-8") as f:
    context = (yaml.safe_load(f) or {}).get("context") or {}
lines = ["{%% extends '%s.jinja2' %%}" % a.device_type]
for kv in a.set:
    key, _, value = kv.partition("=")
    lines.append("{%% set %s = %s %%}" % (key, repr(yaml.safe_load(value))))
env = jinja2.sandbox.SandboxedEnvironment(
    loader=jinja2.FileSystemLoader([a.templates]), autoescape=False, trim_blocks=True
)
rendered = env.from_string("\n".join(lines) + "\n").render(**context)
yaml.safe_load(rendered)  # a template error shows here, not in lava-run
sys.stdout.write(rendered)
PY
cat >"$dir/bin/lava-device" <<SH
#!/bin/sh
# lava-device --device-type TYPE [--set KEY=VALUE ...] JOB.yaml > device.yaml
exec "$dir/venv/bin/python" "$dir/bin/lava-device.py" \\
    --templates "$dir/root/usr/share/lava-server/device-types" "\$@"
SH
chmod +x "$dir/bin/lava-run" "$dir/bin/lava-device"

# --- the ramdisk: busybox and an /init that gives LAVA a shell ----------------
if [ ! -s "$dir/rootfs-arm64.cpio.gz" ]; then
    log "building $dir/rootfs-arm64.cpio.gz (busybox-static:arm64)"
    tree=$(mktemp -d "$dir/rootfs.XXXXXX")
    trap 'rm -rf "$tree"' EXIT
    dpkg-deb -x "$(compgen -G "$dir/debs/busybox-static_*_arm64.deb")" "$tree"
    rm -rf "$tree/usr/share"
    mkdir -p "$tree"/{proc,sys,dev,tmp,root,etc,sbin,usr/bin,usr/sbin}
    cat >"$tree/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname board
echo "board ramdisk: $(uname -r) $(cat /proc/cmdline)"
cd /root
exec setsid cttyhack sh -l
INIT
    chmod 755 "$tree/init"
    printf 'export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root\nPS1="board:\\w# "\n' >"$tree/etc/profile"
    (cd "$tree" && find . | LC_ALL=C sort | "$dir/root/bin/cpio" --quiet -o -H newc -R 0:0 | gzip -9n) \
        >"$dir/rootfs-arm64.cpio.gz.tmp"
    mv "$dir/rootfs-arm64.cpio.gz.tmp" "$dir/rootfs-arm64.cpio.gz"
fi

"$dir/bin/lava-run" --help >/dev/null
log "ready: $dir/bin/lava-run (lava-dispatcher $lava_version), $dir/bin/lava-device, $dir/rootfs-arm64.cpio.gz ($(du -sh "$dir" | cut -f1))"
