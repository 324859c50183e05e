//! What a job downloads, as the URLs it names: a lab's http(s) URL is taken
//! as given; a local file becomes a `file://` URL (what `lava-run` on this
//! machine reads); a kit directory is packed into a tar beside the job.

use crate::error::Error;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The files a kit must have at its top: the board runs
/// `./convtest run --backend vmm --kernel ./Image`.
pub const KIT_FILES: [&str; 2] = ["convtest", "Image"];
/// The packed kit's name, beside the job.
pub const KIT_TAR: &str = "convtest-kit.tar.gz";

/// URL schemes LAVA's downloader takes.
const SCHEMES: [&str; 4] = ["http://", "https://", "file://", "scp://"];

fn is_url(arg: &str) -> bool {
    arg.contains("://")
}

/// `arg` as a URL for the job: a URL as given (if LAVA can fetch it), a
/// local file as `file://<absolute path>`.
pub fn url_of(arg: &str, what: &str) -> Result<String, Error> {
    if is_url(arg) {
        return if SCHEMES.iter().any(|s| arg.starts_with(s)) {
            Ok(arg.to_string())
        } else {
            Err(Error::Usage(format!(
                "{what} {arg:?}: LAVA downloads http://, https://, file:// and scp:// URLs"
            )))
        };
    }
    let path = Path::new(arg);
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "{what} {arg:?}: no such file (give a path or a URL)"
        )));
    }
    file_url(path)
}

/// `file://` and the absolute path (LAVA reads the path as it stands:
/// whitespace would split its command lines).
pub fn file_url(path: &Path) -> Result<String, Error> {
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io("resolving", path, e))?;
    let text = abs
        .to_str()
        .ok_or_else(|| Error::Usage(format!("{}: the path is not UTF-8", abs.display())))?;
    if text.chars().any(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "{text}: LAVA cannot take a path with whitespace; move it or serve it over http"
        )));
    }
    Ok(format!("file://{text}"))
}

/// The kit as a URL: a URL as given, a tar checked for the kit's files, a
/// directory checked and packed into `out_dir`/[`KIT_TAR`].
pub fn kit_url(arg: &str, out_dir: &Path) -> Result<String, Error> {
    if is_url(arg) {
        return url_of(arg, "--kit");
    }
    let path = Path::new(arg);
    if path.is_dir() {
        let missing: Vec<&str> = KIT_FILES
            .iter()
            .copied()
            .filter(|f| !path.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Usage(format!(
                "--kit {}: not a board kit, it lacks {} (make one with `convtest bundle --arch aarch64 --out DIR`)",
                path.display(),
                missing.join(" and ")
            )));
        }
        let tar = out_dir.join(KIT_TAR);
        pack(path, &tar)?;
        return file_url(&tar);
    }
    let url = url_of(arg, "--kit")?;
    let members = tar_members(path)?;
    let top = |f: &str| members.iter().any(|m| m.trim_start_matches("./") == f);
    let missing: Vec<&str> = KIT_FILES.iter().copied().filter(|f| !top(f)).collect();
    if missing.is_empty() {
        Ok(url)
    } else {
        Err(Error::Usage(format!(
            "--kit {}: the tar has no {} at its top (the board runs ./convtest … --kernel ./Image in it); pass the kit directory instead",
            path.display(),
            missing.join(" or ")
        )))
    }
}

/// `tar -czf TAR -C DIR .`, owned by root and in name order, so the same
/// kit packs to the same bytes.
fn pack(dir: &Path, tar: &Path) -> Result<(), Error> {
    let args: Vec<OsString> = vec![
        "--sort=name".into(),
        "--owner=0".into(),
        "--group=0".into(),
        "--numeric-owner".into(),
        "-czf".into(),
        tar.into(),
        "-C".into(),
        dir.into(),
        ".".into(),
    ];
    run_tar(&args).map(drop)
}

fn tar_members(tar: &Path) -> Result<Vec<String>, Error> {
    let out = run_tar(&["-tf".into(), tar.into()])?;
    Ok(out.lines().map(str::to_string).collect())
}

fn run_tar(args: &[OsString]) -> Result<String, Error> {
    crate::command_output::stdout_of("tar".into(), args.to_vec())
}

/// The busybox ramdisk of scripts/lava-local.sh, or what to do without it.
pub fn local_ramdisk() -> Result<PathBuf, Error> {
    let path = super::local::local_dir().join(super::local::LOCAL_RAMDISK);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingTool {
            tool: super::local::LOCAL_RAMDISK.into(),
            problem: format!(
                "--ramdisk not given and {} is missing: give your lab's ramdisk (a cpio with a shell on the console),",
                path.display()
            ),
            install: "or run `sudo scripts/lava-local.sh`, which builds a busybox one there".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pass_and_files_become_file_urls() {
        assert_eq!(
            url_of("https://lab/rootfs.cpio.gz", "--ramdisk").expect("url"),
            "https://lab/rootfs.cpio.gz"
        );
        let e = url_of("ftp://x/y", "--ramdisk").expect_err("ftp");
        assert!(e.to_string().contains("http://"), "{e}");
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("Image");
        std::fs::write(&f, b"x").expect("write");
        let url = url_of(f.to_str().expect("utf8"), "--kernel").expect("file");
        assert!(
            url.starts_with("file:///") && url.ends_with("/Image"),
            "{url}"
        );
        let e = url_of("/nonexistent/vmlinuz", "--kernel").expect_err("missing");
        assert!(e.to_string().contains("no such file"), "{e}");
    }

    #[test]
    fn a_kit_directory_is_checked_and_packed_and_a_tar_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let kit = dir.path().join("kit");
        std::fs::create_dir(&kit).expect("mkdir");
        std::fs::write(kit.join("convtest"), b"bin").expect("write");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        let e = kit_url(kit.to_str().expect("utf8"), &out).expect_err("no Image");
        assert!(e.to_string().contains("lacks Image"), "{e}");
        std::fs::write(kit.join("Image"), b"img").expect("write");
        let url = kit_url(kit.to_str().expect("utf8"), &out).expect("packed");
        assert!(url.ends_with("/out/convtest-kit.tar.gz"), "{url}");
        let tar = out.join(KIT_TAR);
        let members = tar_members(&tar).expect("list");
        assert!(members.contains(&"./convtest".to_string()), "{members:?}");
        // The packed kit is itself a valid --kit.
        assert_eq!(
            kit_url(tar.to_str().expect("utf8"), &out).expect("tar"),
            url
        );
        // A tar whose files sit in a subdirectory is refused.
        let nested = dir.path().join("nested.tar");
        run_tar(&[
            "-cf".into(),
            nested.clone().into(),
            "-C".into(),
            dir.path().into(),
            "kit".into(),
        ])
        .expect("tar");
        let e = kit_url(nested.to_str().expect("utf8"), &out).expect_err("nested");
        assert!(e.to_string().contains("at its top"), "{e}");
    }
}
