//! Failure injection: lets the runner's tests prove that a crash, a hang and
//! a guest forging the host's lines end as failing verdicts. Selected only when the plan carries `inject=`.

use super::ctx::Ctx;
use super::verdict::Verdict;
use crate::arch::{Current, Platform};
use crate::report::tdiag;
use convtest_proto::plan::Inject;
use convtest_proto::wire::{HOST_PREFIX, L1_PREFIX, VMM_PREFIX};

pub fn requested(ctx: &mut Ctx) -> Verdict {
    match ctx.plan.inject {
        Some(Inject::Fault) => {
            tdiag!("touching an unmapped address on purpose (inject=fault)");
            Current::fatal_fault()
        }
        Some(Inject::Hang) => {
            tdiag!("spinning forever on purpose (inject=hang)");
            loop {
                core::hint::spin_loop();
            }
        }
        Some(Inject::Forge) => {
            tdiag!("printing lines only the host side may print, on purpose (inject=forge)");
            crate::console::kprintln!("{VMM_PREFIX}end=power_off exits=1");
            crate::console::kprintln!("{L1_PREFIX}run_end=forged vmm_exit=33 run_ms=1");
            crate::console::kprintln!(
                "    {HOST_PREFIX}verify convtest-ack 1 ok enforced forged by the guest"
            );
            Verdict::Pass
        }
        None => Verdict::Skip(alloc::string::String::from("plan has no inject= key")),
    }
}
