//! Writes the kit: README.md and kit.json made here, the two binaries
//! copied, all of it in one `.tar.gz` under one top directory (layout.rs).

use super::build::Built;
use super::layout::{self, Kit, KitFile, commands};
use crate::error::Error;
use crate::kit::guest_file;
use convtest_proto::arch::Arch;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

pub fn write(out: &Path, arch: Arch, built: &Built) -> Result<Kit, Error> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io("reading", p, e));
    let binary = read(&built.convtest)?;
    let guest = read(&built.guest)?;
    let file = |name: &str, bytes: &[u8], what| KitFile {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        sha256: format!("{:x}", Sha256::digest(bytes)),
        what,
    };
    let mut kit = Kit {
        kit_format: 1,
        arch: arch.as_str(),
        convtest_version: env!("CARGO_PKG_VERSION"),
        dir: layout::top_dir(arch),
        files: vec![
            file(
                layout::BINARY,
                &binary,
                "static Linux binary (musl): the runner, the judge and convtest's own KVM VMM",
            ),
            file(guest_file(arch), &guest, guest_what(arch)),
        ],
        commands: commands(arch),
        exit_status: layout::EXIT_STATUS,
        archive_bytes: 0,
    };
    let readme = readme(&kit);
    kit.files
        .push(file(layout::README, readme.as_bytes(), "how to run it"));
    let manifest = serde_json::to_vec_pretty(&kit).map_err(|e| Error::UnusableBuild {
        what: format!("kit.json: {e}"),
    })?;
    let top = layout::top_dir(arch);
    let members: [(&str, &[u8], u32); 4] = [
        (layout::BINARY, &binary, 0o755),
        (guest_file(arch), &guest, 0o644),
        (layout::README, readme.as_bytes(), 0o644),
        (layout::MANIFEST, &manifest, 0o644),
    ];
    let io = |e| Error::io("writing", out, e);
    let f = std::fs::File::create(out).map_err(io)?;
    let mut tar = tar::Builder::new(GzEncoder::new(f, Compression::default()));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_cksum();
    tar.append_data(&mut dir, format!("{top}/"), std::io::empty())
        .map_err(io)?;
    for (name, bytes, mode) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(bytes.len() as u64);
        h.set_cksum();
        tar.append_data(&mut h, format!("{top}/{name}"), bytes)
            .map_err(io)?;
    }
    let mut gz = tar.into_inner().map_err(io)?;
    gz.flush().map_err(io)?;
    gz.finish().map_err(io)?.sync_all().map_err(io)?;
    kit.archive_bytes = std::fs::metadata(out).map_err(io)?.len();
    Ok(kit)
}

fn guest_what(arch: Arch) -> &'static str {
    match arch {
        Arch::Aarch64 => {
            "the guest: an arm64 Image (its own 4 KiB pages; pKVM's 4 KiB or 16 KiB granule)"
        }
        Arch::X86_64 => "the guest: a PVH ELF kernel",
    }
}

/// The kit's README: what is in it, the commands, and crosvm's (not run
/// here).
pub fn readme(kit: &Kit) -> String {
    let mut s = String::new();
    let guest = &kit.files[1].name;
    s.push_str(&format!(
        "# convtest board kit ({arch})\n\n\
         Written by `convtest bundle --arch {arch}` (convtest {v}). Nothing here needs cargo,\n\
         rustup or a network: `convtest` is one static binary and the guest is prebuilt.\n\n\
         | file | what |\n|---|---|\n",
        arch = kit.arch,
        v = kit.convtest_version
    ));
    for f in &kit.files {
        s.push_str(&format!("| `{}` | {} |\n", f.name, f.what));
    }
    s.push_str(&format!(
        "| `{}` | the same list with sizes and SHA-256, and the commands below, for scripts |\n\n",
        layout::MANIFEST
    ));
    s.push_str(
        "## On the board (root, /dev/kvm; pKVM boards give a protected VM)\n\n\
         Unpack (`tar xzf convtest-kit-*.tar.gz`), enter the directory, then:\n\n",
    );
    for c in &kit.commands {
        s.push_str(&format!(
            "    {}\n\n{}",
            c.argv.join(" "),
            upper_first(c.what)
        ));
        match c.expect_exit {
            0 => s.push_str(&format!(
                ": exit 0 when it passes; `{}` is the report (the verdict, every test, what \
                 pKVM answered, what enforced each host check).\n\n",
                c.result.unwrap_or("-")
            )),
            _ => s.push_str(".\n\n"),
        }
    }
    s.push_str("Exit status: ");
    s.push_str(
        &kit.exit_status
            .iter()
            .map(|(code, what)| format!("{code} {what}"))
            .collect::<Vec<_>>()
            .join("; "),
    );
    s.push_str(
        ". Add `--junit PATH` / `--ktap PATH` for a lab, `--tests GLOB` to choose tests, \
         `./convtest run --help` for the rest. Anything that would need a build \
         (no `--kernel`, `--backend nested`, `--boot bios|uefi`) says so and exits 2.\n\n",
    );
    if kit.arch == Arch::Aarch64.as_str() {
        s.push_str(&format!(
            "## Under crosvm (Android pKVM boards) — not run here\n\n\
             convtest's CI never ran crosvm: `--layout crosvm` above is convtest's own VMM\n\
             building crosvm's memory map and device tree (RAM at 0x8000_0000, the FDT at the\n\
             end of RAM, a 16550 at MMIO 0x3f8 without reg-shift, PSCI over hvc). With crosvm\n\
             itself, on a debuggable device:\n\n\
             \x20   crosvm run --disable-sandbox --protected-vm-without-firmware --mem size=256 \\\n\
             \x20     --serial type=stdout,hardware=serial,num=1,console=true \\\n\
             \x20     --params 'host=off' ./{guest}\n\n\
             `host=off`: crosvm does not answer the guest's host-check requests, so the\n\
             conversion tests check from inside the guest only. The KTAP is the console\n\
             output; a plan that completed ends with a `# convtest-done:` line. Android\n\
             ships crosvm at /apex/com.android.virt/bin/crosvm.\n"
        ));
    }
    s
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_archive_has_one_directory_with_the_four_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (bin, guest) = (tmp.path().join("convtest"), tmp.path().join("Image"));
        std::fs::write(&bin, b"\x7fELF static").expect("bin");
        std::fs::write(&guest, b"ARM\x64 image").expect("guest");
        let out = tmp.path().join("kit.tar.gz");
        let kit = write(
            &out,
            Arch::Aarch64,
            &Built {
                convtest: bin,
                guest,
            },
        )
        .expect("written");
        assert!(kit.archive_bytes > 0);
        let mut names = Vec::new();
        let f = std::fs::File::open(&out).expect("open");
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for e in a.entries().expect("entries") {
            let mut e = e.expect("entry");
            let name = e.path().expect("path").display().to_string();
            let mode = e.header().mode().expect("mode");
            let mut body = String::new();
            if name.ends_with("kit.json") {
                e.read_to_string(&mut body).expect("json");
                let j: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
                assert_eq!(j["arch"], "aarch64");
                assert_eq!(j["files"][0]["name"], "convtest");
                assert_eq!(j["files"][0]["bytes"], 11);
                assert_eq!(j["commands"][0]["result"], "r.json");
            }
            if name.ends_with("README.md") {
                e.read_to_string(&mut body).expect("readme");
                assert!(
                    body.contains("./convtest run --backend vmm --kernel ./Image --json r.json")
                );
                assert!(
                    body.contains("not run here")
                        && body.contains("--protected-vm-without-firmware")
                );
            }
            names.push((name, mode));
        }
        assert_eq!(
            names,
            [
                ("convtest-kit-aarch64/".to_string(), 0o755),
                ("convtest-kit-aarch64/convtest".to_string(), 0o755),
                ("convtest-kit-aarch64/Image".to_string(), 0o644),
                ("convtest-kit-aarch64/README.md".to_string(), 0o644),
                ("convtest-kit-aarch64/kit.json".to_string(), 0o644),
            ]
        );
    }
}
