//! The proof that the host cannot read a private page: a forked child does
//! a plain user-space load from the VMM's own mapping of the page and we
//! watch how it dies. Under pKVM the load takes a stage-2 fault at EL2,
//! pKVM injects it back into the host kernel, and the kernel kills the
//! reader with SIGSEGV/SEGV_ACCERR (arch/arm64/mm/fault.c, "stage-2 fault").
//! In the VMM itself that would end the run, hence the child.
//!
//! Why fork and not a re-exec of convtest: the child needs the VMM's mapping
//! of guest RAM at the same address, which fork gives for free (the RAM is a
//! MAP_SHARED memfd, so fork copies no guest page). The VMM has threads (the
//! vCPU watchdog), so the child does only async-signal-safe things: setrlimit,
//! sigaction, one load, write, _exit — no allocation, no locks.

use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long a child may take to read one byte or die trying.
const CHILD_LIMIT: Duration = Duration::from_secs(10);

/// Message tags on the child's pipe.
const TAG_READ: u8 = b'R';
const TAG_SIGNAL: u8 = b'S';

/// What the child that tried to read a guest page saw.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadAttempt {
    /// The child read these 8 bytes: the host can see the page.
    Read([u8; 8]),
    /// The child was killed by `signal`; its handler saw `code` and `addr`
    /// (si_code, si_addr) first, unless it died before saying.
    Killed {
        signal: i32,
        code: Option<i32>,
        addr: Option<u64>,
    },
    /// The child exited without reading (should not happen).
    Exited(i32),
    /// It did not finish within CHILD_LIMIT and was SIGKILLed.
    Stuck,
}

impl ReadAttempt {
    /// The death a load of a page pKVM withholds from the host ends in
    /// (arch/arm64/mm/fault.c: stage-2 fault → SIGSEGV, SEGV_ACCERR).
    pub fn is_stage2_refusal(&self) -> bool {
        matches!(
            self,
            ReadAttempt::Killed {
                signal: libc::SIGSEGV,
                code: Some(SEGV_ACCERR),
                ..
            }
        )
    }
}

const SEGV_ACCERR: i32 = 2;

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGKILL => "SIGKILL".into(),
        s => format!("signal {s}"),
    }
}

fn code_name(sig: i32, code: i32) -> String {
    match (sig, code) {
        (libc::SIGSEGV, 1) => "SEGV_MAPERR".into(),
        (libc::SIGSEGV, SEGV_ACCERR) => "SEGV_ACCERR".into(),
        (libc::SIGBUS, 1) => "BUS_ADRALN".into(),
        (libc::SIGBUS, 2) => "BUS_ADRERR".into(),
        (libc::SIGBUS, 3) => "BUS_OBJERR".into(),
        (_, c) => format!("si_code {c}"),
    }
}

impl fmt::Display for ReadAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadAttempt::Read(b) => write!(f, "read {b:02x?}"),
            ReadAttempt::Killed { signal, code, .. } => {
                write!(f, "was killed by {}", signal_name(*signal))?;
                if let Some(c) = code {
                    write!(f, " ({})", code_name(*signal, *c))?;
                }
                Ok(())
            }
            ReadAttempt::Exited(c) => write!(f, "exited {c} without reading"),
            ReadAttempt::Stuck => write!(f, "hung for {}s and was killed", CHILD_LIMIT.as_secs()),
        }
    }
}

/// The child's end of the pipe, for its signal handler.
static CHILD_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Runs in the child on SIGSEGV/SIGBUS: tells the parent what the kernel
/// said, then returns; SA_RESETHAND restored the default action, so the load
/// faults again and the child dies of the signal.
extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let mut msg = [0u8; 17];
    msg[0] = TAG_SIGNAL;
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as u64) };
    msg[1..5].copy_from_slice(&sig.to_le_bytes());
    msg[5..9].copy_from_slice(&code.to_le_bytes());
    msg[9..17].copy_from_slice(&addr.to_le_bytes());
    // SAFETY: write(2) is async-signal-safe; msg is a local buffer.
    unsafe {
        libc::write(
            CHILD_PIPE.load(Ordering::Relaxed),
            msg.as_ptr().cast(),
            msg.len(),
        );
    }
}

/// In the child: never returns.
fn child(ptr: *const u8, pipe: libc::c_int) -> ! {
    CHILD_PIPE.store(pipe, Ordering::Relaxed);
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on local data. No core dump: the child's image
    // includes all of guest RAM.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
    let mut msg = [0u8; 9];
    msg[0] = TAG_READ;
    for (i, b) in msg[1..].iter_mut().enumerate() {
        // SAFETY: `ptr` points into the guest RAM mapping the parent checked
        // (at least 8 bytes to the page end, as it is 8-aligned inside a
        // page). If pKVM refuses the load, the signal ends this process.
        *b = unsafe { std::ptr::read_volatile(ptr.add(i)) };
    }
    // SAFETY: async-signal-safe calls; `msg` is local.
    unsafe {
        libc::write(pipe, msg.as_ptr().cast(), msg.len());
        libc::_exit(0)
    }
}

/// Forks a child that loads 8 bytes at `ptr` (inside guest RAM, 8-aligned)
/// and reports what happened to it.
pub fn read_in_child(ptr: *const u8) -> std::io::Result<ReadAttempt> {
    let ptr = ((ptr as usize) & !7) as *const u8;
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [r, w] = fds;
    // SAFETY: the child runs only `child`, which is async-signal-safe (see
    // the module doc), and never returns into the parent's code.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: closing our copy of the read end in the child.
        unsafe { libc::close(r) };
        child(ptr, w);
    }
    // SAFETY: closing the parent's copy of the write end (the child has its own).
    unsafe { libc::close(w) };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: our fd.
        unsafe { libc::close(r) };
        return Err(e);
    }
    let (msg, stuck) = collect(r, pid);
    // SAFETY: our fd.
    unsafe { libc::close(r) };
    let mut status = 0;
    // SAFETY: waits for our own child; status is a local.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(std::io::Error::last_os_error());
    }
    if stuck {
        return Ok(ReadAttempt::Stuck);
    }
    if msg.first() == Some(&TAG_READ) && msg.len() >= 9 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&msg[1..9]);
        return Ok(ReadAttempt::Read(b));
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let (code, addr) = match msg.get(..17) {
            Some(m) if m[0] == TAG_SIGNAL => (
                Some(i32::from_le_bytes([m[5], m[6], m[7], m[8]])),
                Some(u64::from_le_bytes(m[9..17].try_into().unwrap_or([0; 8]))),
            ),
            _ => (None, None),
        };
        return Ok(ReadAttempt::Killed { signal, code, addr });
    }
    Ok(ReadAttempt::Exited(libc::WEXITSTATUS(status)))
}

/// Reads the pipe until the child closes it (by exiting or dying); kills the
/// child if that takes longer than CHILD_LIMIT. Returns (bytes, stuck).
fn collect(r: libc::c_int, pid: libc::pid_t) -> (Vec<u8>, bool) {
    let start = Instant::now();
    let mut msg = Vec::new();
    loop {
        let left = CHILD_LIMIT.saturating_sub(start.elapsed());
        if left.is_zero() {
            // SAFETY: signals our own child, which we have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return (msg, true);
        }
        let mut pfd = libc::pollfd {
            fd: r,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 64];
        // SAFETY: reads into a local buffer of its size.
        let got = unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) };
        match got {
            0 => return (msg, false),
            n if n > 0 => msg.extend_from_slice(&buf[..n as usize]),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return (msg, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_byte_is_read_and_an_unmapped_one_kills_the_child() {
        let word = 0x8877_6655_4433_2211_u64;
        assert_eq!(
            read_in_child((&raw const word).cast()).unwrap(),
            ReadAttempt::Read(word.to_le_bytes())
        );
        // SAFETY: mapping one inaccessible page to fault on; unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let out = read_in_child(p.cast()).unwrap();
        // SAFETY: the page mapped above.
        unsafe { libc::munmap(p, 4096) };
        assert_eq!(
            out,
            ReadAttempt::Killed {
                signal: libc::SIGSEGV,
                code: Some(2),
                addr: Some(p as u64)
            }
        );
        assert_eq!(out.to_string(), "was killed by SIGSEGV (SEGV_ACCERR)");
        assert!(out.is_stage2_refusal());
        assert!(
            !ReadAttempt::Killed {
                signal: libc::SIGBUS,
                code: Some(2),
                addr: None
            }
            .is_stage2_refusal()
        );
        assert!(!ReadAttempt::Stuck.is_stage2_refusal());
    }
}
