//! Where scripts/lava-local.sh installs the private LAVA dispatcher and
//! its busybox ramdisk.

/// Where scripts/lava-local.sh installs the private LAVA dispatcher
/// (`$CONVTEST_LAVA_DIR` overrides).
pub const LOCAL_DIR_ENV: &str = "CONVTEST_LAVA_DIR";
pub const LOCAL_DIR: &str = "/var/cache/convtest/lava";
/// The busybox ramdisk the script builds there.
pub const LOCAL_RAMDISK: &str = "rootfs-arm64.cpio.gz";

/// The private LAVA's directory.
pub fn local_dir() -> std::path::PathBuf {
    std::env::var_os(LOCAL_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(|| LOCAL_DIR.into(), Into::into)
}
