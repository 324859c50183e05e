//! convtest as /init (pid 1) of the nested lane's L1 Linux: mounts what the
//! VMM needs, loads the KVM modules, reports `# convtest-l1:` facts, then
//! runs each inner `convtest vmm …` of the run list (runs.rs) in order, each
//! between a run_begin and a run_end line (marker.rs) with its console
//! relayed to the L1 console and its time limit kept (inner.rs), and powers
//! off. Every path ends in a power-off: an L1 left spinning would only be
//! stopped by the outer timeout, minutes later.
//!
//! The initramfs layout is written by `backend::nested::initramfs` from the
//! constants here and in runs.rs.

#[cfg(target_os = "linux")]
mod console;
#[cfg(target_os = "linux")]
mod failure;
#[cfg(target_os = "linux")]
mod inner;
pub mod marker;
#[cfg(target_os = "linux")]
mod pid1;
pub mod runs;

/// The guest kernel the inner VMM boots (the same for every run).
pub const PAYLOAD: &str = "/payload";
/// Kernel modules, loaded in file-name order (`NN-name.ko`).
pub const MODULES_DIR: &str = "/modules";
/// `key=value` lines /init prints as L1 facts (e.g. `kvm=stock`).
pub const CONF: &str = "/convtest-l1.conf";
/// Modules whose load fails with ENODEV / EOPNOTSUPP on the other CPU vendor;
/// a user's module dir may hold both.
pub const VENDOR_MODULES: [&str; 2] = ["kvm-amd", "kvm-intel"];

/// Entry when convtest runs as pid 1. Returns only if powering off failed.
pub fn main() -> i32 {
    #[cfg(target_os = "linux")]
    {
        pid1::main()
    }
    #[cfg(not(target_os = "linux"))]
    {
        eprintln!("convtest: /init mode needs Linux");
        1
    }
}

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
