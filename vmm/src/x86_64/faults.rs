//! `--vmm-fault`: deliberate VMM bugs, to see which guest tests notice. A
//! fault applies only to a well-formed MAP_GPA_RANGE request inside RAM
//! that would flip at least one page (serve.rs asks only then); it decides
//! how much of the conversion really happens and what the guest is told.
//! The record and KVM always change together or not at all: a fault lies
//! to the guest, never to the VMM's own bookkeeping.

use super::hypercall::{RET_EAGAIN, RET_EPERM, RET_GARBAGE, RET_OK};
use crate::config::VmmFault;
use crate::error::VmmError;
use convtest_proto::keyword::Keyword;
use convtest_proto::tracker::Target;

/// The faults of one run, checked for contradictions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The one fault that decides the answer, if any.
    answer: Option<VmmFault>,
    wrong_content: bool,
    /// On a guest reset, claim the reset policy and apply none of it.
    no_reset: bool,
}

/// How much of the flipping pages a request converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Portion {
    All,
    Nothing,
    /// The first floor(n/2) of the n pages that would flip.
    FirstHalf,
}

/// What to do with one request that would flip pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub portion: Portion,
    /// The guest's rax when every host operation succeeds.
    pub answer: u64,
    /// Break the content promise for the pages converted.
    pub invert_content: bool,
    /// Whether any fault changed this request's handling.
    pub faulted: bool,
}

impl Faults {
    /// `check_vmm_faults` decides what may be combined; a contradiction is
    /// a configuration error at startup.
    pub fn new(list: &[VmmFault]) -> Result<Self, VmmError> {
        crate::config::check_faults(list).map_err(|e| VmmError::Config(e.to_string()))?;
        Ok(Faults {
            answer: list.iter().copied().find(|f| f.decides_answer()),
            wrong_content: list.contains(&VmmFault::WrongContent),
            no_reset: list.contains(&VmmFault::NoReset),
        })
    }

    /// `--vmm-fault no-reset`: a reset leaves memory as the last boot did.
    pub fn no_reset(&self) -> bool {
        self.no_reset
    }

    /// `ignore,wrong-content`, or `-` for none (the facts line's form).
    pub fn describe(&self) -> String {
        let mut names: Vec<&str> = self.answer.iter().map(|f| f.as_str()).collect();
        if self.wrong_content {
            names.push(VmmFault::WrongContent.as_str());
        }
        if self.no_reset {
            names.push(VmmFault::NoReset.as_str());
        }
        if names.is_empty() {
            "-".into()
        } else {
            names.join(",")
        }
    }

    pub fn plan(&self, to: Target) -> Plan {
        let (portion, answer, applied) = match (self.answer, to) {
            (None, _) | (Some(VmmFault::Leak), Target::Shared) => (Portion::All, RET_OK, false),
            (Some(VmmFault::Ignore), _) | (Some(VmmFault::Leak), Target::Private) => {
                (Portion::Nothing, RET_OK, true)
            }
            (Some(VmmFault::Deny), _) => (Portion::Nothing, RET_EPERM, true),
            (Some(VmmFault::Partial), _) => (Portion::FirstHalf, RET_EAGAIN, true),
            (Some(VmmFault::Garbage), _) => (Portion::Nothing, RET_GARBAGE, true),
            // Not an answer fault (Faults::new never stores it here).
            (Some(VmmFault::WrongContent | VmmFault::NoReset), _) => (Portion::All, RET_OK, false),
        };
        let invert_content = self.wrong_content && portion != Portion::Nothing;
        Plan {
            portion,
            answer,
            invert_content,
            faulted: applied || invert_content,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(list: &[VmmFault]) -> Faults {
        Faults::new(list).unwrap()
    }

    #[test]
    fn each_fault_plans_as_documented() {
        use VmmFault::*;
        let p = |list: &[VmmFault], to| {
            let p = faults(list).plan(to);
            (p.portion, p.answer, p.invert_content, p.faulted)
        };
        assert_eq!(p(&[], Target::Shared), (Portion::All, RET_OK, false, false));
        assert_eq!(
            p(&[Ignore], Target::Shared),
            (Portion::Nothing, RET_OK, false, true)
        );
        assert_eq!(
            p(&[Deny], Target::Private),
            (Portion::Nothing, RET_EPERM, false, true)
        );
        assert_eq!(
            p(&[Partial], Target::Shared),
            (Portion::FirstHalf, RET_EAGAIN, false, true)
        );
        assert_eq!(
            p(&[Leak], Target::Private),
            (Portion::Nothing, RET_OK, false, true)
        );
        assert_eq!(
            p(&[Leak], Target::Shared),
            (Portion::All, RET_OK, false, false)
        );
        assert_eq!(
            p(&[Garbage], Target::Shared),
            (Portion::Nothing, RET_GARBAGE, false, true)
        );
        assert_eq!(
            p(&[WrongContent], Target::Shared),
            (Portion::All, RET_OK, true, true)
        );
        assert_eq!(
            p(&[Leak, WrongContent], Target::Shared),
            (Portion::All, RET_OK, true, true)
        );
        assert_eq!(
            p(&[WrongContent, Ignore], Target::Shared),
            (Portion::Nothing, RET_OK, false, true),
            "nothing converted: no content to break"
        );
        assert_eq!(
            p(&[Partial, WrongContent], Target::Private),
            (Portion::FirstHalf, RET_EAGAIN, true, true)
        );
    }

    #[test]
    fn contradictions_are_config_errors_and_names_are_listed() {
        assert!(matches!(
            Faults::new(&[VmmFault::Ignore, VmmFault::Deny]),
            Err(VmmError::Config(_))
        ));
        assert_eq!(Faults::default().describe(), "-");
        assert_eq!(
            faults(&[VmmFault::WrongContent, VmmFault::Garbage]).describe(),
            "garbage,wrong-content"
        );
    }
}
