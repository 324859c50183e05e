//! Exception round trip: a deliberate #UD / BRK must reach the handler and
//! execution must resume right after the trapping instruction.

use super::ctx::Ctx;
use super::verdict::{Verdict, fail};
use crate::arch::{Current, Platform, TrapError};
use crate::report::tdiag;

const ROUNDS: usize = 3;

pub fn trap_roundtrip(_ctx: &mut Ctx) -> Verdict {
    let mut first_pc = None;
    for round in 0..ROUNDS {
        match Current::trap_roundtrip() {
            Ok(t) => {
                tdiag!(
                    "round {round}: caught {} (kind {:#x}) at pc {:#x}, resumed",
                    t.name,
                    t.kind,
                    t.pc
                );
                if t.pc == 0 {
                    return fail!("round {round}: handler reported pc 0 for {}", t.name);
                }
                // The same instruction traps each time: a moving pc means the
                // handler saw stale or wrong state.
                if *first_pc.get_or_insert(t.pc) != t.pc {
                    return fail!(
                        "round {round}: trap pc {:#x} differs from round 0's {:#x}",
                        t.pc,
                        first_pc.unwrap_or(0)
                    );
                }
            }
            Err(TrapError::NotTaken) => {
                return fail!("round {round}: the trap instruction did not reach the handler");
            }
            Err(TrapError::Unexpected { kind, pc }) => {
                return fail!(
                    "round {round}: expected the deliberate trap, handler saw kind {kind:#x} at pc {pc:#x}"
                );
            }
        }
    }
    Verdict::Pass
}
