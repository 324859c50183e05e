//! The long help texts: what `convtest --help` and each subcommand's
//! `--help` print around clap's option list.

pub(super) const ABOUT: &str =
    "Boot the convtest guest kernel and judge its memory-conversion tests";

pub(super) const LONG_ABOUT: &str = "\
convtest builds the no_std convtest guest for x86_64 or aarch64, boots it under a VMM, streams its \
serial console, parses the KTAP the guest prints and turns it into a verdict, a summary table and \
optional JSON / JUnit / KTAP files.

A run passes only when the guest printed its plan-complete marker, no test failed, the counts in \
the marker match the results printed and every selected test was reported exactly once. A crash, \
a hang (see --timeout) or a missing marker is a failure, never a pass; so is a conversion test \
skipped by a guest that found a converter (unless the plan turned its feature off), and a VMM that \
offered conversions to a guest that found none. Every host check names its evidence: enforced by \
the kernel or hypervisor, or VMM bookkeeping only (shown apart, never as a plain PASS).

Exit status: 0 the plan completed and no test failed; 1 a test failed, the guest crashed or hung; \
2 convtest could not run (bad arguments, missing QEMU or OVMF: the message names the install command).";

pub(super) const EXAMPLES: &str = "\
Examples:
  convtest run                                  the strongest lane this machine has (--backend auto)
  convtest run --backend qemu                   boot-only lane under QEMU (fastest; conv.* SKIP)
  convtest mutants                              break each nested lane on purpose: which tests notice
  convtest matrix                               the default suite on each Debian L1 kernel
  convtest bundle --arch aarch64 --out kit.tar.gz --check nested
                                                a board kit (no toolchain needed), tried in the pKVM L1
  convtest run --tests 'mem.*,boot.ram_map'     only some tests (names: convtest list)
  convtest run --boot uefi --json out.json      x86 UEFI disk image under OVMF, JSON report
  convtest run --arch aarch64 --machine virt-el2 --junit junit.xml
  convtest run --inject hang --timeout 10       prove a hang ends as a failure
  convtest list                                 every test name with what it checks";

pub(super) const RUN_AFTER: &str = "\
Lanes (what each one proves):
  x86_64 --boot pvh --machine microvm   PVH entry, long mode, COM1, isa-debug-exit (default, fastest)
  x86_64 --boot pvh --machine pc        the same kernel on a full PC chipset
  x86_64 --boot bios                    bootloader_api entry from a BIOS disk image (first build ~2 min)
  x86_64 --boot uefi                    the same from OVMF
  aarch64 --machine virt                arm64 Image at EL1: DTB parsing, PL011, PSCI over hvc
  aarch64 --machine virt-el2            entry at EL2 (virtualization=on), drop to EL1, PSCI over smc
  --backend vmm                         convtest's own KVM VMM on /dev/kvm: real conversions
                                        (x86 MAP_GPA_RANGE, arm64 pKVM protected VM), host checks
  --backend nested                      the same VMM inside a Debian L1 under QEMU TCG with real
                                        KVM (x86) or pKVM (arm64); first run downloads the kernel
  --backend nested --l1-swprot          x86 with KVM_SW_PROTECTED_VM: guest_memfd private memory
  --backend nested --l1 debian-6.1      another Debian kernel as L1 (debian-7.3|debian-6.12|debian-6.1)
  aarch64 --backend nested --l1 debian-7.3-16k
                                        pKVM with 16 KiB pages: conversions on 16 KiB granules
  aarch64 --backend nested --layout crosvm
                                        the guest on crosvm's memory map and device tree
  --backend nested --l1 debian-6.12     the same VMM on another Debian kernel (debian-7.3 default,
                                        debian-6.12, debian-6.1): what KVM offers there
  --arch aarch64 --backend nested --vm-type normal   conv.* SKIP with pKVM's answer

Examples:
  convtest run --tests 'heap.*' --seed 42 --iters 200
  convtest run --arch aarch64 --ktap run.ktap      save the raw KTAP for kunit.py or a bug report
  convtest run --kernel target/guest/x86_64-unknown-none/release/convtest-guest   skip the build
  convtest run --inject fault                      a deliberate crash: exit 1, reason = crash line
  convtest run --backend nested --tests 'conv.*' --json r.json   conversions under real KVM, costs in bench[]
  convtest run --backend nested --content zero     the VMM clears converted pages; the guest must see it
  convtest run --backend nested --l1-swprot --vmm-fault leak   a broken VMM: the run fails naming the tests
  convtest run --arch aarch64 --backend nested --guest-fault skip-unshare   buggy firmware on pKVM";

pub(super) const MUTANTS_AFTER: &str = "\
Lanes:
  nested-x86-swprot   x86, KVM_SW_PROTECTED_VM (guest_memfd + memory attributes): VMM and guest faults
  nested-x86          x86, stock KVM, emulated-private memory (isolation is VMM bookkeeping)
  nested-arm64-pkvm   arm64 pKVM protected VM: guest faults only (pKVM converts at EL2, no VMM exit)
  nested-arm64-pkvm-16k   the same on Debian's 16 KiB-page kernel (16 KiB granules); only when
                      named in --lanes (each run pays ~25 s of pKVM teardown under TCG)

Mutants: vmm:ignore|deny|partial|leak|wrong-content|garbage (see `convtest run --help`,
--vmm-fault) and guest:skip-share|skip-unshare|skip-reset|forget-tracker (--guest-fault).

Exit status: 0 when on every lane the clean run passed, every conv.* test was turned red by at
least one mutant, every mutant was noticed by at least one test, and the kill table equals the
expected one written in the code; 1 otherwise; 2 bad arguments or a missing tool.

Examples:
  convtest mutants                                         all lanes (~2-4 min each on 2 cores)
  convtest mutants --lanes nested-x86-swprot --json m.json";

pub(super) const BENCH_AFTER: &str = "\
What it answers: is converting a buffer private->shared in place (what a confidential guest's \
driver would do instead of bouncing through swiotlb) faster than copying it through a pre-shared \
buffer? Per lane it runs `convtest run --backend nested --tests 'bench.*,conv.cost'` once and \
reads the guest's bench lines (p50 over an adaptive number of iterations, --bench-ms per op and size):
  share, unshare          raw conversion of 1, 2, 4 ... 512 granules (4 KiB ... 2 MiB)
  round trip with touch   share + the guest's first touch of every page + unshare: the in-place path
  bounce (warm / cold)    memcpy of the same bytes private -> pre-shared and back: the swiotlb path
  null exit               the cheapest round trip to the conversion handler: the floor
  VMM part (x86)          the own VMM's share of serving each exit (vmm_share, vmm_unshare)
Below each table: the break-even (the smallest size from which the round trip beats the bounce at \
every larger size; or 'never up to 2 MiB'), throughput of both paths in GB/s, and the one-page \
share+unshare next to the no-op exit (conv.cost, same harness). The nested lanes run under TCG: \
absolute times are not hardware times, the ratios within a lane are the point.

Lanes:
  nested-x86-swprot   x86, KVM_SW_PROTECTED_VM (guest_memfd + memory attributes); needs the kvm.ko
                      build tools (first run builds it, ~5 min on 2 cores)
  nested-x86          x86, stock KVM, emulated-private memory
  nested-arm64-pkvm   arm64 pKVM protected VM (MEM_SHARE/MEM_UNSHARE at EL2, one call per granule)
  nested-arm64-pkvm-16k   the same on 16 KiB granules (only when named in --lanes)

Exit status: 0 when every lane ran, its run passed and it has at least 10 sizes with share, \
unshare, io_round_trip, bounce_warm and bounce_cold, and a null exit (and --svg had something to \
draw); 1 otherwise, naming what is missing (a lane that cannot run here says so); 2 bad arguments \
or a file that cannot be read or written.

Examples:
  convtest bench                                            every lane (1-3 min each on 2 cores, warm cache)
  convtest bench --lanes nested-x86 --svg cost.svg --md cost.md --json cost.json
  convtest bench --bench-ms 20                              a quicker, noisier pass
  convtest bench --lanes nested-x86 --memory 2560           the 1 GiB hint too (x86; pKVM has no hints)
  convtest bench --from cost.json --svg cost.svg            draw a saved report again, no boot
  convtest run --backend nested --tests 'bench.*' --json r.json && convtest bench --from r.json";

pub(super) const LAVA_JOB_AFTER: &str = "\
What the job does: deploy the kernel and the lab's ramdisk with the kit laid over it at \
/convtest-kit (a LAVA ramdisk overlay: the board needs no network), boot with \
kvm-arm.mode=protected, then in LAVA's test shell: `./convtest run --backend vmm --kernel ./Image \
--json /tmp/convtest.json`, `./convtest lava-cases /tmp/convtest.json` (one lava-test-case per \
test, per bench measurement, and `convtest` for the verdict; a reboot series in test sets bootN), \
and the JSON report once more as a base64 line (convtest-json-base64:) for whoever reads the log.

Device types:
  qemu     arm64 virt, virtualization=on, gic-version=3, -cpu max under TCG: pKVM at EL2 with no \
board. lava-run runs it on this machine: scripts/lava-local.sh installs a private LAVA (docs/lava.md)
  others   a board: tftp deploy, U-Boot `ramdisk` boot, --dtb; kvm-arm.mode=protected goes in \
context.extra_kernel_args (never run here: no board)

Exit status: 0 the job was written; 2 bad arguments or an input that is missing or not a kit.

Examples:
  convtest bundle --arch aarch64 --out kit && convtest lava-job --device-type qemu --kit kit
  convtest lava-job --device-type qemu --kit kit --tests 'conv.*' --reboots 1 --out job.yaml
  convtest lava-job --device-type rk3399-gru-kevin --kit https://lab/kit.tar.gz \\
      --kernel https://lab/Image --ramdisk https://lab/rootfs.cpio.gz --dtb https://lab/kevin.dtb";

pub(super) const LAVA_CASES_AFTER: &str = "\
Case names are convtest's test names (`conv.sizes`); each `# bench:` line of a test is a case \
`<test>.<op>.<size_bytes>` with its p50 as the measurement (ns, or cycles); the last case, \
`convtest`, is the run's verdict. A missing or unreadable report is recorded as `convtest` fail.

Exit status: 0 every case was recorded; 1 the report was missing or unreadable (recorded as a \
fail); 2 lava-test-case is not on PATH (not in a LAVA test shell: use --print) or a call failed.";
