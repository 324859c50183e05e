//! Ending the run (PSCI SYSTEM_OFF) and the reset into the next boot of a
//! series (PSCI SYSTEM_RESET), with what that next boot must find in memory.

use super::psci;
use convtest_proto::range::MemRange;
use core::sync::atomic::{AtomicU64, Ordering};

/// The Image and the DTB the loader passed (start, bytes each), for `reboot`
/// to clean. Zero (in .bss) until boot_main records them.
static IMAGE: AtomicU64 = AtomicU64::new(0);
static IMAGE_LEN: AtomicU64 = AtomicU64::new(0);
static DTB: AtomicU64 = AtomicU64::new(0);
static DTB_LEN: AtomicU64 = AtomicU64::new(0);

/// What a reset must leave readable for the next boot: called once by
/// boot_main.
pub fn keep_for_reboot(image: MemRange, dtb: MemRange) {
    IMAGE.store(image.start, Ordering::SeqCst);
    IMAGE_LEN.store(image.len(), Ordering::SeqCst);
    DTB.store(dtb.start, Ordering::SeqCst);
    DTB_LEN.store(dtb.len(), Ordering::SeqCst);
}

/// PSCI SYSTEM_OFF carries no status (QEMU exits 0 either way): the verdict
/// is read from the KTAP stream, so `success` changes nothing here.
pub fn power_off(_success: bool) -> ! {
    psci::system_off();
    psci::halt()
}

/// PSCI SYSTEM_RESET. The next boot re-enters this Image with the MMU and
/// caches off: under pKVM `keep` the VMM cannot reload it (the pages are the
/// protected guest's), so boot N+1 runs the very bytes boot N leaves, and
/// reads them — and the DTB — from memory. `psci::system_reset` cleans both
/// to the point of coherency on the way out. What the next boot must still
/// find elsewhere in RAM (a boot record, canaries) its owner cleans first
/// with `Platform::clean_dcache`.
///
/// Re-entry is safe because the entry code zeroes .bss (the page-table pool,
/// the stack and every static that starts zero: `Once`, atomics, the MMU's
/// "enabled" flag), relocation writes `base + addend` (the same value on
/// every run). A static with a non-zero initial value (in .data) that code
/// changes would start the next boot with the old boot's value: keep
/// mutable statics zero-initialised.
pub fn reboot() -> ! {
    let image = MemRange::from_len(
        IMAGE.load(Ordering::SeqCst),
        IMAGE_LEN.load(Ordering::SeqCst),
    );
    let dtb = MemRange::from_len(DTB.load(Ordering::SeqCst), DTB_LEN.load(Ordering::SeqCst));
    psci::system_reset([image, dtb]);
    psci::halt()
}
