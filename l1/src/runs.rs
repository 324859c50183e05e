//! Reads the run list the runner laid out in the initramfs
//! (`convtest_proto::l1::runs` says the layout).

use convtest_proto::l1::runs::{ARGV_FILE, LIMIT_FILE, RunSlot, list, parse_argv, parse_limit};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one run needs, read from its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPlan {
    pub argv: Vec<String>,
    pub limit: Duration,
}

#[derive(Debug)]
pub enum LoadError {
    Read { path: PathBuf, err: io::Error },
    Limit { path: PathBuf, text: String },
}

/// The runs under `root` (the runs dir), in order.
pub fn read_list(root: &Path) -> io::Result<Vec<RunSlot>> {
    let names = std::fs::read_dir(root)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok());
    Ok(list(names))
}

/// Reads one run's argv and limit.
pub fn load(root: &Path, slot: &RunSlot) -> Result<RunPlan, LoadError> {
    let dir = root.join(&slot.dir);
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|err| LoadError::Read { path, err })
    };
    let argv = parse_argv(&read(ARGV_FILE)?);
    let text = read(LIMIT_FILE)?;
    let limit = parse_limit(&text).ok_or_else(|| LoadError::Limit {
        path: dir.join(LIMIT_FILE),
        text: text.trim().chars().take(40).collect(),
    })?;
    Ok(RunPlan { argv, limit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::l1::runs::{ARGV_FILE, LIMIT_FILE};

    #[test]
    fn loads_from_a_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let good = root.path().join("00-clean");
        std::fs::create_dir(&good).expect("mkdir");
        std::fs::write(good.join(ARGV_FILE), "vmm\n--arch\nx86_64\n").expect("write");
        std::fs::write(good.join(LIMIT_FILE), "30\n").expect("write");
        let bad = root.path().join("01-broken");
        std::fs::create_dir(&bad).expect("mkdir");
        std::fs::write(bad.join(ARGV_FILE), "vmm\n").expect("write");
        std::fs::write(bad.join(LIMIT_FILE), "soon\n").expect("write");
        std::fs::create_dir(root.path().join("02-empty")).expect("mkdir");

        let slots = read_list(root.path()).expect("list");
        assert_eq!(slots.len(), 3);
        assert_eq!(
            load(root.path(), &slots[0]).expect("loads"),
            RunPlan {
                argv: vec!["vmm".into(), "--arch".into(), "x86_64".into()],
                limit: Duration::from_secs(30)
            }
        );
        assert!(matches!(
            load(root.path(), &slots[1]),
            Err(LoadError::Limit { text, .. }) if text == "soon"
        ));
        assert!(matches!(
            load(root.path(), &slots[2]),
            Err(LoadError::Read { path, .. }) if path.ends_with("02-empty/argv")
        ));
    }
}
