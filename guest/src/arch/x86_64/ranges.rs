//! Building the boot range lists: loaders report overlapping or touching
//! pieces (structures inside low memory, a kernel inside a bootloader
//! region), while `BootInfo` promises disjoint ranges.

use convtest_proto::range::{MemRange, RangeError, RangeList};

/// Adds `r` to `list`, merged with every range it overlaps or touches.
pub fn merge_in(list: &mut RangeList, r: MemRange) -> Result<(), RangeError> {
    if r.is_empty() {
        return Ok(());
    }
    let mut merged = r;
    let mut rest = RangeList::new();
    for x in list.iter() {
        if x.start <= merged.end && merged.start <= x.end {
            merged = MemRange::new(merged.start.min(x.start), merged.end.max(x.end));
        } else {
            rest.push(*x)?;
        }
    }
    rest.push(merged)?;
    rest.sort();
    *list = rest;
    Ok(())
}
