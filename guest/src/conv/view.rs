//! Where the guest reaches memory while it is shared with the host. On KVM
//! and pKVM a shared page is the same page at the same address, so the
//! view is the kernel's own mapping; a TD reaches it through its alias
//! `gpa | shared bit`, an SEV-SNP guest through a mapping without the
//! C-bit — each a second mapping of RAM the converter asks the arch layer
//! for. The suites read and write shared memory only through this.

/// A mapping of all RAM for its shared state: address = pa + offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedView {
    offset: u64,
}

impl SharedView {
    #[cfg_attr(
        target_arch = "aarch64",
        expect(dead_code, reason = "pKVM shares a page at the address it had")
    )]
    /// The view whose addresses are `pa + offset` (the kernel's own mapping
    /// when `offset` is its physical-memory offset).
    pub const fn at_offset(offset: u64) -> SharedView {
        SharedView { offset }
    }

    /// Where the shared view of `pa` is.
    pub fn va(&self, pa: u64) -> *mut u8 {
        pa.wrapping_add(self.offset) as *mut u8
    }
}
