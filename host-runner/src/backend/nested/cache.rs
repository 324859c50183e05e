//! Where the nested lane keeps what is slow to get: Debian .debs, the
//! unpacked L1 kernels and modules, the rebuilt swprot kvm.ko. Everything is
//! written under a temporary name and renamed into place, so an interrupted
//! run leaves no half file that a later run would trust; file locks keep
//! parallel runs (e.g. `cargo test` threads) from doing the same work twice.

use crate::error::Error;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Overrides the cache location.
pub const ENV: &str = "CONVTEST_CACHE";
/// The system-wide cache, used when writable (CI machines run as root).
pub const SYSTEM_DIR: &str = "/var/cache/convtest";

pub struct Cache {
    root: PathBuf,
}

/// An exclusive lock on one cache area, released on drop (closing the file).
pub struct Lock {
    _file: File,
}

impl Cache {
    /// `$CONVTEST_CACHE`, else /var/cache/convtest when writable, else
    /// `$HOME/.cache/convtest`.
    pub fn locate() -> Result<Cache, Error> {
        if let Some(dir) = std::env::var_os(ENV).filter(|d| !d.is_empty()) {
            return Cache::at(PathBuf::from(dir));
        }
        if writable(Path::new(SYSTEM_DIR)) {
            return Cache::at(PathBuf::from(SYSTEM_DIR));
        }
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
            Error::Unsupported {
                what: format!(
                    "no cache directory for the nested lane: {SYSTEM_DIR} is not writable and HOME is unset; set {ENV}"
                ),
            }
        })?;
        Cache::at(PathBuf::from(home).join(".cache/convtest"))
    }

    pub fn at(root: PathBuf) -> Result<Cache, Error> {
        std::fs::create_dir_all(&root).map_err(|e| Error::io("creating cache dir", &root, e))?;
        Ok(Cache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A subdirectory, created if missing.
    pub fn dir(&self, name: &str) -> Result<PathBuf, Error> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating cache dir", &dir, e))?;
        Ok(dir)
    }

    /// Blocks until this process holds the named lock.
    pub fn lock(&self, name: &str) -> Result<Lock, Error> {
        let path = self.dir("locks")?.join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening lock", &path, e))?;
        file.lock().map_err(|e| Error::io("locking", &path, e))?;
        Ok(Lock { _file: file })
    }

    /// A temporary directory inside the cache (same filesystem, so its
    /// contents can be renamed into place); removed on drop.
    pub fn temp_dir(&self, prefix: &str) -> Result<tempfile::TempDir, Error> {
        let parent = self.dir("tmp")?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&parent)
            .map_err(|e| Error::io("creating temp dir in", &parent, e))
    }
}

/// Whether `dir` exists or can be made, and a file can be created in it.
fn writable(dir: &Path) -> bool {
    std::fs::create_dir_all(dir).is_ok() && tempfile::tempfile_in(dir).is_ok()
}

/// Moves `from` to `to` atomically (same filesystem). A directory that
/// another run put there first wins; ours is dropped.
pub fn publish(from: &Path, to: &Path) -> Result<(), Error> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(_) if to.exists() => Ok(()),
        Err(e) => Err(Error::io("moving into the cache", to, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_and_publish() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::at(tmp.path().join("c")).expect("cache");
        let lock = cache.lock("x").expect("lock");
        drop(lock);
        let _again = cache.lock("x").expect("relock after drop");
        let t = cache.temp_dir("pub-").expect("temp");
        std::fs::write(t.path().join("f"), b"1").expect("write");
        let dest = cache.root().join("dest");
        publish(t.path(), &dest).expect("publish");
        assert_eq!(std::fs::read(dest.join("f")).expect("read"), b"1");
    }
}
