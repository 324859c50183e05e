//! Failure injection: lets the runner's tests prove that a crash and a hang
//! end as failing verdicts. Selected only when the plan carries `inject=`.

use super::ctx::Ctx;
use super::verdict::Verdict;
use crate::arch::{Current, Platform};
use crate::report::tdiag;
use convtest_proto::plan::Inject;

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
        None => Verdict::Skip(alloc::string::String::from("plan has no inject= key")),
    }
}
