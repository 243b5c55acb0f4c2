//! One probe result in, at most one status change out: the pure step that
//! joins the rules with the page config.

use beacon_core::config::PageConfig;
use beacon_core::event::EventId;
use beacon_core::messages::{ComponentStatus, Evidence, HealthResult};

use crate::rules::{decide, ComponentView, Thresholds};

/// Why a result was ignored rather than applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// No config for the page (not applied yet, or removed).
    UnknownPage,
    /// The page has no such component.
    UnknownComponent,
    /// The component has no such check.
    UnknownCheck,
    /// The check does not run in that region.
    UnknownRegion,
}

/// A status change to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Status before.
    pub from: Option<ComponentStatus>,
    /// Status after.
    pub to: ComponentStatus,
    /// Why.
    pub evidence: Evidence,
}

/// Applies one result to a component view. Pure: returns the new view and
/// the transition, if the decided status differs from `current`.
pub fn step(
    config: Option<&PageConfig>,
    view: &ComponentView,
    current: Option<ComponentStatus>,
    result: &HealthResult,
    result_id: EventId,
) -> Result<(ComponentView, Option<Transition>), Ignored> {
    let config = config.ok_or(Ignored::UnknownPage)?;
    let component = config
        .component(&result.component)
        .ok_or(Ignored::UnknownComponent)?;
    let check = component
        .checks
        .iter()
        .find(|c| c.id == result.check)
        .ok_or(Ignored::UnknownCheck)?;
    if !check.regions.contains(&result.region) {
        return Err(Ignored::UnknownRegion);
    }

    let key = (result.check.clone(), result.region.clone());
    let thresholds = Thresholds {
        failure: check.failure_threshold,
        recovery: check.recovery_threshold,
    };
    let mut next = view.clone();
    // Checks removed from the config no longer count.
    next.trackers
        .retain(|(check_id, _), _| component.checks.iter().any(|c| &c.id == check_id));
    let tracker = next.trackers.get(&key).cloned().unwrap_or_default();
    next.trackers.insert(
        key,
        tracker.observe(result.outcome, result_id, result.error.clone(), thresholds),
    );

    let regions = component.regions();
    let states = next.region_states(&regions, |region| {
        component
            .checks
            .iter()
            .filter(|c| c.regions.iter().any(|r| r == region))
            .map(|c| c.id.clone())
            .collect()
    });
    let transition = decide(&states)
        .filter(|decision| Some(decision.status) != current)
        .map(|decision| Transition {
            from: current,
            to: decision.status,
            evidence: Evidence {
                rule: decision.rule,
                trigger: Some(result_id),
                regions: next.evidence(&states),
            },
        });
    Ok((next, transition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_core::config::load;
    use beacon_core::messages::{CheckKind, Outcome};

    fn config() -> PageConfig {
        load(
            r#"
            [page]
            id = "p"
            name = "P"
            [defaults]
            regions = ["eu", "us"]
            interval = "1s"
            timeout = "1s"
            failure_threshold = 2
            recovery_threshold = 1
            [[components]]
            id = "api"
            name = "API"
            [[components.checks]]
            type = "http"
            url = "http://127.0.0.1:1/"
            "#,
        )
        .expect("test config is valid")
    }

    fn result(region: &str, outcome: Outcome) -> HealthResult {
        HealthResult {
            page: "p".into(),
            component: "api".into(),
            check: "http".into(),
            region: region.into(),
            kind: CheckKind::Http,
            outcome,
            started_at_ms: 0,
            latency_ms: 1,
            http_status: None,
            error: None,
            error_kind: None,
            failed_condition: None,
            timings: None,
            observed: Default::default(),
        }
    }

    /// Feeds results in order and returns the statuses that were decided.
    fn timeline(results: &[(&str, Outcome)]) -> Vec<ComponentStatus> {
        let config = config();
        let mut view = ComponentView::default();
        let mut current = None;
        let mut changes = Vec::new();
        for (region, outcome) in results {
            let (next, transition) = step(
                Some(&config),
                &view,
                current,
                &result(region, *outcome),
                EventId::new(),
            )
            .expect("applies");
            view = next;
            if let Some(t) = transition {
                current = Some(t.to);
                changes.push(t.to);
            }
        }
        changes
    }

    #[test]
    fn both_regions_failing_is_a_major_outage_and_recovery_is_operational() {
        use ComponentStatus::*;
        use Outcome::{Down, Up};
        let changes = timeline(&[
            ("eu", Up),
            ("us", Up),
            ("eu", Down),
            ("us", Down),
            ("eu", Down),
            ("us", Down),
            ("eu", Up),
            ("us", Up),
        ]);
        assert_eq!(
            changes,
            vec![
                Operational,
                PartialOutage,
                MajorOutage,
                PartialOutage,
                Operational
            ]
        );
    }

    #[test]
    fn unknown_targets_are_ignored_not_applied() {
        let config = config();
        let view = ComponentView::default();
        let mut r = result("eu", Outcome::Up);
        assert_eq!(
            step(None, &view, None, &r, EventId::new()).err(),
            Some(Ignored::UnknownPage)
        );
        r.region = "ap".into();
        assert_eq!(
            step(Some(&config), &view, None, &r, EventId::new()).err(),
            Some(Ignored::UnknownRegion)
        );
        r.region = "eu".into();
        r.check = "tcp".into();
        assert_eq!(
            step(Some(&config), &view, None, &r, EventId::new()).err(),
            Some(Ignored::UnknownCheck)
        );
        r.component = "db".into();
        assert_eq!(
            step(Some(&config), &view, None, &r, EventId::new()).err(),
            Some(Ignored::UnknownComponent)
        );
    }
}
