//! The contract between the runner's nested backend and the L1's /init:
//! where the initramfs puts things (here), the run list (runs.rs) and the
//! marker lines around each inner run (marker.rs).

pub mod kit;
pub mod marker;
pub mod runs;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The guest kernel the inner VMM boots (the same for every run).
pub const PAYLOAD: &str = "/payload";
/// Kernel modules, loaded in file-name order (`NN-name.ko`).
pub const MODULES_DIR: &str = "/modules";
/// `key=value` lines /init prints as L1 facts (e.g. `kvm=stock`).
pub const CONF: &str = "/convtest-l1.conf";
/// Modules whose load fails with ENODEV / EOPNOTSUPP on the other CPU vendor;
/// a user's module dir may hold both.
pub const VENDOR_MODULES: [&str; 2] = ["kvm-amd", "kvm-intel"];

/// A module name from its file name: `03-kvm-amd.ko` → `kvm-amd`.
pub fn module_name(file_name: &str) -> &str {
    let stem = file_name.strip_suffix(".ko").unwrap_or(file_name);
    match stem.split_once('-') {
        Some((nn, rest)) if !nn.is_empty() && nn.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => stem,
    }
}

/// `key=value` lines of the conf file, blank lines and `#` comments skipped.
pub fn parse_conf(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn module_names_drop_order_prefix_and_suffix() {
        assert_eq!(module_name("00-irqbypass.ko"), "irqbypass");
        assert_eq!(module_name("03-kvm-amd.ko"), "kvm-amd");
        assert_eq!(module_name("kvm-intel.ko"), "kvm-intel");
        assert_eq!(module_name("kvm.ko"), "kvm");
    }

    #[test]
    fn conf_lines() {
        let conf = parse_conf("kvm=swprot\n\n# comment\nsource = debian\nnonsense\n");
        assert_eq!(
            conf,
            vec![
                ("kvm".to_string(), "swprot".to_string()),
                ("source".to_string(), "debian".to_string())
            ]
        );
    }
}
