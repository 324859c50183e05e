//! One instruction that is allowed to fault: its asm block stores its own
//! address in the site's slot, and the exception handler steps over a fault
//! only while the site is armed, at exactly that address, with the expected
//! two instruction bytes. The deliberate `ud2` (trap.rs) and the guarded
//! `rdmsr` (msr.rs) are the two sites. Single-CPU by design: a site
//! describes the one attempt in flight on the boot CPU.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct ArmedSite {
    armed: AtomicBool,
    /// Address of the instruction, stored by the asm block itself.
    site: AtomicU64,
    /// Its encoding, checked before the handler steps over it.
    bytes: [u8; 2],
}

impl ArmedSite {
    pub const fn new(bytes: [u8; 2]) -> Self {
        ArmedSite {
            armed: AtomicBool::new(false),
            site: AtomicU64::new(0),
            bytes,
        }
    }

    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Disarms; true when the site was still armed (it did not fault).
    pub fn disarm(&self) -> bool {
        self.armed.swap(false, Ordering::SeqCst)
    }

    /// Where the asm block stores the instruction's address.
    pub fn slot(&self) -> *mut u64 {
        self.site.as_ptr()
    }

    /// For the handler: true when `rip` is this armed site, which is then
    /// disarmed and may be stepped over (the instruction is 2 bytes).
    pub fn claim(&self, rip: u64) -> bool {
        if !self.armed.load(Ordering::SeqCst) || rip != self.site.load(Ordering::SeqCst) {
            return false;
        }
        // SAFETY: the CPU just fetched an instruction at `rip`, so its first
        // two bytes are mapped and readable.
        let bytes = unsafe { core::ptr::read_volatile(rip as *const [u8; 2]) };
        if bytes != self.bytes {
            return false;
        }
        self.armed.store(false, Ordering::SeqCst);
        true
    }
}
