//! `convtest-images`: packs the `bootloader_api` build of the convtest guest
//! into a BIOS (MBR) and a UEFI (GPT) disk image with the `bootloader` crate.
//! The plan goes in as the bootloader's ramdisk file; the guest reads it back
//! as its command line.

use bootloader::{BootConfig, DiskImageBuilder};
use bootloader_boot_config::LevelFilter;
use clap::{Parser, ValueEnum};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use std::{fs, io};

/// Section the `bootloader_api::entry_point!` macro emits; the PVH build has none.
const CONFIG_SECTION: &[u8] = b".bootloader-config";
const ELF_MAGIC: &[u8] = b"\x7fELF";

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Build BIOS and UEFI disk images of the convtest guest kernel"
)]
struct Args {
    /// Guest kernel ELF built with `--features bootloader` for x86_64-unknown-none.
    #[arg(long)]
    kernel: PathBuf,
    /// Directory for bios.img and uefi.img (created if missing).
    #[arg(long)]
    out_dir: PathBuf,
    /// The plan (e.g. "tests=* seed=1"); without it the guest runs its default plan.
    #[arg(long)]
    cmdline: Option<String>,
    /// What the bootloader itself logs to the serial port before the kernel runs.
    #[arg(long, value_enum, default_value_t = LoaderLog::Warn)]
    loader_log: LoaderLog,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LoaderLog {
    Off,
    Error,
    Warn,
    Info,
    Trace,
}

#[derive(Debug, thiserror::Error)]
enum ImageError {
    #[error("reading kernel {path}: {source}")]
    ReadKernel { path: PathBuf, source: io::Error },
    #[error("kernel {path} is not an ELF file")]
    NotElf { path: PathBuf },
    #[error(
        "kernel {path} has no .bootloader-config section: build the guest with `--features bootloader` (the PVH build cannot go in a disk image)"
    )]
    NotBootloaderKernel { path: PathBuf },
    #[error("creating output directory {path}: {source}")]
    OutDir { path: PathBuf, source: io::Error },
    #[error("stripping debug info from {path}: {message}")]
    Strip { path: PathBuf, message: String },
    #[error("writing a temporary file for the image: {0}")]
    Temp(io::Error),
    #[error("bootloader could not build {path}: {message}")]
    Build { path: PathBuf, message: String },
    #[error("renaming {from} to {to}: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convtest-images: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), ImageError> {
    let elf = read_kernel(&args.kernel)?;
    fs::create_dir_all(&args.out_dir).map_err(|source| ImageError::OutDir {
        path: args.out_dir.clone(),
        source,
    })?;
    // The BIOS loader reads the kernel through FAT cluster by cluster in
    // real mode: debug info (most of a release ELF) costs seconds under TCG.
    // Crash RIPs are symbolised against the unstripped ELF on the host.
    let stripped = strip_debug(&elf).map_err(|e| ImageError::Strip {
        path: args.kernel.clone(),
        message: e.to_string(),
    })?;
    let kernel = temp_file_with(&stripped).map_err(ImageError::Temp)?;

    let mut builder = DiskImageBuilder::new(kernel.path().to_path_buf());
    builder.set_boot_config(&boot_config(args.loader_log));
    // Kept alive until both images are written: the builder reads it then.
    let ramdisk = match args.cmdline.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(plan) => {
            let file = temp_file_with(plan.as_bytes()).map_err(ImageError::Temp)?;
            builder.set_ramdisk(file.path().to_path_buf());
            Some(file)
        }
        None => None,
    };

    let plan = args.cmdline.as_deref().unwrap_or("(default plan)");
    let bios = args.out_dir.join("bios.img");
    let uefi = args.out_dir.join("uefi.img");
    println!(
        "convtest-images: {} with plan {plan:?} -> {}, {}",
        args.kernel.display(),
        bios.display(),
        uefi.display()
    );
    let start = Instant::now();
    // `{:#}` keeps the bootloader's whole anyhow context chain.
    build(&bios, |p| {
        builder.create_bios_image(p).map_err(|e| format!("{e:#}"))
    })?;
    build(&uefi, |p| {
        builder.create_uefi_image(p).map_err(|e| format!("{e:#}"))
    })?;
    drop((ramdisk, kernel));
    println!(
        "convtest-images: wrote {} and {} in {:.1}s",
        bios.display(),
        uefi.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Refuses anything but an ELF carrying the bootloader_api config section,
/// which would otherwise only fail at boot, inside the VM.
fn read_kernel(path: &Path) -> Result<Vec<u8>, ImageError> {
    let bytes = fs::read(path).map_err(|source| ImageError::ReadKernel {
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.starts_with(ELF_MAGIC) {
        return Err(ImageError::NotElf {
            path: path.to_path_buf(),
        });
    }
    if !bytes
        .windows(CONFIG_SECTION.len())
        .any(|w| w == CONFIG_SECTION)
    {
        return Err(ImageError::NotBootloaderKernel {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The ELF without its `.debug*` sections; loadable sections keep their offsets.
fn strip_debug(elf: &[u8]) -> object::build::Result<Vec<u8>> {
    let mut builder = object::build::elf::Builder::read(elf)?;
    for section in builder.sections.iter_mut() {
        if section.name.starts_with(b".debug") {
            section.delete = true;
        }
    }
    let mut out = Vec::new();
    builder.write(&mut out)?;
    Ok(out)
}

/// A temporary file holding `bytes`, deleted when dropped.
fn temp_file_with(bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(bytes)?;
    file.flush()?;
    Ok(file)
}

/// No framebuffer logging (slow to draw under TCG and invisible headless);
/// serial logging at the chosen level, so a loader failure still says why.
fn boot_config(log: LoaderLog) -> BootConfig {
    let mut config = BootConfig::default();
    config.frame_buffer_logging = false;
    config.serial_logging = !matches!(log, LoaderLog::Off);
    config.log_level = match log {
        LoaderLog::Off => LevelFilter::Off,
        LoaderLog::Error => LevelFilter::Error,
        LoaderLog::Warn => LevelFilter::Warn,
        LoaderLog::Info => LevelFilter::Info,
        LoaderLog::Trace => LevelFilter::Trace,
    };
    config
}

/// Writes next to `path` and renames, so a reader never sees half an image.
fn build(path: &Path, create: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), ImageError> {
    let tmp = path.with_extension("img.part");
    create(&tmp).map_err(|e| ImageError::Build {
        path: path.to_path_buf(),
        message: e,
    })?;
    fs::rename(&tmp, path).map_err(|source| ImageError::Rename {
        from: tmp.clone(),
        to: path.to_path_buf(),
        source,
    })?;
    println!("convtest-images: {}", path.display());
    Ok(())
}
