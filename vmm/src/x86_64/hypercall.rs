//! `KVM_HC_MAP_GPA_RANGE` exits (docs/design.md §4): decoding, the checks KVM
//! leaves to the VMM, and the page-state change. Pure logic, so the parts
//! that cannot run on this host's /dev/kvm (it spins on vmcall) are
//! unit-tested here.

use convtest_proto::map_gpa::{ATTR_ENC_STATUS, ATTR_PAGE_SZ_1G, KVM_HC_MAP_GPA_RANGE, PAGE_4K};
use convtest_proto::range::MemRange;
use convtest_proto::tracker::Target;

use super::pagemap::PageMap;

/// Returned to the guest in rax.
pub const RET_OK: u64 = 0;
/// `--vmm-fault deny`.
pub const RET_EPERM: u64 = (-1i64) as u64;
/// A host operation failed while serving the request (the VMM says which
/// in a `serve_error=` fact).
pub const RET_EIO: u64 = (-5i64) as u64;
/// `--vmm-fault partial`: part of the range was converted.
pub const RET_EAGAIN: u64 = (-11i64) as u64;
pub const RET_EINVAL: u64 = (-22i64) as u64;
pub const RET_ENOSYS: u64 = (-1000i64) as u64;
/// `--vmm-fault garbage`: neither 0 nor a negative errno.
pub const RET_GARBAGE: u64 = 0x1_0000_0000;
/// Every value this VMM ever puts in the guest's rax.
pub const ANSWERS: [u64; 7] = [
    RET_OK,
    RET_EPERM,
    RET_EIO,
    RET_EAGAIN,
    RET_EINVAL,
    RET_ENOSYS,
    RET_GARBAGE,
];

/// Attribute bits a guest may set: page-size hint (0..3) and bit 4.
const ATTR_KNOWN: u64 = 0xf | ATTR_ENC_STATUS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    UnknownCall(u64),
    ZeroPages,
    Unaligned(u64),
    Overflow,
    BadAttrs(u64),
    OutsideRam(MemRange),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub range: MemRange,
    pub state: Target,
}

/// Decodes one exit's `nr` and `args[0..3]` (gpa, npages, attrs).
pub fn decode(nr: u64, args: [u64; 3]) -> Result<Request, Rejected> {
    let [gpa, npages, attrs] = args;
    if nr != KVM_HC_MAP_GPA_RANGE {
        return Err(Rejected::UnknownCall(nr));
    }
    if npages == 0 {
        return Err(Rejected::ZeroPages);
    }
    if gpa % PAGE_4K != 0 {
        return Err(Rejected::Unaligned(gpa));
    }
    if attrs & !ATTR_KNOWN != 0 || attrs & 0xf > ATTR_PAGE_SZ_1G {
        return Err(Rejected::BadAttrs(attrs));
    }
    let len = npages.checked_mul(PAGE_4K).ok_or(Rejected::Overflow)?;
    let end = gpa.checked_add(len).ok_or(Rejected::Overflow)?;
    let state = if attrs & ATTR_ENC_STATUS != 0 {
        Target::Private
    } else {
        Target::Shared
    };
    Ok(Request {
        range: MemRange::new(gpa, end),
        state,
    })
}

/// Checks one exit against the tracked RAM: the request to carry out, or
/// the value for the guest's rax and why. A bad request is the guest's
/// problem, never the VMM's end.
pub fn check(nr: u64, args: [u64; 3], pages: &PageMap) -> Result<Request, (u64, Rejected)> {
    let req = decode(nr, args).map_err(|e| match e {
        Rejected::UnknownCall(_) => (RET_ENOSYS, e),
        _ => (RET_EINVAL, e),
    })?;
    if !pages.is_ram(&req.range) {
        return Err((RET_EINVAL, Rejected::OutsideRam(req.range)));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use convtest_proto::range::RangeList;
    use convtest_proto::tracker::PageState;

    const MIB: u64 = 1 << 20;

    /// check() and, when it accepts, the state change the VMM then makes.
    fn serve(nr: u64, args: [u64; 3], p: &mut PageMap) -> (u64, Result<Request, Rejected>) {
        match check(nr, args, p) {
            Ok(req) => {
                p.set(req.range, req.state);
                (RET_OK, Ok(req))
            }
            Err((ret, why)) => (ret, Err(why)),
        }
    }

    fn pages() -> PageMap {
        let mut ram = RangeList::new();
        ram.push(MemRange::new(0, 0xa0000)).unwrap();
        ram.push(MemRange::new(MIB, 64 * MIB)).unwrap();
        PageMap::new(&ram, 64 * MIB)
    }

    #[test]
    fn converts_to_shared_and_back() {
        let mut p = pages();
        let (ret, req) = serve(12, [2 * MIB, 16, 0], &mut p);
        assert_eq!(ret, RET_OK);
        assert_eq!(
            req.unwrap().range,
            MemRange::new(2 * MIB, 2 * MIB + 16 * PAGE_4K)
        );
        assert_eq!(p.state(2 * MIB + 15 * PAGE_4K), Some(PageState::Shared));
        assert_eq!(p.state(2 * MIB + 16 * PAGE_4K), Some(PageState::Private));
        let (ret, _) = serve(12, [2 * MIB, 16, ATTR_ENC_STATUS], &mut p);
        assert_eq!(ret, RET_OK);
        assert_eq!(p.state(2 * MIB), Some(PageState::Private));
    }

    #[test]
    fn rejects_bad_requests_with_einval_and_keeps_state() {
        let mut p = pages();
        let before = p.count(PageState::Shared);
        for (args, why) in [
            ([MIB, 0, 0], Rejected::ZeroPages),
            ([MIB + 8, 1, 0], Rejected::Unaligned(MIB + 8)),
            ([MIB, u64::MAX, 0], Rejected::Overflow),
            ([u64::MAX - 0xfff, 2, 0], Rejected::Overflow),
            ([MIB, 1, 0x20], Rejected::BadAttrs(0x20)),
            ([MIB, 1, 3], Rejected::BadAttrs(3)),
            (
                [64 * MIB - PAGE_4K, 2, 0],
                Rejected::OutsideRam(MemRange::new(64 * MIB - PAGE_4K, 64 * MIB + PAGE_4K)),
            ),
            (
                [0xa0000, 1, 0],
                Rejected::OutsideRam(MemRange::new(0xa0000, 0xa1000)),
            ),
        ] {
            let (ret, got) = serve(12, args, &mut p);
            assert_eq!(ret, RET_EINVAL, "{args:x?}");
            assert_eq!(got, Err(why), "{args:x?}");
        }
        assert_eq!(p.count(PageState::Shared), before);
    }

    #[test]
    fn unknown_call_is_enosys() {
        let mut p = pages();
        assert_eq!(serve(99, [MIB, 1, 0], &mut p).0, RET_ENOSYS);
    }
}
