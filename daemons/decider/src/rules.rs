//! The pure core of the decider: per-region hysteresis and quorum across
//! regions. No I/O and no clocks, so every rule is a table test.
//!
//! A region's view of a check only flips after `failure_threshold`
//! consecutive failures (to down) or `recovery_threshold` consecutive
//! successes (to up). A region is down for a component when any of its
//! checks there is down, up when all are up. Across regions:
//!
//! | regions down              | status           |
//! |---------------------------|------------------|
//! | more than half            | `major_outage`   |
//! | at least one              | `partial_outage` |
//! | none, and all regions up  | `operational`    |
//! | otherwise (too few data)  | no decision      |

use std::collections::BTreeMap;

use beacon_core::event::EventId;
use beacon_core::messages::{ComponentStatus, Outcome, RegionEvidence, RegionState};

/// One region's running view of one check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracker {
    /// Concluded state.
    pub state: Option<RegionState>,
    /// Consecutive failures.
    pub failures: u32,
    /// Consecutive successes.
    pub successes: u32,
    /// Latest result id.
    pub last_result: Option<EventId>,
    /// Latest error, while failing.
    pub last_error: Option<String>,
}

/// Thresholds of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failures to call it down.
    pub failure: u32,
    /// Consecutive successes to call it up.
    pub recovery: u32,
}

impl Tracker {
    /// The state after one more result. Pure.
    pub fn observe(
        &self,
        outcome: Outcome,
        result: EventId,
        error: Option<String>,
        t: Thresholds,
    ) -> Tracker {
        let mut next = self.clone();
        next.last_result = Some(result);
        match outcome {
            Outcome::Up => {
                next.successes = next.successes.saturating_add(1);
                next.failures = 0;
                next.last_error = None;
                if next.successes >= t.recovery {
                    next.state = Some(RegionState::Up);
                }
            }
            Outcome::Down | Outcome::Degraded => {
                next.failures = next.failures.saturating_add(1);
                next.successes = 0;
                next.last_error = error;
                if next.failures >= t.failure {
                    next.state = Some(RegionState::Down);
                }
            }
        }
        next
    }

    /// The concluded state, `Unknown` before any threshold was reached.
    pub fn region_state(&self) -> RegionState {
        self.state.unwrap_or(RegionState::Unknown)
    }
}

/// Everything the decider knows about one component.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComponentView {
    /// Trackers by (check, region).
    pub trackers: BTreeMap<(String, String), Tracker>,
}

/// A status decision with the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The status.
    pub status: ComponentStatus,
    /// The rule, for people: `quorum: 2 of 2 regions down`.
    pub rule: String,
}

impl ComponentView {
    /// The state of each configured region, combining its checks.
    pub fn region_states(
        &self,
        regions: &[String],
        checks_in: impl Fn(&str) -> Vec<String>,
    ) -> Vec<(String, RegionState)> {
        regions
            .iter()
            .map(|region| {
                let states: Vec<RegionState> = checks_in(region)
                    .iter()
                    .map(|check| {
                        self.trackers
                            .get(&(check.clone(), region.clone()))
                            .map_or(RegionState::Unknown, Tracker::region_state)
                    })
                    .collect();
                let state = if states.contains(&RegionState::Down) {
                    RegionState::Down
                } else if !states.is_empty() && states.iter().all(|s| *s == RegionState::Up) {
                    RegionState::Up
                } else {
                    RegionState::Unknown
                };
                (region.clone(), state)
            })
            .collect()
    }

    /// Evidence rows for every configured region.
    pub fn evidence(&self, regions: &[(String, RegionState)]) -> Vec<RegionEvidence> {
        regions
            .iter()
            .map(|(region, state)| {
                // The most telling tracker of the region: a failing one if any.
                let trackers: Vec<&Tracker> = self
                    .trackers
                    .iter()
                    .filter(|((_, r), _)| r == region)
                    .map(|(_, t)| t)
                    .collect();
                let worst = trackers
                    .iter()
                    .max_by_key(|t| (t.failures, t.last_result))
                    .copied();
                RegionEvidence {
                    region: region.clone(),
                    state: *state,
                    consecutive_failures: worst.map_or(0, |t| t.failures),
                    consecutive_successes: trackers.iter().map(|t| t.successes).min().unwrap_or(0),
                    last_result: worst.and_then(|t| t.last_result),
                    last_error: worst.and_then(|t| t.last_error.clone()),
                    since_ms: None,
                    last_seen_ms: None,
                    samples: Vec::new(),
                }
            })
            .collect()
    }
}

/// Quorum across regions. Pure.
pub fn decide(regions: &[(String, RegionState)]) -> Option<Decision> {
    let total = regions.len();
    let down = regions
        .iter()
        .filter(|(_, s)| *s == RegionState::Down)
        .count();
    let up = regions
        .iter()
        .filter(|(_, s)| *s == RegionState::Up)
        .count();
    if total == 0 {
        return None;
    }
    if down * 2 > total {
        Some(Decision {
            status: ComponentStatus::MajorOutage,
            rule: format!("quorum: {down} of {total} regions down"),
        })
    } else if down > 0 {
        Some(Decision {
            status: ComponentStatus::PartialOutage,
            rule: format!("minority: {down} of {total} regions down"),
        })
    } else if up == total {
        Some(Decision {
            status: ComponentStatus::Operational,
            rule: format!("all {total} regions up"),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RegionState::{Down, Unknown, Up};

    const T: Thresholds = Thresholds {
        failure: 2,
        recovery: 3,
    };

    fn run(outcomes: &[Outcome]) -> Tracker {
        outcomes.iter().fold(Tracker::default(), |t, o| {
            t.observe(*o, EventId::new(), None, T)
        })
    }

    #[test]
    fn hysteresis_table() {
        use Outcome::{Down as D, Up as U};
        let table: &[(&[Outcome], RegionState)] = &[
            (&[], Unknown),
            (&[D], Unknown),
            (&[D, D], Down),
            (&[D, D, U], Down),
            (&[D, D, U, U], Down),
            (&[D, D, U, U, U], Up),
            (&[U, U], Unknown),
            (&[U, U, U], Up),
            (&[U, U, U, D], Up),
            (&[U, U, U, D, U, D], Up),
            (&[U, U, U, D, D], Down),
        ];
        for (outcomes, want) in table {
            assert_eq!(run(outcomes).region_state(), *want, "{outcomes:?}");
        }
    }

    fn regions(states: &[RegionState]) -> Vec<(String, RegionState)> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("r{i}"), *s))
            .collect()
    }

    #[test]
    fn quorum_table() {
        use ComponentStatus::*;
        let table: &[(&[RegionState], Option<ComponentStatus>)] = &[
            (&[], None),
            (&[Up, Up], Some(Operational)),
            (&[Up, Unknown], None),
            (&[Down, Up], Some(PartialOutage)),
            (&[Down, Unknown], Some(PartialOutage)),
            (&[Down, Down], Some(MajorOutage)),
            (&[Down, Up, Up], Some(PartialOutage)),
            (&[Down, Down, Up], Some(MajorOutage)),
            (&[Down], Some(MajorOutage)),
            (&[Up], Some(Operational)),
        ];
        for (states, want) in table {
            assert_eq!(
                decide(&regions(states)).map(|d| d.status),
                *want,
                "{states:?}"
            );
        }
    }

    #[test]
    fn a_region_is_down_when_any_of_its_checks_is() {
        let mut view = ComponentView::default();
        let down = run(&[Outcome::Down, Outcome::Down]);
        let up = run(&[Outcome::Up, Outcome::Up, Outcome::Up]);
        view.trackers
            .insert(("http".into(), "eu".into()), up.clone());
        view.trackers.insert(("tcp".into(), "eu".into()), down);
        view.trackers.insert(("http".into(), "us".into()), up);
        let states = view.region_states(&["eu".into(), "us".into()], |r| {
            if r == "eu" {
                vec!["http".into(), "tcp".into()]
            } else {
                vec!["http".into()]
            }
        });
        assert_eq!(states, vec![("eu".into(), Down), ("us".into(), Up)]);
        let evidence = view.evidence(&states);
        assert_eq!(evidence[0].consecutive_failures, 2);
    }

    proptest! {
        #[test]
        fn majority_down_is_always_major(up in 0usize..5, down in 0usize..5, unknown in 0usize..5) {
            let mut states = vec![Up; up];
            states.extend(vec![Down; down]);
            states.extend(vec![Unknown; unknown]);
            let total = states.len();
            let decision = decide(&regions(&states)).map(|d| d.status);
            if total > 0 && down * 2 > total {
                prop_assert_eq!(decision, Some(ComponentStatus::MajorOutage));
            }
            if down == 0 && unknown == 0 && total > 0 {
                prop_assert_eq!(decision, Some(ComponentStatus::Operational));
            }
        }

        #[test]
        fn one_result_never_flips_a_settled_region(threshold in 2u32..6, flips in 1u32..6) {
            let t = Thresholds { failure: threshold, recovery: threshold };
            let mut tracker = Tracker::default();
            for _ in 0..threshold { tracker = tracker.observe(Outcome::Up, EventId::new(), None, t); }
            prop_assert_eq!(tracker.region_state(), Up);
            for _ in 0..flips.min(threshold - 1) { tracker = tracker.observe(Outcome::Down, EventId::new(), None, t); }
            prop_assert_eq!(tracker.region_state(), Up);
        }
    }
}
