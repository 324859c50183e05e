//! `convtest lava-job` and `convtest lava-cases`: a LAVA job that runs the
//! board kit, and the board-side step that records its results in LAVA.

use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct LavaJobArgs {
    /// The LAVA device type to run on. `qemu` (every lab has it, and
    /// scripts/lava-local.sh's lava-run runs it here): an arm64 virt machine
    /// with EL2 and GICv3 under TCG, the kernel and ramdisk from tmpfs. Any
    /// other type is a board: tftp deploy, U-Boot `ramdisk` boot, --dtb.
    #[arg(long, value_name = "TYPE")]
    pub device_type: String,

    /// The board kit (`convtest bundle --arch aarch64 --out DIR`): the
    /// directory (packed next to the job as convtest-kit.tar.gz), a tar of
    /// it, or its URL. It is laid over the ramdisk at /convtest-kit.
    #[arg(long, value_name = "DIR|TAR|URL")]
    pub kit: String,

    /// A pKVM-capable arm64 kernel (Image, plain or compressed): path or
    /// URL [default: Debian's 7.3.4 arm64 kernel, the one the nested lane
    /// boots, from convtest's cache (downloaded once)].
    #[arg(long, value_name = "PATH|URL")]
    pub kernel: Option<String>,

    /// The lab's root filesystem: a cpio ramdisk (.cpio, .cpio.gz …) with a
    /// POSIX shell on the console [default: the busybox ramdisk
    /// scripts/lava-local.sh builds].
    #[arg(long, value_name = "PATH|URL")]
    pub ramdisk: Option<String>,

    /// The board's device tree blob (boards only; qemu makes its own).
    #[arg(long, value_name = "PATH|URL")]
    pub dtb: Option<String>,

    /// Where to write the job.
    #[arg(long, value_name = "PATH", default_value = "lava-job.yaml")]
    pub out: PathBuf,

    /// The job's name in the lab [default: "convtest pKVM on <TYPE>"].
    #[arg(long, value_name = "NAME")]
    pub job_name: Option<String>,

    /// Tests to run on the board (`convtest run --tests`).
    #[arg(long, value_name = "GLOB,...")]
    pub tests: Option<String>,

    /// Guest resets in the board's run (`convtest run --reboots`); each
    /// boot's results become a LAVA test set `bootN`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub reboots: u32,

    /// Seconds before a silent guest is killed on the board (`convtest run
    /// --timeout`, per boot); the LAVA test action's timeout follows.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Another `convtest run` argument for the board (repeat for more).
    #[arg(long = "run-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub run_args: Vec<String>,

    /// Another kernel argument besides the console and
    /// kvm-arm.mode=protected (repeat for more).
    #[arg(long = "kernel-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub kernel_args: Vec<String>,

    /// A regex of the ramdisk's shell prompt LAVA waits for after boot
    /// (repeat for more) [default: the busybox ramdisk's, `/ # ` and
    /// `root@…# `].
    #[arg(long = "prompt", value_name = "REGEX")]
    pub prompts: Vec<String>,

    /// qemu: the virtual board's RAM in MiB (its kernel, the VMM and the
    /// guest).
    #[arg(long, value_name = "MiB", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(512..))]
    pub memory: u32,

    /// qemu: the virtual board's CPUs.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: u32,
}

#[derive(Debug, Args)]
pub struct LavaCasesArgs {
    /// The JSON report of `convtest run --json` on the board.
    #[arg(value_name = "JSON")]
    pub json: PathBuf,

    /// Print the lava-test-case / lava-test-set calls instead of running
    /// them (outside a LAVA test shell).
    #[arg(long)]
    pub print: bool,
}
