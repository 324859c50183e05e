//! `convtest bundle`: the board kit. One archive with the static
//! `convtest` built for `<arch>-unknown-linux-musl` as a kit (kit.rs: it
//! refuses anything that would build), the prebuilt guest, a README and a
//! manifest for scripts (layout.rs says what is where); `--check nested`
//! then runs the README's commands inside the nested lane's L1 (check.rs).

mod build;
mod check;
mod layout;
mod pack;

pub use layout::{Kit, KitFile, commands};

use crate::cli::BundleArgs;
use crate::error::Error;
use convtest_proto::arch::Arch;

/// Exit status: 0 written (and, with --check, every command as expected),
/// 1 a check failed, 2 could not build or run.
pub fn main(args: &BundleArgs) -> i32 {
    match bundle(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("convtest bundle: {e}");
            2
        }
    }
}

fn bundle(args: &BundleArgs) -> Result<i32, Error> {
    crate::kit::refuse_build("convtest bundle builds the kit with cargo")?;
    let arch = args.arch.unwrap_or(Arch::Aarch64);
    let workspace = args
        .workspace
        .clone()
        .unwrap_or_else(crate::config::default_workspace);
    if let Some(crate::cli::CheckArg::Nested) = args.check {
        // Before minutes of building: a bad --l1 answers now.
        crate::backend::nested::check_l1_options(arch, &args.l1)?;
    }
    let scratch = crate::cleanup::Scratch::new("convtest-bundle-")?;
    let built = build::build(&workspace, arch, scratch.path(), args.quiet)?;
    let kit = pack::write(&args.out, arch, &built)?;
    if !args.quiet {
        eprintln!(
            "convtest bundle: wrote {} ({} bytes): {}",
            args.out.display(),
            kit.archive_bytes,
            kit.files
                .iter()
                .map(|f| format!("{} {} bytes", f.name, f.bytes))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match args.check {
        None => {
            println!("kit: {}", args.out.display());
            Ok(0)
        }
        Some(crate::cli::CheckArg::Nested) => check::nested(args, arch, &workspace, &built),
    }
}
