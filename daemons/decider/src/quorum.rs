//! Across regions: the component's automatic status from each region's
//! state. Pure, so every rule is a table test.
//!
//! Stale and suspect regions are left out of the count. Of the regions that
//! count, `needed` (the component's quorum: a number, or a majority of those
//! counted) failing make a `major_outage`; fewer make a `partial_outage`.
//! Any other status waits until every counted region has concluded, so a
//! decider that just started (or a region that just came back) never
//! decides from half the evidence:
//!
//! | counted regions                         | status                 |
//! |-----------------------------------------|------------------------|
//! | none                                    | no decision            |
//! | `down` ≥ quorum                         | `major_outage`         |
//! | any unknown                             | no decision (wait)     |
//! | some down                               | `partial_outage`       |
//! | some degraded                           | `degraded_performance` |
//! | all up                                  | `operational`          |

use beacon_contract::messages::{ComponentStatus, RegionState};
use beacon_page::config::Quorum;

/// A status decision with the rule that made it, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The status.
    pub status: ComponentStatus,
    /// The rule, e.g. `quorum: 2 of 3 regions down (quorum 2)`.
    pub rule: String,
}

/// Decides from `(region, state)` pairs. `None`: not enough evidence.
pub fn decide(regions: &[(&str, RegionState)], quorum: Quorum) -> Option<Decision> {
    let counted: Vec<&(&str, RegionState)> =
        regions.iter().filter(|(_, s)| !s.is_excluded()).collect();
    let excluded: Vec<String> = regions
        .iter()
        .filter(|(_, s)| s.is_excluded())
        .map(|(r, s)| format!("{r} {}", s.as_str()))
        .collect();
    let note = if excluded.is_empty() {
        String::new()
    } else {
        format!("; left out: {}", excluded.join(", "))
    };
    let total = counted.len();
    if total == 0 {
        return None;
    }
    let count = |state: RegionState| counted.iter().filter(|(_, s)| *s == state).count();
    let (down, degraded, unknown) = (
        count(RegionState::Down),
        count(RegionState::Degraded),
        count(RegionState::Unknown),
    );
    let needed = quorum.needed(total);
    let decision = |status, rule: String| {
        Some(Decision {
            status,
            rule: format!("{rule}{note}"),
        })
    };
    if down >= needed {
        return decision(
            ComponentStatus::MajorOutage,
            format!(
                "quorum: {down} of {total} regions down (quorum {})",
                quorum.describe()
            ),
        );
    }
    if unknown > 0 {
        return None;
    }
    if down > 0 {
        decision(
            ComponentStatus::PartialOutage,
            format!(
                "below quorum: {down} of {total} regions down (quorum {})",
                quorum.describe()
            ),
        )
    } else if degraded > 0 {
        decision(
            ComponentStatus::DegradedPerformance,
            format!("slow: {degraded} of {total} regions degraded"),
        )
    } else {
        decision(
            ComponentStatus::Operational,
            format!("all {total} regions up"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RegionState::{Degraded, Down, Stale, Suspect, Unknown, Up};

    fn states(list: &[RegionState]) -> Vec<(&'static str, RegionState)> {
        const NAMES: [&str; 6] = ["r0", "r1", "r2", "r3", "r4", "r5"];
        list.iter()
            .enumerate()
            .map(|(i, s)| (NAMES[i], *s))
            .collect()
    }

    #[test]
    fn quorum_table() {
        use ComponentStatus::*;
        let majority = Quorum::Majority;
        let two = Quorum::Count(2);
        let table: &[(&[RegionState], Quorum, Option<ComponentStatus>)] = &[
            (&[], majority, None),
            (&[Up, Up, Up], majority, Some(Operational)),
            (&[Up, Up, Unknown], majority, None),
            (&[Down, Up, Up], majority, Some(PartialOutage)),
            (&[Down, Down, Up], majority, Some(MajorOutage)),
            (&[Down, Down, Unknown], majority, Some(MajorOutage)),
            (&[Down, Unknown, Unknown], majority, None),
            (&[Down, Up, Up], two, Some(PartialOutage)),
            (&[Down, Down, Up, Up, Up], two, Some(MajorOutage)),
            (&[Down, Down, Up, Up, Up], majority, Some(PartialOutage)),
            (&[Degraded, Up, Up], majority, Some(DegradedPerformance)),
            (&[Degraded, Down, Up], majority, Some(PartialOutage)),
            // Stale and suspect regions do not count.
            (&[Down, Stale, Up], majority, Some(PartialOutage)),
            (&[Down, Stale, Stale], majority, Some(MajorOutage)),
            (&[Down, Suspect, Up], majority, Some(PartialOutage)),
            (&[Suspect, Up, Up], majority, Some(Operational)),
            (&[Stale, Suspect], majority, None),
            (&[Down, Suspect, Suspect], two, Some(PartialOutage)),
        ];
        for (list, quorum, want) in table {
            assert_eq!(
                decide(&states(list), *quorum).map(|d| d.status),
                *want,
                "{list:?} {quorum:?}"
            );
        }
    }

    #[test]
    fn the_rule_names_what_was_left_out() {
        let decision = decide(&states(&[Down, Down, Stale]), Quorum::Majority).expect("decides");
        assert_eq!(
            decision.rule,
            "quorum: 2 of 2 regions down (quorum majority); left out: r2 stale"
        );
    }

    fn state() -> impl Strategy<Value = RegionState> {
        prop_oneof![
            Just(Unknown),
            Just(Up),
            Just(Degraded),
            Just(Down),
            Just(Stale),
            Just(Suspect)
        ]
    }

    proptest! {
        /// The same evidence in any order gives the same status.
        #[test]
        fn region_order_does_not_matter(
            list in proptest::collection::vec(state(), 0..6),
            order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
            count in 1u32..4,
        ) {
            let regions = states(&list);
            let shuffled: Vec<(&str, RegionState)> = order.iter().filter(|&&i| i < regions.len()).map(|&i| regions[i]).collect();
            for quorum in [Quorum::Majority, Quorum::Count(count)] {
                prop_assert_eq!(
                    decide(&regions, quorum).map(|d| d.status),
                    decide(&shuffled, quorum).map(|d| d.status)
                );
            }
        }

        /// Excluded regions never change the outcome.
        #[test]
        fn stale_and_suspect_regions_never_count(
            list in proptest::collection::vec(prop_oneof![Just(Up), Just(Down), Just(Degraded)], 1..4),
            extra in proptest::collection::vec(prop_oneof![Just(Stale), Just(Suspect)], 0..3),
        ) {
            let mut with_extra = list.clone();
            with_extra.extend(extra);
            prop_assert_eq!(
                decide(&states(&list), Quorum::Majority).map(|d| d.status),
                decide(&states(&with_extra), Quorum::Majority).map(|d| d.status)
            );
        }
    }
}
