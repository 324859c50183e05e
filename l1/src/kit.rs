//! A kit run (`convtest_proto::l1::kit`): the board kit unpacked once into
//! /kit, its command run there as a board would run it (relayed and
//! limited like a VMM run), then the file it wrote printed between
//! `file_begin=` and `file_end=` facts for the outer side to judge.

use crate::console::Console;
use crate::failure::Failure;
use crate::inner;
use crate::runs::RunPlan;
use convtest_proto::l1::kit::{self, KitRun};
use convtest_proto::l1::marker::VmmExit;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Runs `plan` (a kit run's argv) and prints its result file.
pub fn run(con: &Console, plan: &RunPlan) -> Result<VmmExit, Failure> {
    let run = KitRun::parse(&plan.argv).ok_or_else(|| Failure::Kit {
        what: format!("bad kit argv {:?}", plan.argv),
    })?;
    let dir = unpacked(con)?;
    let (program, args) = run.command.split_first().ok_or_else(|| Failure::Kit {
        what: "a kit run without a command".into(),
    })?;
    let mut cmd = Command::new(dir.join(program));
    cmd.args(args).current_dir(&dir);
    let (exit, lingering) = inner::run_command(con, cmd, plan.limit)?;
    if let Some(l) = lingering {
        l.finish();
    }
    if let Some(name) = &run.result {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                con.fact(&kit::file_begin_text(name, bytes.len()));
                con.raw(&bytes);
                if !bytes.ends_with(b"\n") {
                    con.raw(b"\n");
                }
                con.fact(&kit::file_end_text(name));
            }
            Err(err) => con.fact(&Failure::Read { path, err }.line()),
        }
    }
    Ok(exit)
}

/// The kit's top directory under /kit, unpacking the archive the first time.
fn unpacked(con: &Console) -> Result<PathBuf, Failure> {
    let root = Path::new(kit::DIR);
    if !root.is_dir() {
        let started = Instant::now();
        let file = std::fs::File::open(kit::ARCHIVE).map_err(|err| Failure::Read {
            path: kit::ARCHIVE.into(),
            err,
        })?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        archive.set_preserve_permissions(true);
        archive.unpack(root).map_err(|e| Failure::Kit {
            what: format!("unpacking {}: {e}", kit::ARCHIVE),
        })?;
        con.fact(&format!(
            "kit_unpacked={} kit_ms={}",
            kit::DIR,
            started.elapsed().as_millis()
        ));
    }
    // The archive holds one top directory (convtest-kit-<arch>).
    let mut dirs = std::fs::read_dir(root)
        .map_err(|err| Failure::Read {
            path: root.into(),
            err,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir());
    match (dirs.next(), dirs.next()) {
        (Some(top), None) => Ok(top),
        _ => Err(Failure::Kit {
            what: format!("{} does not hold exactly one directory", kit::DIR),
        }),
    }
}
