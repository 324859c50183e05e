//! The L1's initramfs: an uncompressed cpio (newc) archive, so the L1
//! kernel spends no TCG time inflating it. Layout (paths in `convtest_proto::l1`
//! and its `runs`): /init (convtest-l1, static), /payload (the guest, shared
//! by every run), /modules/NN-name.ko in load order, /convtest-l1.conf,
//! /dev/console, and per inner run /runs/NN-label/argv (one argument per
//! line) and /runs/NN-label/limit_s (whole seconds).

use super::inner_run::{InnerRun, limit_secs};
use super::modules::Module;
use crate::error::Error;
use convtest_proto::l1::{self, runs};
use cpio::newc::{Builder, ModeFileType};
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct Contents<'a> {
    /// The static `convtest-l1` binary (the l1 crate).
    pub init: &'a Path,
    pub payload: &'a Path,
    /// In load order.
    pub modules: &'a [Module],
    /// The inner runs, in order (labels checked by `inner_run::check`).
    pub runs: &'a [InnerRun],
    /// Facts /init prints (`key=value`).
    pub conf: &'a [(String, String)],
    /// A board kit for the kit runs, at `convtest_proto::l1::kit::ARCHIVE`.
    pub kit: Option<&'a Path>,
}

enum Data {
    Dir,
    CharDev(u32, u32),
    File(PathBuf, u32),
    Bytes(Vec<u8>, u32),
}

/// Writes the archive to `out`.
pub fn write(out: &Path, c: &Contents<'_>) -> Result<(), Error> {
    let file = std::fs::File::create(out).map_err(|e| Error::io("creating", out, e))?;
    let mut w = BufWriter::new(file);
    let io = |e| Error::io("writing", out, e);
    for (ino, (name, data)) in entries(c)?.into_iter().enumerate() {
        entry(&mut w, ino as u32 + 1, &name, data).map_err(io)?;
    }
    let w = cpio::newc::trailer(w).map_err(io)?;
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)
}

fn entries(c: &Contents<'_>) -> Result<Vec<(String, Data)>, Error> {
    let strip = |p: &str| p.trim_start_matches('/').to_string();
    let mut list: Vec<(String, Data)> = ["dev", "proc", "sys", "tmp", &strip(l1::MODULES_DIR)]
        .into_iter()
        .map(|d| (d.to_string(), Data::Dir))
        .collect();
    // The kernel opens /dev/console for pid 1 before anything is mounted.
    list.push(("dev/console".into(), Data::CharDev(5, 1)));
    list.push(("init".into(), Data::File(c.init.to_path_buf(), 0o755)));
    list.push((
        strip(l1::PAYLOAD),
        Data::File(c.payload.to_path_buf(), 0o644),
    ));
    for (i, m) in c.modules.iter().enumerate() {
        let name = format!("{}/{i:02}-{}.ko", strip(l1::MODULES_DIR), m.name);
        list.push((name, Data::File(m.path.clone(), 0o644)));
    }
    let runs_dir = strip(runs::RUNS_DIR);
    list.push((runs_dir.clone(), Data::Dir));
    for (i, run) in c.runs.iter().enumerate() {
        // It names a directory: nothing that could leave /runs.
        if !runs::valid_label(&run.label) {
            return Err(Error::BadRunList {
                what: format!("inner run label {:?}", run.label),
            });
        }
        let dir = format!("{runs_dir}/{}", runs::dir_name(i, &run.label));
        list.push((dir.clone(), Data::Dir));
        list.push((
            format!("{dir}/{}", runs::ARGV_FILE),
            Data::Bytes(argv_file(&run.vmm_args)?, 0o644),
        ));
        let limit = format!("{}\n", limit_secs(run.limit));
        list.push((
            format!("{dir}/{}", runs::LIMIT_FILE),
            Data::Bytes(limit.into_bytes(), 0o644),
        ));
    }
    if let Some(kit) = c.kit {
        list.push((
            strip(l1::kit::ARCHIVE),
            Data::File(kit.to_path_buf(), 0o644),
        ));
    }
    let conf: String = c.conf.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    list.push((strip(l1::CONF), Data::Bytes(conf.into_bytes(), 0o644)));
    Ok(list)
}

/// One argument per line, as `convtest_proto::l1::runs::parse_argv` reads it.
fn argv_file(args: &[OsString]) -> Result<Vec<u8>, Error> {
    let mut text = String::new();
    for a in args {
        let a = a.to_str().ok_or_else(|| Error::BadRunList {
            what: format!("VMM argument {a:?} is not UTF-8"),
        })?;
        if a.contains('\n') {
            return Err(Error::BadRunList {
                what: format!(
                    "VMM argument {a:?} has a newline; the L1 reads one argument per line"
                ),
            });
        }
        text.push_str(a);
        text.push('\n');
    }
    Ok(text.into_bytes())
}

fn entry<W: Write>(w: &mut W, ino: u32, name: &str, data: Data) -> std::io::Result<()> {
    let b = Builder::new(name).ino(ino);
    match data {
        Data::Dir => {
            b.mode(0o755)
                .nlink(2)
                .set_mode_file_type(ModeFileType::Directory)
                .write(w, 0)
                .finish()?;
        }
        Data::CharDev(major, minor) => {
            b.mode(0o600)
                .set_mode_file_type(ModeFileType::Char)
                .rdev_major(major)
                .rdev_minor(minor)
                .write(w, 0)
                .finish()?;
        }
        Data::File(path, mode) => {
            let mut f = std::fs::File::open(&path)?;
            let len = f.metadata()?.len();
            let len = u32::try_from(len).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    format!("{} is over 4 GiB", path.display()),
                )
            })?;
            let mut out = b
                .mode(mode)
                .set_mode_file_type(ModeFileType::Regular)
                .write(w, len);
            let copied = std::io::copy(&mut f, &mut out)?;
            if copied != u64::from(len) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} changed while being archived", path.display()),
                ));
            }
            out.finish()?;
        }
        Data::Bytes(bytes, mode) => {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            let mut out = b
                .mode(mode)
                .set_mode_file_type(ModeFileType::Regular)
                .write(w, len);
            out.write_all(&bytes)?;
            out.finish()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpio::NewcReader;
    use std::io::Read;
    use std::time::Duration;

    /// (name, mode, (rdev major, minor), body) of every entry.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    fn read_back(path: &Path) -> Vec<Entry> {
        let mut file = std::fs::File::open(path).expect("open");
        let mut seen = Vec::new();
        loop {
            let mut r = NewcReader::new(file).expect("entry");
            if r.entry().is_trailer() {
                break;
            }
            let e = r.entry();
            let (name, mode, rdev) = (
                e.name().to_string(),
                e.mode(),
                (e.rdev_major(), e.rdev_minor()),
            );
            let mut body = Vec::new();
            r.read_to_end(&mut body).expect("body");
            seen.push((name, mode, rdev, body));
            file = r.finish().expect("next");
        }
        seen
    }

    fn run(label: &str, args: &[&str], limit: Duration) -> InnerRun {
        InnerRun {
            label: label.into(),
            vmm_args: args.iter().map(OsString::from).collect(),
            limit,
        }
    }

    #[test]
    fn archive_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write_file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).expect("write");
            p
        };
        let init = write_file("convtest", b"\x7fELF init");
        let payload = write_file("guest", b"guest kernel!");
        let kvm = write_file("kvm.ko", b"kvm");
        let irq = write_file("irqbypass.ko", b"irqbypass");
        let modules = [
            Module {
                name: "irqbypass".into(),
                path: irq,
            },
            Module {
                name: "kvm".into(),
                path: kvm,
            },
        ];
        let runs = [
            run(
                "clean",
                &["vmm", "--cmdline", "tests=* seed=1"],
                Duration::from_secs(60),
            ),
            run(
                "vmm-ignore",
                &["vmm", "--vmm-fault", "ignore", "--cmdline", ""],
                Duration::from_millis(1500),
            ),
        ];
        let out = dir.path().join("initramfs.cpio");
        write(
            &out,
            &Contents {
                init: &init,
                payload: &payload,
                modules: &modules,
                runs: &runs,
                conf: &[("kvm".into(), "stock".into())],
                kit: Some(&payload),
            },
        )
        .expect("writes");

        let seen = read_back(&out);
        let find = |n: &str| {
            seen.iter().find(|(name, ..)| name == n).unwrap_or_else(|| {
                panic!(
                    "{n} missing from {:?}",
                    seen.iter().map(|s| &s.0).collect::<Vec<_>>()
                )
            })
        };
        assert_eq!(find("init").1, 0o100755);
        assert_eq!(find("init").3, b"\x7fELF init");
        assert_eq!(find("payload").3, b"guest kernel!");
        assert_eq!(find("dev/console").1, 0o020600);
        assert_eq!(find("dev/console").2, (5, 1));
        assert_eq!(find("modules").1, 0o040755);
        assert_eq!(find("modules/00-irqbypass.ko").3, b"irqbypass");
        assert_eq!(find("modules/01-kvm.ko").3, b"kvm");
        assert_eq!(find("runs").1, 0o040755);
        assert_eq!(find("runs/00-clean").1, 0o040755);
        assert_eq!(
            find("runs/00-clean/argv").3,
            b"vmm\n--cmdline\ntests=* seed=1\n"
        );
        assert_eq!(find("runs/00-clean/limit_s").3, b"60\n");
        // Rounded up: /init keeps whole seconds.
        assert_eq!(find("runs/01-vmm-ignore/limit_s").3, b"2\n");
        assert_eq!(find("convtest-l1.conf").3, b"kvm=stock\n");
        assert_eq!(
            find("kit.tar.gz").3,
            b"guest kernel!",
            "the kit, when given"
        );
        // A directory comes before what is in it, or the kernel cannot unpack it.
        let at = |n: &str| seen.iter().position(|s| s.0 == n);
        assert!(at("runs") < at("runs/00-clean") && at("runs/00-clean") < at("runs/00-clean/argv"));

        // What /init reads from the unpacked archive is what was written.
        let root = tempfile::tempdir().expect("tempdir");
        for (name, mode, _, body) in &seen {
            let path = root.path().join(name);
            if mode & 0o170000 == 0o040000 {
                std::fs::create_dir_all(&path).expect("mkdir");
            } else if mode & 0o170000 == 0o100000 {
                std::fs::write(&path, body).expect("write");
            }
        }
        let runs_root = root.path().join("runs");
        let names = std::fs::read_dir(&runs_root)
            .expect("run list")
            .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"));
        let read: Vec<(usize, String, Vec<String>, Duration)> = runs::list(names)
            .iter()
            .map(|s| {
                let file =
                    |f| std::fs::read_to_string(runs_root.join(&s.dir).join(f)).expect("run file");
                let limit = runs::parse_limit(&file(runs::LIMIT_FILE)).expect("limit");
                (
                    s.index,
                    s.label.clone(),
                    runs::parse_argv(&file(runs::ARGV_FILE)),
                    limit,
                )
            })
            .collect();
        let strings = |r: &InnerRun| -> Vec<String> {
            r.vmm_args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            read,
            [
                (
                    0,
                    "clean".into(),
                    strings(&runs[0]),
                    Duration::from_secs(60)
                ),
                (
                    1,
                    "vmm-ignore".into(),
                    strings(&runs[1]),
                    Duration::from_secs(2)
                ),
            ]
        );
    }

    #[test]
    fn what_the_l1_cannot_read_is_refused() {
        let p = Path::new("/x");
        let contents = |runs: &[InnerRun]| {
            entries(&Contents {
                init: p,
                payload: p,
                modules: &[],
                runs,
                conf: &[],
                kit: None,
            })
            .map(|_| ())
        };
        let limit = Duration::from_secs(1);
        assert!(contents(&[run("a", &["a\nb"], limit)]).is_err());
        assert!(contents(&[run("../etc", &["vmm"], limit)]).is_err());
        assert!(contents(&[run("ok", &["vmm"], limit)]).is_ok());
    }
}
