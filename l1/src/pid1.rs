//! /init's life as pid 1: set up the L1 (mounts, modules, /dev/kvm), print
//! its facts, run every inner run in order and power off.

use crate::console::Console;
use crate::failure::Failure;
use crate::{inner, kit, runs};
use convtest_proto::l1::marker::{self, VmmExit};
use convtest_proto::l1::runs::{RUNS_DIR, RunSlot};
use convtest_proto::l1::{CONF, MODULES_DIR, VENDOR_MODULES, module_name, parse_conf};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

pub fn main() -> i32 {
    let con = Console::new();
    match setup(&con) {
        Ok(slots) => run_all(&con, &slots),
        Err(f) => con.fact(&f.line()),
    }
    power_off(&con)
}

/// Everything before the first run; returns the runs to do.
fn setup(con: &Console) -> Result<Vec<RunSlot>, Failure> {
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
    if !Path::new("/dev/kvm").exists() {
        return Err(Failure::NoKvm);
    }
    let mut words = vec![format!("kernel={}", kernel_release())];
    words.extend(conf.iter().map(|(k, v)| format!("{k}={v}")));
    words.push(format!("boot_ms={}", boot_ms.unwrap_or(0)));
    words.push(format!("modules_ms={modules_ms}"));
    if !loaded.is_empty() {
        words.push(format!("modules={}", loaded.join(",")));
    }
    con.fact(&words.join(" "));
    let slots = runs::read_list(Path::new(RUNS_DIR)).map_err(|err| Failure::Read {
        path: RUNS_DIR.into(),
        err,
    })?;
    if slots.is_empty() {
        return Err(Failure::NoRuns);
    }
    Ok(slots)
}

/// Each run between its begin and end lines; one run's failure is reported
/// on its end line and the next run goes ahead.
fn run_all(con: &Console, slots: &[RunSlot]) {
    // The last run's VMM may still be tearing its VM down: runs never
    // overlap, but the power-off does not wait for it.
    let mut lingering: Option<inner::Lingering> = None;
    for slot in slots {
        if let Some(l) = lingering.take() {
            l.finish();
        }
        con.fact(&marker::begin_text(&slot.label, slot.index, slots.len()));
        let started = Instant::now();
        let mut limit_s = None;
        // A panic here would end pid 1 and with it every later run.
        let attempt = panic::catch_unwind(AssertUnwindSafe(|| {
            let plan = runs::load(Path::new(RUNS_DIR), slot)?;
            limit_s = Some(plan.limit.as_secs());
            if plan.argv.first().map(String::as_str) == Some(convtest_proto::l1::kit::COMMAND) {
                kit::run(con, &plan).map(|exit| (exit, None))
            } else {
                inner::run(con, &plan)
            }
        }));
        let exit = match attempt.unwrap_or(Err(Failure::Panic)) {
            Ok((exit, still)) => {
                lingering = still;
                exit
            }
            Err(f) => {
                con.fact(&f.line());
                VmmExit::Error
            }
        };
        let struck = if exit == VmmExit::Timeout {
            limit_s
        } else {
            None
        };
        let ms = started.elapsed().as_millis();
        con.fact(&marker::end_text(&slot.label, &exit, ms, struck));
    }
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
fn load_modules(con: &Console) -> Result<Vec<String>, Failure> {
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
        let path = Path::new(MODULES_DIR).join(file);
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
            con.fact(&format!(
                "module_skipped={name} module_skipped_errno={errno}"
            ));
            continue;
        }
        return Err(Failure::Module { name, errno });
    }
    Ok(loaded)
}

fn power_off(con: &Console) -> i32 {
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
    con.fact(&format!("error=poweroff errno={}", last_errno()));
    // Returning makes pid 1 exit: the kernel panics and, with panic=-1
    // and QEMU's -no-reboot, the L1 still ends.
    1
}
