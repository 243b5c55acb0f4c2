//! What automation decided over time, and whether the component flaps.
//!
//! Every time the automatic decision changes, the change is remembered for
//! the component's flap window. More than `transitions` changes within it
//! mark the component flapping: its status then holds at the worst status
//! of the window (so a flapping component never looks better than it has
//! been lately), and its changes notify no one. It stops flapping once the
//! window holds `transitions` changes or fewer again.

use beacon_contract::messages::{ComponentStatus, RecentChange};
use beacon_page::config::Component;

/// A component's flap settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapRules {
    /// Changes within the window above which it flaps.
    pub transitions: u32,
    /// The window.
    pub window_ms: u64,
}

impl FlapRules {
    /// The settings of `component`.
    pub fn of(component: &Component) -> FlapRules {
        FlapRules {
            transitions: component.flap_transitions,
            window_ms: component.flap_window_ms,
        }
    }
}

/// Automation's memory of one component.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Automation {
    /// The latest automatic decision; `None` before the first.
    pub decided: Option<ComponentStatus>,
    /// Automatic changes within the flap window, oldest first.
    pub recent: Vec<RecentChange>,
    /// Whether it flaps.
    pub flapping: bool,
}

impl Automation {
    /// Takes a new decision at `now_ms` (`None`: no decision, keep the
    /// last). Returns true when anything changed.
    pub fn decide(
        &mut self,
        decision: Option<ComponentStatus>,
        now_ms: u64,
        rules: FlapRules,
    ) -> bool {
        let mut changed = false;
        if let Some(status) = decision {
            if self.decided != Some(status) {
                // The first decision is a start, not a transition.
                if self.decided.is_some() {
                    self.recent.push(RecentChange {
                        at_ms: now_ms,
                        status,
                    });
                }
                self.decided = Some(status);
                changed = true;
            }
        }
        changed | self.settle(now_ms, rules)
    }

    /// Forgets changes that left the window and updates `flapping`.
    /// Returns true when anything changed.
    pub fn settle(&mut self, now_ms: u64, rules: FlapRules) -> bool {
        let before = (self.recent.len(), self.flapping);
        let horizon = now_ms.saturating_sub(rules.window_ms);
        self.recent.retain(|c| c.at_ms > horizon);
        self.flapping = self.recent.len() > rules.transitions as usize;
        (self.recent.len(), self.flapping) != before
    }

    /// The status automation shows: the decision, or while flapping the
    /// worst status of the window.
    pub fn held(&self) -> Option<ComponentStatus> {
        if !self.flapping {
            return self.decided;
        }
        self.recent
            .iter()
            .map(|c| c.status)
            .chain(self.decided)
            .max_by_key(|s| s.severity())
    }

    /// When the oldest remembered change leaves the window (Unix ms).
    pub fn next_settle_ms(&self, rules: FlapRules) -> Option<u64> {
        self.recent
            .first()
            .map(|c| c.at_ms.saturating_add(rules.window_ms).saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ComponentStatus::{MajorOutage, Operational, PartialOutage};

    const RULES: FlapRules = FlapRules {
        transitions: 3,
        window_ms: 1_000,
    };

    #[test]
    fn alternating_decisions_are_flapping_and_hold_the_worst() {
        let mut a = Automation::default();
        let statuses = [
            Operational,
            MajorOutage,
            Operational,
            PartialOutage,
            Operational,
        ];
        for (i, status) in statuses.iter().enumerate() {
            a.decide(Some(*status), i as u64 * 10, RULES);
        }
        assert!(a.flapping, "4 changes in the window, limit 3");
        assert_eq!(a.held(), Some(MajorOutage));
        assert_eq!(a.decided, Some(Operational));
        // Quiet for a window: stable again.
        assert!(a.settle(2_000, RULES));
        assert!(!a.flapping);
        assert_eq!(a.held(), Some(Operational));
    }

    #[test]
    fn changes_spread_over_time_do_not_flap() {
        let mut a = Automation::default();
        for i in 0..10u64 {
            let status = if i % 2 == 0 { MajorOutage } else { Operational };
            a.decide(Some(status), i * 600, RULES);
            assert!(!a.flapping, "change {i}");
        }
    }

    #[test]
    fn no_decision_keeps_the_last() {
        let mut a = Automation::default();
        a.decide(Some(PartialOutage), 0, RULES);
        assert!(!a.decide(None, 5, RULES));
        assert_eq!(a.held(), Some(PartialOutage));
        assert!(a.recent.is_empty(), "the first decision is not a change");
    }

    proptest! {
        /// Whatever the input, a flapping component never shows a status
        /// better than its current decision.
        #[test]
        fn the_held_status_is_never_better_than_the_decision(
            decisions in proptest::collection::vec(0usize..3, 1..40),
        ) {
            let all = [Operational, PartialOutage, MajorOutage];
            let mut a = Automation::default();
            for (i, d) in decisions.iter().enumerate() {
                a.decide(Some(all[*d]), i as u64 * 50, RULES);
                let held = a.held().expect("decided");
                prop_assert!(held.severity() >= all[*d].severity());
            }
        }
    }
}
