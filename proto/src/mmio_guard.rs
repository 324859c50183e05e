//! pKVM's MMIO guard: a protected guest names the MMIO granules it will use
//! and the hypervisor forwards only accesses to those; any other MMIO access
//! faults in the guest. Two numberings exist for the same idea, and the
//! guest must tell them apart from the KVM_FEATURES bitmap before it prints
//! a byte:
//!
//! - **Android** (the Android common kernels; AOSP's AVF
//!   `libs/libhypervisor_backends/src/hypervisor/kvm.rs`): MMIO_GUARD_INFO
//!   0xC6000005 (x0 = the guard's granule), MMIO_GUARD_ENROLL 0xC6000006
//!   (from then on unguarded MMIO faults), MMIO_GUARD_MAP 0xC6000007 (x1 =
//!   granule-aligned IPA), MMIO_GUARD_UNMAP 0xC6000008.
//! - **Upstream** (Linux `include/linux/arm-smccc.h`
//!   `ARM_SMCCC_KVM_FUNC_MMIO_GUARD` = 7, `Documentation/virt/kvm/arm/
//!   hypercalls.rst`): one call, 0xC6000007, x1 = base IPA of one region of
//!   the HYP_MEMINFO granule; no enrolment, no INFO. Functions 5 and 6 are
//!   reserved (`PKVM_RESV_5/6`) there. Linux 7.3 defines it and does not
//!   serve it (docs/design.md §4).
//!
//! Both map with function 7, so the bitmap's bit 7 says "offered" and bit 6
//! (ENROLL, reserved upstream) says "Android's". [`Guard`] is the state
//! machine the guest drives: it hands out one call at a time and takes its
//! x0, and [`Outcome`] is what the header reports.

use crate::range::MemRange;
use crate::smccc::kvm_feature_bit;
use core::fmt;

pub const MMIO_GUARD_INFO: u32 = 0xc600_0005;
pub const MMIO_GUARD_ENROLL: u32 = 0xc600_0006;
/// Android's MMIO_GUARD_MAP and upstream's MMIO_GUARD: the same id.
pub const MMIO_GUARD_MAP: u32 = 0xc600_0007;
pub const MMIO_GUARD_UNMAP: u32 = 0xc600_0008;

/// Which MMIO guard KVM_FEATURES advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// No KVM_FEATURES answer (not KVM), or bit 7 clear.
    NotOffered { features: Option<u64> },
    /// Bits 6 (ENROLL) and 7 (MAP): Android's four calls.
    Android,
    /// Bit 7 without bit 6: upstream's single call.
    Upstream,
}

impl Offer {
    pub fn of(features: Option<u64>) -> Offer {
        match features {
            Some(f) if f & kvm_feature_bit(MMIO_GUARD_MAP) != 0 => {
                if f & kvm_feature_bit(MMIO_GUARD_ENROLL) != 0 {
                    Offer::Android
                } else {
                    Offer::Upstream
                }
            }
            _ => Offer::NotOffered { features },
        }
    }
}

/// One call for the guest to make: function id and x1 (x2, x3 are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub fid: u32,
    pub x1: u64,
}

/// What happened, for the header's `mmio_guard=` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    NotOffered {
        features: Option<u64>,
    },
    /// Every granule of the device is mapped (Android: after enrolling).
    Mapped {
        android: bool,
        granule: u64,
        range: MemRange,
    },
    /// A call answered something other than success; the device was not
    /// (fully) mapped and the run goes on without the guarantee.
    Failed {
        android: bool,
        fid: u32,
        x0: i64,
    },
    /// Upstream's region size is HYP_MEMINFO's granule, and there was none.
    NoGranule,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = |android: bool| if android { "android" } else { "upstream" };
        match self {
            Outcome::NotOffered { features: None } => f.write_str("not-offered(no-kvm-features)"),
            Outcome::NotOffered {
                features: Some(bits),
            } => write!(f, "not-offered(kvm_features={bits:#x})"),
            Outcome::Mapped {
                android,
                granule,
                range,
            } => write!(
                f,
                "{}:{}mapped:{:#x}+{:#x}:granule:{granule}",
                which(*android),
                if *android { "enrolled," } else { "" },
                range.start,
                range.len()
            ),
            Outcome::Failed { android, fid, x0 } => {
                write!(f, "{}:failed:{}={x0}", which(*android), name(*fid))
            }
            Outcome::NoGranule => f.write_str("upstream:failed:no-hyp-meminfo-granule"),
        }
    }
}

pub fn name(fid: u32) -> &'static str {
    match fid {
        MMIO_GUARD_INFO => "MMIO_GUARD_INFO",
        MMIO_GUARD_ENROLL => "MMIO_GUARD_ENROLL",
        MMIO_GUARD_MAP => "MMIO_GUARD_MAP",
        MMIO_GUARD_UNMAP => "MMIO_GUARD_UNMAP",
        _ => "?",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Info,
    Enroll,
    /// Mapping the granule at this IPA.
    Map(u64),
    Done(Outcome),
}

/// The calls that put `device` behind the guard, one at a time: take
/// [`Guard::next`], make the call, give its x0 to [`Guard::answer`], until
/// `next` is `None`; then [`Guard::outcome`].
#[derive(Clone, Copy, Debug)]
pub struct Guard {
    android: bool,
    /// The guard's granule: HYP_MEMINFO's (upstream), INFO's (Android).
    granule: u64,
    device: MemRange,
    step: Step,
}

impl Guard {
    /// `meminfo`: HYP_MEMINFO's granule, if the probe had one.
    pub fn new(offer: Offer, meminfo: Option<u64>, device: MemRange) -> Guard {
        let (android, step) = match offer {
            Offer::NotOffered { features } => (false, Step::Done(Outcome::NotOffered { features })),
            Offer::Android => (true, Step::Info),
            Offer::Upstream => match meminfo {
                Some(g) if valid(g) => (false, Step::Map(device.start & !(g - 1))),
                _ => (false, Step::Done(Outcome::NoGranule)),
            },
        };
        Guard {
            android,
            granule: meminfo.filter(|&g| valid(g)).unwrap_or(0),
            device,
            step,
        }
    }

    pub fn next(&self) -> Option<Call> {
        match self.step {
            Step::Info => Some(Call {
                fid: MMIO_GUARD_INFO,
                x1: 0,
            }),
            Step::Enroll => Some(Call {
                fid: MMIO_GUARD_ENROLL,
                x1: 0,
            }),
            Step::Map(ipa) => Some(Call {
                fid: MMIO_GUARD_MAP,
                x1: ipa,
            }),
            Step::Done(_) => None,
        }
    }

    /// x0 of the call [`Guard::next`] named.
    pub fn answer(&mut self, x0: u64) {
        let code = x0 as i64;
        let failed = |fid| {
            Step::Done(Outcome::Failed {
                android: self.android,
                fid,
                x0: code,
            })
        };
        self.step = match self.step {
            Step::Info if code > 0 && valid(x0) => {
                self.granule = x0;
                Step::Enroll
            }
            Step::Info => failed(MMIO_GUARD_INFO),
            Step::Enroll if code == 0 => Step::Map(self.device.start & !(self.granule - 1)),
            Step::Enroll => failed(MMIO_GUARD_ENROLL),
            Step::Map(ipa) if code == 0 => {
                let next = ipa + self.granule;
                if next < self.device.end {
                    Step::Map(next)
                } else {
                    Step::Done(Outcome::Mapped {
                        android: self.android,
                        granule: self.granule,
                        range: self.device.align_outward(self.granule),
                    })
                }
            }
            Step::Map(_) => failed(MMIO_GUARD_MAP),
            done @ Step::Done(_) => done,
        };
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self.step {
            Step::Done(o) => Some(o),
            _ => None,
        }
    }
}

fn valid(g: u64) -> bool {
    crate::smccc::valid_granule(g as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// A model hypervisor: answers each call by a table and records it.
    fn drive(mut g: Guard, answer: impl Fn(Call) -> i64) -> (Vec<Call>, Outcome) {
        let mut calls = Vec::new();
        while let Some(c) = g.next() {
            calls.push(c);
            assert!(calls.len() < 64, "runaway: {calls:?}");
            g.answer(answer(c) as u64);
        }
        (calls, g.outcome().expect("done"))
    }

    const UART: MemRange = MemRange::new(0x3f8, 0x400);

    #[test]
    fn the_bitmap_picks_the_numbering() {
        // Debian 7.3.4's protected VM (docs/lanes.md): FEATURES = 0x1d.
        assert_eq!(
            Offer::of(Some(0x1d)),
            Offer::NotOffered {
                features: Some(0x1d)
            }
        );
        assert_eq!(Offer::of(None), Offer::NotOffered { features: None });
        // Android: INFO, ENROLL, MAP, UNMAP next to the memory calls.
        assert_eq!(Offer::of(Some(0x1d | 0x1e0)), Offer::Android);
        // Upstream: MMIO_GUARD (7) alone; 5 and 6 are reserved there.
        assert_eq!(Offer::of(Some(0x1d | 0x80)), Offer::Upstream);
        assert_eq!(kvm_feature_bit(MMIO_GUARD_MAP), 1 << 7);
        assert_eq!(kvm_feature_bit(MMIO_GUARD_ENROLL), 1 << 6);
    }

    #[test]
    fn android_enrols_then_maps_with_infos_granule() {
        let g = Guard::new(Offer::Android, Some(16384), UART);
        let (calls, out) = drive(g, |c| match c.fid {
            MMIO_GUARD_INFO => 4096,
            _ => 0,
        });
        assert_eq!(
            calls,
            [
                Call {
                    fid: MMIO_GUARD_INFO,
                    x1: 0
                },
                Call {
                    fid: MMIO_GUARD_ENROLL,
                    x1: 0
                },
                Call {
                    fid: MMIO_GUARD_MAP,
                    x1: 0
                },
            ]
        );
        assert_eq!(
            out.to_string(),
            "android:enrolled,mapped:0x0+0x1000:granule:4096"
        );
    }

    #[test]
    fn upstream_maps_every_meminfo_granule_of_the_device_without_enrolling() {
        let wide = MemRange::new(0x900_3000, 0x900_9000);
        let (calls, out) = drive(Guard::new(Offer::Upstream, Some(16384), wide), |_| 0);
        let ipas: Vec<u64> = calls.iter().map(|c| c.x1).collect();
        assert!(calls.iter().all(|c| c.fid == MMIO_GUARD_MAP));
        assert_eq!(ipas, [0x900_0000, 0x900_4000, 0x900_8000]);
        assert_eq!(
            out,
            Outcome::Mapped {
                android: false,
                granule: 16384,
                range: MemRange::new(0x900_0000, 0x900_c000)
            }
        );
        assert_eq!(
            drive(Guard::new(Offer::Upstream, None, UART), |_| 0),
            (Vec::new(), Outcome::NoGranule)
        );
    }

    #[test]
    fn a_refusal_stops_and_names_the_call() {
        let (calls, out) = drive(Guard::new(Offer::Android, Some(4096), UART), |c| {
            if c.fid == MMIO_GUARD_ENROLL { -1 } else { 4096 }
        });
        assert_eq!(calls.len(), 2);
        assert_eq!(out.to_string(), "android:failed:MMIO_GUARD_ENROLL=-1");
        // INFO answering an error or a non-granule is a failure, not a size.
        for bad in [-1i64, 12288, 0] {
            let (_, out) = drive(Guard::new(Offer::Android, Some(4096), UART), |_| bad);
            assert!(
                matches!(out, Outcome::Failed { fid: MMIO_GUARD_INFO, x0, .. } if x0 == bad),
                "{bad}: {out:?}"
            );
        }
        let (_, out) = drive(Guard::new(Offer::Upstream, Some(4096), UART), |_| -3);
        assert_eq!(out.to_string(), "upstream:failed:MMIO_GUARD_MAP=-3");
    }

    #[test]
    fn not_offered_makes_no_call() {
        let (calls, out) = drive(Guard::new(Offer::of(Some(0x1d)), Some(4096), UART), |_| 0);
        assert!(calls.is_empty());
        assert_eq!(out.to_string(), "not-offered(kvm_features=0x1d)");
        assert_eq!(
            Outcome::NotOffered { features: None }.to_string(),
            "not-offered(no-kvm-features)"
        );
    }
}
