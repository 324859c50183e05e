//! Conversion tests. They need a `Converter`; without one each is listed and
//! skipped with what the hypervisor probe found.

use super::{Ctx, Verdict};
use crate::fail;
use alloc::string::ToString;

pub fn run(name: &str, ctx: &mut Ctx) -> Verdict {
    match &ctx.converter {
        Err(none) => Verdict::Skip(none.to_string()),
        // detect() returns a backend only once one exists for the ABI found;
        // a backend without these tests must fail, not pass silently.
        Ok(c) => fail!(
            "{name}: backend {} is present but this test is not implemented for it",
            c.name()
        ),
    }
}
