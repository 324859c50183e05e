//! convtest as /init (pid 1) of the nested lane's L1 Linux: mounts what the
//! VMM needs, loads the KVM modules, runs `convtest vmm` on the payload with
//! its console relayed to the L1 console, reports `# convtest-l1:` facts and
//! powers off. Every path ends in a power-off: an L1 left spinning would only
//! be stopped by the outer timeout, minutes later.
//!
//! The initramfs layout is written by `backend::nested::initramfs` from the
//! constants below.

/// The guest kernel the inner VMM boots.
pub const PAYLOAD: &str = "/payload";
/// Kernel modules, loaded in file-name order (`NN-name.ko`).
pub const MODULES_DIR: &str = "/modules";
/// The inner `convtest vmm …` argv, one argument per line.
pub const VMM_ARGS: &str = "/convtest-vmm-args";
/// `key=value` lines /init prints as L1 facts (e.g. `kvm=stock`).
pub const CONF: &str = "/convtest-l1.conf";
/// Fact lines (parsed by the runner's KTAP reader into the JSON `l1` object).
pub use crate::ktap::L1_PREFIX;
/// Each line the inner VMM writes on stderr is relayed with this prefix, so
/// the outer runner can tell it from the guest's console.
pub const STDERR_PREFIX: &str = "# convtest-l1-stderr: ";
/// Modules whose load fails with ENODEV / EOPNOTSUPP on the other CPU vendor;
/// a user's module dir may hold both.
pub const VENDOR_MODULES: [&str; 2] = ["kvm-amd", "kvm-intel"];

/// Entry when convtest runs as pid 1. Returns only if powering off failed.
pub fn main() -> i32 {
    #[cfg(target_os = "linux")]
    {
        linux::main()
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

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::ffi::{CStr, CString};
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::os::fd::AsRawFd;
    use std::process::{Command, ExitStatus, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Instant;

    /// Why /init gave up; printed as `error=<kind> …` before the power-off.
    enum Failure {
        Mount { target: &'static str, errno: i32 },
        Read { path: String, err: io::Error },
        Module { name: String, errno: i32 },
        NoKvm,
        Spawn { err: io::Error },
        Wait { err: io::Error },
    }

    impl Failure {
        fn line(&self) -> String {
            match self {
                Failure::Mount { target, errno } => {
                    format!("error=mount target={target} errno={errno}")
                }
                Failure::Read { path, err } => format!(
                    "error=read path={path} errno={}",
                    err.raw_os_error().unwrap_or(0)
                ),
                Failure::Module { name, errno } => {
                    format!("error=module module={name} errno={errno}")
                }
                Failure::NoKvm => "error=no-dev-kvm".into(),
                Failure::Spawn { err } => {
                    format!("error=spawn errno={}", err.raw_os_error().unwrap_or(0))
                }
                Failure::Wait { err } => {
                    format!("error=wait errno={}", err.raw_os_error().unwrap_or(0))
                }
            }
        }
    }

    /// The L1 console, shared by /init's own lines and the relayed VMM
    /// output; remembers whether the last byte ended a line so fact lines
    /// always start on a fresh one (the runner only parses whole lines).
    struct Console {
        at_line_start: bool,
    }

    type Shared = Arc<Mutex<Console>>;

    fn with_console(con: &Shared, f: impl FnOnce(&mut Console, &mut io::StdoutLock<'_>)) {
        // A poisoned lock only means a relay thread panicked mid-write: the
        // console itself is still usable.
        let mut guard = con.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = io::stdout().lock();
        f(&mut guard, &mut out);
        let _ = out.flush();
    }

    fn raw(con: &Shared, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        with_console(con, |c, out| {
            // Console write errors have nowhere to be reported.
            let _ = out.write_all(bytes);
            c.at_line_start = bytes.ends_with(b"\n");
        });
    }

    /// One whole line with `prefix`, on a fresh line.
    fn line(con: &Shared, prefix: &str, text: &str) {
        with_console(con, |c, out| {
            let lead = if c.at_line_start { "" } else { "\n" };
            let _ = writeln!(out, "{lead}{prefix}{text}");
            c.at_line_start = true;
        });
    }

    fn fact(con: &Shared, text: &str) {
        line(con, L1_PREFIX, text);
    }

    pub fn main() -> i32 {
        let con: Shared = Arc::new(Mutex::new(Console {
            // The kernel may have left a partial line (quiet boot: rarely).
            at_line_start: false,
        }));
        if let Err(f) = run(&con) {
            fact(&con, &f.line());
        }
        power_off(&con)
    }

    fn run(con: &Shared) -> Result<(), Failure> {
        for (src, target, fstype) in [
            ("proc", "/proc", "proc"),
            ("sysfs", "/sys", "sysfs"),
            ("devtmpfs", "/dev", "devtmpfs"),
        ] {
            mount(src, target, fstype)?;
        }
        let boot_ms = uptime_ms();
        let conf = match std::fs::read_to_string(CONF) {
            Ok(text) => parse_conf(&text),
            // No conf: nothing extra to say.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                return Err(Failure::Read {
                    path: CONF.into(),
                    err,
                });
            }
        };
        let started = Instant::now();
        let loaded = load_modules(con)?;
        let modules_ms = started.elapsed().as_millis();
        if !std::path::Path::new("/dev/kvm").exists() {
            return Err(Failure::NoKvm);
        }
        let mut words = vec![format!("kernel={}", kernel_release())];
        words.extend(conf.iter().map(|(k, v)| format!("{k}={v}")));
        words.push(format!("boot_ms={}", boot_ms.unwrap_or(0)));
        words.push(format!("modules_ms={modules_ms}"));
        if !loaded.is_empty() {
            words.push(format!("modules={}", loaded.join(",")));
        }
        fact(con, &words.join(" "));
        let status = run_vmm(con)?;
        let exit = match (status.code(), signal_of(status)) {
            (Some(code), _) => code.to_string(),
            (None, Some(sig)) => format!("signal-{sig}"),
            (None, None) => "unknown".into(),
        };
        fact(con, &format!("vmm_exit={exit}"));
        Ok(())
    }

    fn signal_of(status: ExitStatus) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    }

    fn mount(src: &str, target: &'static str, fstype: &str) -> Result<(), Failure> {
        // The initramfs normally has the mount points; a missing one is made.
        let _ = std::fs::create_dir_all(target);
        let to_c = |s: &str| CString::new(s).map_err(|_| Failure::Mount { target, errno: 0 });
        let (src_c, target_c, fstype_c) = (to_c(src)?, to_c(target)?, to_c(fstype)?);
        // SAFETY: all three are valid NUL-terminated strings that outlive the
        // call; data may be NULL for these filesystems.
        let r = unsafe {
            libc::mount(
                src_c.as_ptr(),
                target_c.as_ptr(),
                fstype_c.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(Failure::Mount {
                target,
                errno: last_errno(),
            })
        }
    }

    fn last_errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Milliseconds since the L1 kernel started (first field of /proc/uptime).
    fn uptime_ms() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/uptime").ok()?;
        let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
        Some((secs * 1000.0) as u64)
    }

    fn kernel_release() -> String {
        // SAFETY: utsname is plain old data; all-zero is a valid value.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uts is a valid, writable utsname for the call.
        if unsafe { libc::uname(&mut uts) } != 0 {
            return "unknown".into();
        }
        // SAFETY: uname NUL-terminates release within the array.
        let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
        release.to_string_lossy().into_owned()
    }

    /// Loads /modules/* in name order; returns the names loaded.
    fn load_modules(con: &Shared) -> Result<Vec<String>, Failure> {
        let mut files: Vec<String> = match std::fs::read_dir(MODULES_DIR) {
            Ok(dir) => dir
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            // arm64: KVM is built in and the initramfs has no modules.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                return Err(Failure::Read {
                    path: MODULES_DIR.into(),
                    err,
                });
            }
        };
        files.sort();
        let mut loaded = Vec::new();
        for file in &files {
            let name = module_name(file).to_string();
            let path = format!("{MODULES_DIR}/{file}");
            let f = std::fs::File::open(&path).map_err(|err| Failure::Read {
                path: path.clone(),
                err,
            })?;
            // SAFETY: f is an open file descriptor for the whole call; the
            // params string is an empty NUL-terminated string; flags 0.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_finit_module,
                    f.as_raw_fd() as libc::c_long,
                    c"".as_ptr(),
                    0 as libc::c_long,
                )
            };
            if r == 0 {
                loaded.push(name);
                continue;
            }
            let errno = last_errno();
            // A vendor module for the other CPU vendor refuses to load: fine
            // as long as /dev/kvm appears from the other one.
            if VENDOR_MODULES.contains(&name.as_str())
                && (errno == libc::ENODEV || errno == libc::EOPNOTSUPP)
            {
                fact(
                    con,
                    &format!("module_skipped={name} module_skipped_errno={errno}"),
                );
                continue;
            }
            return Err(Failure::Module { name, errno });
        }
        Ok(loaded)
    }

    fn vmm_args() -> Result<Vec<String>, Failure> {
        let text = std::fs::read_to_string(VMM_ARGS).map_err(|err| Failure::Read {
            path: VMM_ARGS.into(),
            err,
        })?;
        Ok(text.lines().map(String::from).collect())
    }

    /// Runs the inner VMM (this same binary) and relays its stdout raw and
    /// its stderr line by line (prefixed) to the console.
    fn run_vmm(con: &Shared) -> Result<ExitStatus, Failure> {
        let args = vmm_args()?;
        let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
        let mut child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| Failure::Spawn { err })?;
        let out = child.stdout.take().map(|mut out| {
            let con = Arc::clone(con);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = out.read(&mut buf) {
                    raw(&con, &buf[..n]);
                }
            })
        });
        let err = child.stderr.take().map(|err| {
            let con = Arc::clone(con);
            thread::spawn(move || {
                let mut reader = BufReader::new(err);
                let mut buf = Vec::new();
                while let Ok(1..) = reader.read_until(b'\n', &mut buf) {
                    let text = String::from_utf8_lossy(&buf);
                    line(&con, STDERR_PREFIX, text.trim_end_matches(['\n', '\r']));
                    buf.clear();
                }
            })
        });
        let status = child.wait().map_err(|err| Failure::Wait { err });
        // The pipes close with the child; the relays end after the last byte.
        for t in [out, err].into_iter().flatten() {
            let _ = t.join();
        }
        status
    }

    fn power_off(con: &Shared) -> i32 {
        // The kernel's emergency-level "reboot: Power down" would otherwise
        // be the console's last line, hiding the guest's or /init's in the
        // runner's verdict. Console level 0 silences even that (syslog(2)'s
        // CONSOLE_OFF stops at level 1); best effort.
        let _ = std::fs::write("/proc/sys/kernel/printk", "0");
        // SAFETY: sync takes no arguments and cannot fail.
        unsafe { libc::sync() };
        // SAFETY: reboot with RB_POWER_OFF takes no pointers; as pid 1 with
        // CAP_SYS_BOOT it does not return on success.
        unsafe { libc::reboot(libc::RB_POWER_OFF) };
        fact(con, &format!("error=poweroff errno={}", last_errno()));
        // Returning makes pid 1 exit: the kernel panics and, with panic=-1
        // and QEMU's -no-reboot, the L1 still ends.
        1
    }
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
