//! Picks the linker script for the entry being built. The PVH kernel is a
//! fixed-address (non-PIE) ELF loaded at its physical addresses; the
//! bootloader_api kernel stays the target's default PIE, which the bootloader
//! relocates; the arm64 Image is PIE and relocates itself at entry.
use std::env;

fn main() {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let bootloader = env::var_os("CARGO_FEATURE_BOOTLOADER").is_some();
    let root = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let linker = format!("{root}/../linker");
    println!("cargo:rerun-if-changed={linker}");
    if os != "none" {
        return;
    }
    match (arch.as_str(), bootloader) {
        ("x86_64", false) => {
            println!("cargo:rustc-link-arg-bins=-T{linker}/x86_64-pvh.ld");
            // rustc links x86_64-unknown-none as static-pie; the last flag wins in lld.
            println!("cargo:rustc-link-arg-bins=--no-pie");
        }
        ("x86_64", true) => {}
        ("aarch64", _) => {
            println!("cargo:rustc-link-arg-bins=-T{linker}/aarch64-image.ld");
            // rustc links aarch64-unknown-none as a fixed-address EXEC; the Image
            // must be a PIE with .rela.dyn so it can relocate itself. Its code is
            // PC-relative already; -z notext lets lld put RELATIVE entries on
            // pointers in read-only data (the entry code patches them, MMU off).
            println!("cargo:rustc-link-arg-bins=--pie");
            println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
            println!("cargo:rustc-link-arg-bins=-znotext");
        }
        (other, _) => panic!("convtest-guest does not support target arch {other}"),
    }
}
