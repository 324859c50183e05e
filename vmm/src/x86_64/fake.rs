//! A [`Platform`] for tests: KVM's attribute array as a bitmap keyed by
//! gfn (like KVM's own xarray), a sparse host mapping, a log of the
//! operations of the current request, optional injected failures, and a
//! list of contract violations (a range that crosses a slot, an attribute
//! change outside the guest_memfd slot) the property test insists stay
//! empty. Deliberately simple — one page at a time — so it is an
//! independent check of the word-at-a-time model. How the real platform
//! registers its slots (KVM_SET_USER_MEMORY_REGION on kernels without
//! REGION2, or REGION2) is not modelled: it changes none of these
//! operations, only the ioctl that makes the same anonymous slot.

use super::memory::Mode;
use super::platform::{
    CALL_DISCARD, CALL_PUNCH, CALL_READ, CALL_SET_ATTRIBUTES, Platform, PlatformError,
};
use convtest_proto::map_gpa::PAGE_4K;
use convtest_proto::prng::SplitMix64;
use convtest_proto::range::MemRange;
use convtest_proto::tracker::Target;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    SetAttributes(MemRange, Target),
    Punch(MemRange),
    Discard(MemRange),
}

pub struct FakePlatform {
    /// Host-mapped slots, as the real VMM registers them.
    pub regions: Vec<MemRange>,
    pub gmem: Option<MemRange>,
    /// Emulated gmem-mmap: the guest_memfd is the host mapping itself.
    gmem_mapped: bool,
    /// Bit g set = gfn g has KVM_MEMORY_ATTRIBUTE_PRIVATE.
    pub private: Vec<u64>,
    /// Host mapping bytes, page by page; absent = zero.
    mem: BTreeMap<u64, Vec<u8>>,
    /// Operations since the last `take_ops`.
    pub ops: Vec<Op>,
    /// One call in `n` fails (0 = never), drawn from `rng`.
    fail_one_in: u64,
    rng: SplitMix64,
    pub injected: u64,
    pub violations: Vec<String>,
}

impl FakePlatform {
    pub fn new(mode: Mode, size: u64) -> Self {
        let (regions, gmem) = match mode {
            Mode::SwProtected { boot_end } => (
                vec![MemRange::new(0, boot_end), MemRange::new(boot_end, size)],
                Some(MemRange::new(boot_end, size)),
            ),
            Mode::EmulatedPrivate { gmem_mmap } => (
                vec![MemRange::new(0, size)],
                gmem_mmap.then_some(MemRange::new(0, size)),
            ),
        };
        FakePlatform {
            regions,
            gmem,
            gmem_mapped: matches!(mode, Mode::EmulatedPrivate { gmem_mmap: true }),
            private: vec![0; (size / PAGE_4K).div_ceil(64) as usize],
            mem: BTreeMap::new(),
            ops: Vec::new(),
            fail_one_in: 0,
            rng: SplitMix64::new(0),
            injected: 0,
            violations: Vec::new(),
        }
    }

    /// From now on one call in `n` fails with a random errno.
    pub fn fail_one_in(&mut self, n: u64, seed: u64) {
        self.fail_one_in = n;
        self.rng = SplitMix64::new(seed);
    }

    pub fn take_ops(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.ops)
    }

    pub fn is_private(&self, gpa: u64) -> bool {
        let g = gpa / PAGE_4K;
        self.private[(g / 64) as usize] & (1 << (g % 64)) != 0
    }

    /// What the guest writing shared memory would leave in the host mapping.
    pub fn write(&mut self, gpa: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let a = gpa + i as u64;
            let page = self
                .mem
                .entry(a / PAGE_4K)
                .or_insert_with(|| vec![0; PAGE_4K as usize]);
            page[(a % PAGE_4K) as usize] = *b;
        }
    }

    fn inside_one_slot(&self, r: MemRange) -> bool {
        !r.is_empty()
            && r.start.is_multiple_of(PAGE_4K)
            && r.end.is_multiple_of(PAGE_4K)
            && self.regions.iter().any(|s| s.covers(&r))
    }

    fn check(&mut self, call: &'static str, r: MemRange, ok: bool) -> Result<(), PlatformError> {
        if !ok {
            self.violations.push(format!("{call} {r}"));
            return Err(PlatformError::Bounds { call, range: r });
        }
        if self.fail_one_in != 0 && self.rng.below(self.fail_one_in) == 0 {
            self.injected += 1;
            let errno =
                [libc::ENOMEM, libc::EFAULT, libc::EINVAL, libc::EIO][self.rng.below(4) as usize];
            return Err(PlatformError::Os { call, errno });
        }
        Ok(())
    }
}

impl Platform for FakePlatform {
    fn set_attributes(&mut self, range: MemRange, to: Target) -> Result<(), PlatformError> {
        let ok = self.inside_one_slot(range) && self.gmem.is_some_and(|g| g.covers(&range));
        self.check(CALL_SET_ATTRIBUTES, range, ok)?;
        for g in range.start / PAGE_4K..range.end / PAGE_4K {
            let (w, bit) = ((g / 64) as usize, 1u64 << (g % 64));
            match to {
                Target::Private => self.private[w] |= bit,
                Target::Shared => self.private[w] &= !bit,
            }
        }
        self.ops.push(Op::SetAttributes(range, to));
        Ok(())
    }

    fn punch(&mut self, range: MemRange) -> Result<(), PlatformError> {
        let ok = self.inside_one_slot(range) && self.gmem.is_some_and(|g| g.covers(&range));
        self.check(CALL_PUNCH, range, ok)?;
        if self.gmem_mapped {
            self.drop_pages(range);
        }
        self.ops.push(Op::Punch(range));
        Ok(())
    }

    fn discard(&mut self, range: MemRange) -> Result<(), PlatformError> {
        let ok = self.inside_one_slot(range);
        self.check(CALL_DISCARD, range, ok)?;
        self.drop_pages(range);
        self.ops.push(Op::Discard(range));
        Ok(())
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), PlatformError> {
        let r = MemRange::from_len(gpa, buf.len() as u64);
        if !buf.is_empty() && !self.regions.iter().any(|s| s.covers(&r)) {
            return Err(PlatformError::Bounds {
                call: CALL_READ,
                range: r,
            });
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let a = gpa + i as u64;
            *b = self
                .mem
                .get(&(a / PAGE_4K))
                .map_or(0, |p| p[(a % PAGE_4K) as usize]);
        }
        Ok(())
    }
}

impl FakePlatform {
    fn drop_pages(&mut self, range: MemRange) {
        if self.mem.is_empty() {
            return;
        }
        let mut tail = self.mem.split_off(&(range.start / PAGE_4K));
        let mut rest = tail.split_off(&(range.end / PAGE_4K));
        self.mem.append(&mut rest);
    }
}
