//! The host's view of x86 guest RAM for the host checks, with the evidence
//! each answer rests on:
//! - sw-protected, guest_memfd slot: the host reads the anonymous mapping
//!   behind the slot, which is where KVM routes the guest's *shared* GPAs
//!   (private ones go to the guest_memfd, which has no host mapping). What
//!   the host sees there was decided by KVM: `enforced`.
//! - sw-protected boot slot, and all emulated-private RAM: one ordinary
//!   mapping; only the VMM's record says what is private, so reads are
//!   gated by it and every answer is `bookkeeping`.

use super::super::hostcheck::{HostView, Look, holds_canary};
use super::memory::{GuestRam, Part};
use super::platform::Platform;
use convtest_proto::hostcheck::Evidence;
use convtest_proto::map_gpa::PAGE_4K;
use convtest_proto::range::MemRange;
use convtest_proto::tracker::PageState;

/// Probe reads in pieces this big (bounded buffers).
const CHUNK: u64 = 1 << 20;
/// The guest skips ack lines longer than proto's LINE_MAX (512): keep the
/// detail well inside it, whatever the prefixes add.
const DETAIL_MAX: usize = 360;

fn clip(mut s: String) -> String {
    if s.len() > DETAIL_MAX {
        let mut cut = DETAIL_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

impl<P: Platform> GuestRam<P> {
    /// Why the VMM's record does not let the host read `piece` (boot slot
    /// or emulated RAM): the first page that is not RAM or not shared.
    fn tracked_gate(&self, piece: MemRange) -> Result<(), String> {
        let pages = piece.align_outward(PAGE_4K);
        let Some(ram) = self.pages.ram().find(|r| r.contains(pages.start)) else {
            return Err(format!("{:#x} is not guest RAM", pages.start));
        };
        if pages.end > ram.end {
            return Err(format!("{:#x} is not guest RAM", ram.end));
        }
        match self.pages.runs(pages, PageState::Private).first() {
            Some(p) => Err(format!(
                "page {:#x} is private in the VMM's tracking; the VMM does not touch it",
                p.start
            )),
            None => Ok(()),
        }
    }

    /// The first word of the host mapping of `piece` that holds `canary`.
    fn find_canary(&self, piece: MemRange, canary: u64) -> Result<Option<u64>, String> {
        let mut buf = Vec::new();
        let mut at = piece.start;
        while at < piece.end {
            let n = (piece.end - at).min(CHUNK);
            buf.resize(n as usize, 0);
            self.platform()
                .read(at, &mut buf)
                .map_err(|e| e.to_string())?;
            if let Some(off) = holds_canary(&buf, canary) {
                return Ok(Some(at + off as u64));
            }
            at += n;
        }
        Ok(None)
    }

    fn probe_gmem(&self, piece: MemRange, canary: u64) -> Result<Look, Look> {
        let enforced = |s: String| Look::new(Evidence::Enforced, s);
        match self.find_canary(piece, canary) {
            Err(e) => Err(enforced(format!("cannot read the host mapping: {e}"))),
            Ok(Some(at)) => {
                let kvm = match self.pages.state(at) {
                    Some(PageState::Shared) => "shared",
                    _ => "private",
                };
                Err(enforced(format!(
                    "the host's mapping holds the guest's canary at {at:#x} (KVM has the page \
                     {kvm})"
                )))
            }
            Ok(None) => Ok(enforced(format!(
                "the guest's canary is absent from the host's mapping of {piece} (KVM keeps the \
                 private pages in guest_memfd)"
            ))),
        }
    }

    fn probe_tracked(&self, piece: MemRange, canary: u64) -> Result<Look, Look> {
        let book = |s: String| Look::new(Evidence::Bookkeeping, s);
        let seen = match self.find_canary(piece, canary) {
            Ok(Some(at)) => format!("the canary is there, at {at:#x}"),
            Ok(None) => "the canary is not".into(),
            Err(e) => format!("unreadable: {e}"),
        };
        match self
            .pages
            .runs(piece.align_outward(PAGE_4K), PageState::Shared)
            .first()
        {
            Some(p) => Err(book(format!(
                "page {:#x} is shared in the VMM's tracking: the host reads it ({seen})",
                p.start
            ))),
            None => Ok(book(format!(
                "{piece} is private in the VMM's tracking only: the bytes are in the host's \
                 mapping ({seen})"
            ))),
        }
    }
}

impl<P: Platform> HostView for GuestRam<P> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<Evidence, Look> {
        let book = |s: String| Look::new(Evidence::Bookkeeping, s);
        let Some(end) = gpa
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
        else {
            return Err(book(format!("{gpa:#x}+{:#x} is not guest RAM", buf.len())));
        };
        let range = MemRange::new(gpa, end);
        let mut evidence = Evidence::Enforced;
        for (piece, part) in self.pieces(range) {
            match part {
                Part::Gmem => {}
                Part::Tracked => {
                    self.tracked_gate(piece).map_err(book)?;
                    evidence = Evidence::Bookkeeping;
                }
            }
        }
        self.read_host(gpa, buf)
            .map_err(|e| Look::new(evidence, e.to_string()))?;
        Ok(if range.is_empty() {
            Evidence::Bookkeeping
        } else {
            evidence
        })
    }

    /// sw-protected: the whole host mapping of the guest_memfd slot plus the
    /// boot-slot pages the record calls shared — `enforced`, because KVM
    /// decides what lands in the slot's mapping. Skipping the boot slot's
    /// private pages is acceptable: the tests never place canaries there
    /// (their buffers come from the guest_memfd part), and the guest's own
    /// stack and heap live there, so scanning them would find the guest's
    /// copies of its canaries — false hits, not leaks. emulated-private:
    /// the pages the record calls shared — `bookkeeping`.
    fn visible(&self) -> (Vec<MemRange>, Evidence) {
        let gmem = self.gmem_slot();
        let mut out: Vec<MemRange> = Vec::new();
        for ram in self.pages.ram() {
            let tracked = match gmem {
                Some(g) => MemRange::new(ram.start, ram.end.min(g.start)),
                None => ram,
            };
            if !tracked.is_empty() {
                out.extend(self.pages.runs(tracked, PageState::Shared));
            }
        }
        match gmem {
            Some(g) => {
                match out.last_mut() {
                    Some(last) if last.end == g.start => last.end = g.end,
                    _ => out.push(g),
                }
                (out, Evidence::Enforced)
            }
            None => (out, Evidence::Bookkeeping),
        }
    }

    fn private_probe(&self, range: MemRange, canary: u64) -> Result<Look, Look> {
        if range.is_empty() || !self.pages.is_ram(&range.align_outward(PAGE_4K)) {
            return Err(Look::new(
                Evidence::Bookkeeping,
                format!("{range} is not guest RAM: nothing to probe"),
            ));
        }
        let mut evidence = Evidence::Enforced;
        let mut details = Vec::new();
        for (piece, part) in self.pieces(range) {
            let look = match part {
                Part::Gmem => self.probe_gmem(piece, canary),
                Part::Tracked => self.probe_tracked(piece, canary),
            }
            .map_err(|l| Look::new(l.evidence, clip(l.detail)))?;
            evidence = evidence.weakest(look.evidence);
            details.push(look.detail);
        }
        Ok(Look::new(evidence, clip(details.join("; "))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakePlatform;
    use super::super::faults::Faults;
    use super::super::memory::Mode;
    use super::super::serve::serve;
    use super::*;
    use crate::config::VmmFault;
    use crate::hostcheck::answer;
    use convtest_proto::hostcheck::Request;
    use convtest_proto::map_gpa::ATTR_ENC_STATUS;
    use convtest_proto::plan::Content;

    const MIB: u64 = 1 << 20;
    const CANARY: u64 = 0x00c0_ffee_5eed_0001;

    fn ram(mode: Mode, content: Content) -> GuestRam<FakePlatform> {
        GuestRam::init(FakePlatform::new(mode, 8 * MIB), 8 * MIB, mode, content).unwrap()
    }

    /// What the guest's store of the canary leaves in the host mapping:
    /// sw-protected routes it by KVM's attributes, emulated has one mapping.
    fn guest_writes_canary(r: &mut GuestRam<FakePlatform>, range: MemRange) {
        let gmem = r.gmem_slot();
        for pa in (range.start..range.end).step_by(8) {
            let to_host = match gmem {
                Some(g) if g.contains(pa) => !r.platform().is_private(pa),
                _ => true,
            };
            if to_host {
                r.platform_mut().write(pa, &CANARY.to_le_bytes());
            }
        }
    }

    fn noread(r: &GuestRam<FakePlatform>, range: MemRange) -> crate::hostcheck::Answer {
        answer(
            &Request::NoRead {
                range,
                canary: CANARY,
            },
            r,
        )
    }

    #[test]
    fn the_sw_protected_probe_tells_shared_from_private_in_one_run() {
        let mut r = ram(Mode::SwProtected { boot_end: 2 * MIB }, Content::Zero);
        let shared = MemRange::new(3 * MIB, 3 * MIB + PAGE_4K);
        let private = MemRange::new(4 * MIB, 4 * MIB + PAGE_4K);
        serve(&mut r, &Faults::default(), 12, [shared.start, 1, 0]);
        guest_writes_canary(&mut r, shared);
        guest_writes_canary(&mut r, private);
        let a = noread(&r, shared);
        assert!(
            !a.ok && a.evidence == Evidence::Enforced,
            "positive control: {a:?}"
        );
        let a = noread(&r, private);
        assert!(a.ok && a.evidence == Evidence::Enforced, "{a:?}");
        assert!(a.detail.contains("guest_memfd"), "{a:?}");
    }

    #[test]
    fn a_leaking_vmm_is_caught_with_enforced_evidence() {
        let mut r = ram(Mode::SwProtected { boot_end: 2 * MIB }, Content::Zero);
        let range = MemRange::new(3 * MIB, 3 * MIB + PAGE_4K);
        serve(&mut r, &Faults::default(), 12, [range.start, 1, 0]);
        let leak = Faults::new(&[VmmFault::Leak]).unwrap();
        let s = serve(&mut r, &leak, 12, [range.start, 1, ATTR_ENC_STATUS]);
        assert_eq!(s.ret, 0, "the guest is told it is private");
        guest_writes_canary(&mut r, range);
        let a = noread(&r, range);
        assert!(!a.ok && a.evidence == Evidence::Enforced, "{a:?}");
        let scan = answer(&Request::Scan { canary: CANARY }, &r);
        assert!(!scan.ok && scan.evidence == Evidence::Enforced, "{scan:?}");
    }

    #[test]
    fn tracked_memory_answers_with_bookkeeping_and_says_so() {
        for mode in [
            Mode::EmulatedPrivate { gmem_mmap: false },
            Mode::SwProtected { boot_end: 4 * MIB },
        ] {
            let mut r = ram(mode, Content::Zero);
            let private = MemRange::new(3 * MIB, 3 * MIB + PAGE_4K);
            guest_writes_canary(&mut r, private);
            let a = noread(&r, private);
            assert!(
                a.ok && a.evidence == Evidence::Bookkeeping,
                "{mode:?}: {a:?}"
            );
            assert!(a.detail.contains("tracking only") && a.detail.contains("canary is there"));
            let mut buf = [0u8; 8];
            let refused = r.read(private.start, &mut buf).unwrap_err();
            assert_eq!(refused.evidence, Evidence::Bookkeeping);
            serve(&mut r, &Faults::default(), 12, [private.start, 1, 0]);
            assert_eq!(r.read(private.start, &mut buf), Ok(Evidence::Bookkeeping));
            guest_writes_canary(&mut r, private);
            let a = noread(&r, private);
            assert!(!a.ok && a.evidence == Evidence::Bookkeeping, "{a:?}");
        }
    }

    #[test]
    fn visible_memory_and_its_evidence() {
        let mut r = ram(Mode::SwProtected { boot_end: 2 * MIB }, Content::Zero);
        serve(&mut r, &Faults::default(), 12, [MIB, 2, 0]);
        serve(&mut r, &Faults::default(), 12, [2 * MIB - PAGE_4K, 1, 0]);
        let (v, e) = r.visible();
        assert_eq!(e, Evidence::Enforced);
        assert_eq!(
            v,
            [
                MemRange::new(MIB, MIB + 2 * PAGE_4K),
                MemRange::new(2 * MIB - PAGE_4K, 8 * MIB)
            ]
        );
        let mut em = ram(Mode::EmulatedPrivate { gmem_mmap: true }, Content::Preserve);
        assert_eq!(em.visible(), (vec![], Evidence::Bookkeeping));
        serve(&mut em, &Faults::default(), 12, [0x9f000, 1, 0]);
        assert_eq!(em.visible().0, [MemRange::new(0x9f000, 0xa0000)]);
    }

    #[test]
    fn reads_across_the_boundary_take_the_weaker_evidence_and_bad_ranges_fail() {
        let mut r = ram(Mode::SwProtected { boot_end: 2 * MIB }, Content::Zero);
        let mut buf = vec![0u8; 2 * PAGE_4K as usize];
        assert!(
            r.read(2 * MIB - PAGE_4K, &mut buf).is_err(),
            "boot page private"
        );
        serve(&mut r, &Faults::default(), 12, [2 * MIB - PAGE_4K, 1, 0]);
        assert_eq!(
            r.read(2 * MIB - PAGE_4K, &mut buf),
            Ok(Evidence::Bookkeeping)
        );
        assert_eq!(r.read(3 * MIB, &mut buf), Ok(Evidence::Enforced));
        assert!(r.read(8 * MIB - PAGE_4K, &mut buf).is_err(), "past the end");
        assert!(r.read(u64::MAX - 4, &mut buf).is_err(), "overflow");
        assert!(r.read(0xa0000, &mut buf).is_err(), "low hole");
        let a = noread(&r, MemRange::new(8 * MIB, 9 * MIB));
        assert!(!a.ok && a.detail.contains("not guest RAM"), "{a:?}");
    }
}
