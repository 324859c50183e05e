#!/usr/bin/env bash
# Installs what convtest needs on Debian 12 (bookworm) and nothing else:
#   - the pinned Rust toolchain from rust-toolchain.toml (targets, rust-src, llvm-tools);
#   - the tools `--backend nested --l1-swprot` needs to rebuild kvm.ko once (bookworm's own
#     gcc, make, bison, flex, bc, libelf-dev, libssl-dev and dwarves for pahole);
#   - QEMU 10 (qemu-system-x86, qemu-system-arm) and OVMF from bookworm-backports.
# bookworm's own QEMU 7.2 conflicts with the preinstalled qemu-utils 10, and the
# system's apt sources must never gain another suite (it once upgraded libc), so
# backports is read through a private sources list and state directory.
# Idempotent: anything already present is left alone. Needs root for apt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

log() { printf 'install-deps: %s\n' "$*" >&2; }

log "rust toolchain from rust-toolchain.toml"
rustup toolchain install >/dev/null
rustup show active-toolchain >&2

# Kernel-module build tools from the system's own (bookworm) sources. pahole
# (dwarves) is not optional: without it the rebuilt config loses BTF and
# SCHED_CLASS_EXT and the module would not match the running kernel.
kbuild_pkgs=(gcc make bison flex bc libelf-dev libssl-dev dwarves xz-utils binutils)
missing=()
for p in "${kbuild_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    log "kvm.ko build tools already present"
elif [ "$(id -u)" -ne 0 ]; then
    log "missing ${missing[*]} (for --l1-swprot) and this is not root: run 'sudo $0'"
    exit 2
else
    log "installing ${missing[*]} (bookworm, for --l1-swprot)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -q -y install --no-install-recommends "${missing[@]}" >/dev/null; then
        apt-get -q update >/dev/null
        apt-get -q -y install --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

have_qemu() {
    for b in qemu-system-x86_64 qemu-system-aarch64; do
        command -v "$b" >/dev/null || return 1
        "$b" --version | grep -q 'version 1[0-9]\.' || return 1
    done
    [ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] && [ -f /usr/share/OVMF/OVMF_VARS_4M.fd ]
}

if have_qemu; then
    log "QEMU $(qemu-system-x86_64 --version | head -n1 | awk '{print $4}') and OVMF already present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "QEMU 10 / OVMF missing and this is not root: run 'sudo $0'"
    exit 2
fi

state=${CONVTEST_APT_STATE:-/var/cache/convtest-apt}
mkdir -p "$state/lists/partial" "$state/archives/partial"
cat >"$state/sources.list" <<'SOURCES'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
SOURCES
apt_private=(
    -o "Dir::Etc::SourceList=$state/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$state/lists"
    -o "Dir::Cache::Archives=$state/archives"
)
log "apt-get update (private sources: bookworm + bookworm-backports)"
apt-get "${apt_private[@]}" -q update >/dev/null
log "installing qemu-system-x86 qemu-system-arm ovmf from bookworm-backports"
DEBIAN_FRONTEND=noninteractive apt-get "${apt_private[@]}" -q -y install \
    -t bookworm-backports --no-install-recommends qemu-system-x86 qemu-system-arm ovmf >/dev/null
have_qemu || { log "QEMU 10 still missing after install"; exit 1; }
log "installed $(qemu-system-x86_64 --version | head -n1)"
