//! The decider's metrics, `beacon_decider_…`, with bounded labels only.

use beacon_contract::messages::{ComponentStatus, StatusSource};
use beacon_runtime::telemetry::{MetricError, Metrics as Registry};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

const NONE: &[&str] = &[];

/// Every metric the decider publishes beyond the shared consumer, lease
/// and timer metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Results applied, by outcome.
    pub results: IntCounterVec,
    /// The same counters, resolved once per outcome for the hot path.
    results_by_outcome: [IntCounter; 3],
    /// Results ignored, by reason.
    pub ignored: IntCounterVec,
    /// Status changes, by new status, source and cause.
    pub changes: IntCounterVec,
    /// Time to handle one batch of results, evaluation and stores included.
    pub evaluation_seconds: Histogram,
    /// How old a result is when it is applied (probe to decision).
    pub result_age_seconds: Histogram,
    /// Regions whose probes are suspect now.
    pub suspect_regions: IntGauge,
    /// Probe verdicts, by verdict.
    pub verdicts: IntCounterVec,
    /// Components flapping now.
    pub flapping: IntGauge,
    /// Components this decider holds state for.
    pub components: IntGauge,
    /// Stored changes whose STATUS event was missing and was published on load.
    pub republished: IntCounter,
    /// Probe results stamped by a clock more than a minute ahead of this
    /// one (the clock followed them only a minute).
    pub clock_ahead: IntCounter,
    /// Failed stores, by kind.
    pub store_failures: IntCounterVec,
    /// Incidents proposed.
    pub proposals: IntCounter,
    /// Maintenance steps taken at their time, by step.
    pub maintenance_steps: IntCounterVec,
    /// Operator API requests, by endpoint and outcome.
    pub api_requests: IntCounterVec,
    /// Operator writes stored in the region's own domain because the
    /// cluster was out of reach, by kind (incident, maintenance).
    pub regional_writes: IntCounterVec,
}

impl Metrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricError> {
        let results = registry.counter(
            "results_total",
            "Probe results applied, by outcome",
            &["outcome"],
        )?;
        let results_by_outcome = beacon_contract::messages::Outcome::ALL
            .map(|o| results.with_label_values(&[o.as_str()]));
        Ok(Self {
            results,
            results_by_outcome,
            ignored: registry.counter(
                "results_ignored_total",
                "Probe results dropped without effect on status, by reason",
                &["reason"],
            )?,
            changes: registry.counter(
                "status_changes_total",
                "Component status changes, by new status, what set it and the rule's cause",
                &["to", "source", "cause"],
            )?,
            evaluation_seconds: registry.histogram_with_buckets(
                "evaluation_seconds",
                "Time to apply a batch of results, decide and store the changes",
                &[],
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            )?
                .with_label_values(NONE),
            result_age_seconds: registry.histogram_with_buckets(
                "result_age_seconds",
                "Age of a result when the decider applies it, from the probe's start of the check",
                &[],
                vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            )?
                .with_label_values(NONE),
            suspect_regions: registry.gauge(
                "suspect_regions",
                "Regions whose probe is suspect (results left out)",
                &[],
            )?
                .with_label_values(NONE),
            verdicts: registry.counter(
                "probe_verdicts_total",
                "Probe verdicts published, by verdict (suspect, cleared)",
                &["verdict"],
            )?,
            flapping: registry.gauge("flapping_components", "Components flapping now", &[])?
                .with_label_values(NONE),
            components: registry.gauge(
                "components",
                "Components this decider holds state for (while it leads)",
                &[],
            )?
                .with_label_values(NONE),
            republished: registry.counter(
                "republished_changes_total",
                "Stored status changes whose STATUS event was missing, published on load",
                &[],
            )?
                .with_label_values(NONE),
            clock_ahead: registry.counter(
                "clock_ahead_total",
                "Results stamped more than a minute ahead of this decider's clock (followed only a minute)",
                &[],
            )?
                .with_label_values(NONE),
            store_failures: registry.counter(
                "store_failures_total",
                "Failed status stores, by kind (unavailable, conflict, fenced)",
                &["kind"],
            )?,
            proposals: registry.counter("incident_proposals_total", "Incidents proposed", &[])?
                .with_label_values(NONE),
            maintenance_steps: registry.counter(
                "maintenance_steps_total",
                "Maintenance steps taken at their time, by step",
                &["step"],
            )?,
            api_requests: registry.counter(
                "api_requests_total",
                "Operator API requests, by endpoint and outcome",
                &["endpoint", "outcome"],
            )?,
            regional_writes: registry.counter(
                "regional_writes_total",
                "Operator writes stored in the region's own domain while the cluster was out of reach, by kind",
                &["kind"],
            )?,
        })
    }

    /// Counts one applied result and its age.
    pub fn result(&self, outcome: beacon_contract::messages::Outcome, age_ms: u64) {
        let index = beacon_contract::messages::Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.results_by_outcome[index].inc();
        self.result_age_seconds.observe(age_ms as f64 / 1000.0);
    }

    /// Counts one stored change.
    pub fn change(&self, to: ComponentStatus, source: StatusSource, rule: &str, flapping: bool) {
        self.changes
            .with_label_values(&[to.as_str(), source.as_str(), cause_of(rule, flapping)])
            .inc();
    }
}

/// A bounded label for a rule's text.
pub fn cause_of(rule: &str, flapping: bool) -> &'static str {
    if flapping {
        return "flapping";
    }
    for (prefix, cause) in [
        ("quorum", "quorum"),
        ("below quorum", "below_quorum"),
        ("slow", "slow"),
        ("all ", "all_up"),
        ("override", "override"),
        ("maintenance", "maintenance"),
        ("incident", "incident"),
    ] {
        if rule.starts_with(prefix) {
            return cause;
        }
    }
    "other"
}
