//! The storm's oracle: what every granule of the area must be (state and
//! content) and what each conversion must answer, under the ABI's rules
//! and the VMM's content promise.

use crate::plan::Content;
use crate::range::MemRange;
use crate::tracker::{PageState, Target};
use alloc::vec;
use alloc::vec::Vec;

/// How the ABI treats a granule already in the state asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Converts whatever state the range is in, in one call (MAP_GPA_RANGE).
    AnyState,
    /// One call per granule, refusing the first granule already in the
    /// target state; the granules before it were converted (pKVM).
    RefuseSameState,
}

/// What the model knows a granule holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Every word holds `pattern_word(tag, pa)`.
    Pattern(u64),
    /// Every word holds this value (0 after a zeroing conversion).
    Const(u64),
    /// No claim: never written, or the content promise says nothing.
    Unknown,
}

/// What a conversion must answer: how far it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversionOutcome {
    Done,
    /// Refused at the granule at this address; granules before it converted.
    RefusedAt(u64),
}

/// Per-granule state and content of the storm's area, as the platform must
/// have it.
#[derive(Clone, Debug)]
pub struct Model {
    area: MemRange,
    granule: u64,
    rule: Rule,
    content: Option<Content>,
    state: Vec<PageState>,
    fill: Vec<Fill>,
}

impl Model {
    /// `area` granule-aligned; every granule starts private, content unknown.
    pub fn new(area: MemRange, granule: u64, rule: Rule, content: Option<Content>) -> Model {
        let n = (area.len() / granule) as usize;
        Model {
            area,
            granule,
            rule,
            content,
            state: vec![PageState::Private; n],
            fill: vec![Fill::Unknown; n],
        }
    }

    pub fn area(&self) -> MemRange {
        self.area
    }

    pub fn granule(&self) -> u64 {
        self.granule
    }

    fn index(&self, addr: u64) -> usize {
        ((addr - self.area.start) / self.granule) as usize
    }

    fn granules(&self, r: MemRange) -> impl Iterator<Item = u64> + use<> {
        (r.start..r.end).step_by(self.granule as usize)
    }

    pub fn state(&self, addr: u64) -> PageState {
        self.state[self.index(addr)]
    }

    pub fn fill(&self, addr: u64) -> Fill {
        self.fill[self.index(addr)]
    }

    /// What converting `r` to `to` must answer.
    pub fn predict(&self, r: MemRange, to: Target) -> ConversionOutcome {
        match self.rule {
            Rule::AnyState => ConversionOutcome::Done,
            Rule::RefuseSameState => self
                .granules(r)
                .find(|&a| self.state(a) == to.state())
                .map_or(ConversionOutcome::Done, ConversionOutcome::RefusedAt),
        }
    }

    /// Applies a conversion that answered `outcome` (the predicted one).
    pub fn convert(&mut self, r: MemRange, to: Target, outcome: ConversionOutcome) {
        let end = match outcome {
            ConversionOutcome::Done => r.end,
            ConversionOutcome::RefusedAt(a) => a,
        };
        for a in self.granules(MemRange::new(r.start, end)) {
            let i = self.index(a);
            let flips = self.state[i] != to.state();
            self.fill[i] = match (self.content, flips) {
                (Some(Content::Preserve), _) => self.fill[i],
                (Some(Content::Zero), true) => Fill::Const(0),
                // Zero is promised for a flip; a no-op conversion of a
                // granule already there promises nothing.
                (Some(Content::Zero), false) | (None, _) => Fill::Unknown,
            };
            self.state[i] = to.state();
        }
    }

    /// The guest wrote `fill` over `r`.
    pub fn write(&mut self, r: MemRange, fill: Fill) {
        for a in self.granules(r) {
            let i = self.index(a);
            self.fill[i] = fill;
        }
    }

    pub fn count(&self, s: PageState) -> u64 {
        self.state.iter().filter(|&&x| x == s).count() as u64
    }

    /// Maximal runs of granules in state `s`.
    pub fn runs(&self, s: PageState) -> Vec<MemRange> {
        let mut runs: Vec<MemRange> = Vec::new();
        for a in self.granules(self.area) {
            if self.state(a) == s {
                match runs.last_mut() {
                    Some(last) if last.end == a => last.end += self.granule,
                    _ => runs.push(MemRange::from_len(a, self.granule)),
                }
            }
        }
        runs
    }

    /// The run around `addr` (at most `max` granules from it) of shared
    /// granules holding one pattern: what the host can be asked to verify.
    pub(super) fn shared_pattern_run(&self, addr: u64, max: u64) -> Option<(MemRange, u64)> {
        let Fill::Pattern(tag) = self.fill(addr) else {
            return None;
        };
        if self.state(addr) != PageState::Shared {
            return None;
        }
        let mut end = addr + self.granule;
        while end < self.area.end
            && end - addr < max * self.granule
            && self.state(end) == PageState::Shared
            && self.fill(end) == Fill::Pattern(tag)
        {
            end += self.granule;
        }
        Some((MemRange::new(addr, end), tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 4096;

    fn area() -> MemRange {
        MemRange::from_len(0x4000_0000 - (4 << 20), 8 << 20)
    }

    #[test]
    fn pkvm_rule_refuses_at_first_granule_already_there() {
        let a = area();
        let mut m = Model::new(a, G, Rule::RefuseSameState, Some(Content::Preserve));
        let mid = MemRange::from_len(a.start + 2 * G, G);
        m.convert(mid, Target::Shared, ConversionOutcome::Done);
        let r = MemRange::from_len(a.start, 4 * G);
        assert_eq!(
            m.predict(r, Target::Shared),
            ConversionOutcome::RefusedAt(a.start + 2 * G)
        );
        m.convert(r, Target::Shared, m.predict(r, Target::Shared));
        assert_eq!(m.count(PageState::Shared), 3);
        assert_eq!(
            m.predict(r, Target::Private),
            ConversionOutcome::RefusedAt(a.start + 3 * G)
        );
        assert_eq!(
            m.runs(PageState::Shared),
            [MemRange::from_len(a.start, 3 * G)]
        );
    }

    #[test]
    fn content_follows_the_promise() {
        let a = area();
        let g0 = MemRange::from_len(a.start, G);
        for (content, after_flip, after_noop) in [
            (Some(Content::Zero), Fill::Const(0), Fill::Unknown),
            (Some(Content::Preserve), Fill::Pattern(5), Fill::Pattern(5)),
            (None, Fill::Unknown, Fill::Unknown),
        ] {
            let mut m = Model::new(a, G, Rule::AnyState, content);
            m.write(g0, Fill::Pattern(5));
            m.convert(g0, Target::Shared, ConversionOutcome::Done);
            assert_eq!(m.fill(a.start), after_flip, "{content:?}");
            m.write(g0, Fill::Pattern(5));
            m.convert(g0, Target::Shared, ConversionOutcome::Done);
            assert_eq!(m.fill(a.start), after_noop, "{content:?}");
        }
    }
}
