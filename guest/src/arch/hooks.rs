//! How the arch layer reaches the kernel above it without naming it:
//!
//! - the boot entry: each entry path ends in [`enter_kernel`], which calls
//!   the function `main.rs` binds with [`kernel_main!`] (at link time: the
//!   entry code runs before anything could register it);
//! - the crash path: [`fatal`] calls the handler the kernel registered
//!   (`Platform::set_fatal_handler`), or until then the arch's own early
//!   one ([`set_early_fatal`]), which prints the crash line itself.

use crate::boot::BootInfo;
use core::fmt;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Ends the run: names `what` on the console and powers off with failure.
pub type FatalHandler = fn(fmt::Arguments<'_>) -> !;

/// The arch entry's own, registered first thing at boot, and the kernel's,
/// registered before `kmain`: a `FatalHandler` as a pointer, or null.
/// Plain atomic loads and stores, no read-modify-write: arm64 registers its
/// handler with the MMU off, where exclusive accesses are not allowed.
static EARLY: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static KERNEL: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

pub fn set_early_fatal(handler: FatalHandler) {
    EARLY.store(handler as *mut (), Ordering::Release);
}

pub fn set_fatal_handler(handler: FatalHandler) {
    KERNEL.store(handler as *mut (), Ordering::Release);
}

fn handler(slot: &AtomicPtr<()>) -> Option<FatalHandler> {
    let p = slot.load(Ordering::Acquire);
    // SAFETY: the slots hold null or a `FatalHandler` cast to a pointer (the
    // setters above), and a function pointer is pointer-sized on every
    // target this kernel builds for, so the cast back is the same value.
    (!p.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), FatalHandler>(p) })
}

/// Ends the run from inside the arch layer: an unexpected exception, a
/// platform call that trapped, a boot structure that cannot be used.
pub fn fatal(what: fmt::Arguments<'_>) -> ! {
    if let Some(h) = handler(&KERNEL).or_else(|| handler(&EARLY)) {
        h(what)
    }
    // Before the entry registered anything there is no console to say it on.
    loop {
        core::hint::spin_loop();
    }
}

unsafe extern "Rust" {
    /// The kernel's main, defined in `main.rs` by [`kernel_main!`].
    fn convtest_kernel_main(boot: &'static BootInfo) -> !;
}

/// Hands the boot CPU to the kernel: the last act of every entry path, on
/// the boot stack, once the entry built `boot`.
pub fn enter_kernel(boot: &'static BootInfo) -> ! {
    // SAFETY: `kernel_main!`, expanded once in main.rs, defines
    // `convtest_kernel_main` with exactly the signature declared above; it
    // is plain Rust code with no precondition beyond its argument's type.
    unsafe { convtest_kernel_main(boot) }
}

/// Binds `$main` (a `fn(&'static BootInfo) -> !`) as the function every boot
/// entry hands over to ([`enter_kernel`]). Expanded once, in `main.rs`.
macro_rules! kernel_main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn convtest_kernel_main(boot: &'static $crate::boot::BootInfo) -> ! {
            let main: fn(&'static $crate::boot::BootInfo) -> ! = $main;
            main(boot)
        }
    };
}
pub(crate) use kernel_main;
