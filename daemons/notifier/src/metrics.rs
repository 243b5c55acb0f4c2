//! The `beacon_notifier_…` metrics. Labels are bounded: channel kinds,
//! lanes, outcomes, notice kinds, endpoints; never addresses, subscriber
//! ids or URLs.

use beacon_runtime::telemetry::{MetricError, Metrics as Registry};
use prometheus::{HistogramVec, IntCounterVec, IntGauge, IntGaugeVec};

/// Every metric the notifier publishes.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Deliveries by channel and outcome (delivered, retrying, dead, skipped).
    pub deliveries: IntCounterVec,
    /// Time a provider took to accept or refuse one delivery, by channel.
    pub send_seconds: HistogramVec,
    /// Batches waiting in NOTIFY (pending plus unacknowledged), by channel and lane.
    pub queue_depth: IntGaugeVec,
    /// Time deliveries waited for a rate limit, by channel and limit
    /// (account, destination, retry_after).
    pub rate_limit_wait_seconds: HistogramVec,
    /// Time to plan one send (scan, chunk, publish), by notice kind.
    pub plan_seconds: HistogramVec,
    /// Deliveries planned, by channel and lane.
    pub planned: IntCounterVec,
    /// Deliveries a redelivered batch did not send again because its
    /// ledger said they were done, by channel.
    pub ledger_hits: IntCounterVec,
    /// Deliveries not sent again because this process delivered them
    /// already (their receipt or ledger write had failed), by channel.
    pub remembered: IntCounterVec,
    /// News held for a batching window, by notice kind.
    pub held: IntCounterVec,
    /// Subscribers known.
    pub subscribers: IntGauge,
    /// API requests by endpoint and outcome.
    pub api_requests: IntCounterVec,
    /// Inbound HTTP requests (SMS replies, links) by kind and outcome.
    pub inbound: IntCounterVec,
    /// Endpoints stopped or disabled by a provider's answer, by channel and state.
    pub endpoint_changes: IntCounterVec,
}

impl Metrics {
    /// Registers them.
    pub fn register(registry: &Registry) -> Result<Self, MetricError> {
        let seconds = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        Ok(Self {
            deliveries: registry.counter(
                "deliveries_total",
                "Deliveries by channel and outcome (delivered, retrying, dead, skipped)",
                &["channel", "outcome"],
            )?,
            send_seconds: registry.histogram_with_buckets(
                "send_seconds",
                "Time a provider took to answer one delivery",
                &["channel"],
                seconds.clone(),
            )?,
            queue_depth: registry.gauge(
                "queue_depth",
                "Delivery batches waiting in NOTIFY (pending and unacknowledged)",
                &["channel", "lane"],
            )?,
            rate_limit_wait_seconds: registry.histogram_with_buckets(
                "rate_limit_wait_seconds",
                "Time a delivery waited for a rate limit",
                &["channel", "limit"],
                seconds.clone(),
            )?,
            plan_seconds: registry.histogram_with_buckets(
                "plan_seconds",
                "Time to plan and publish one send",
                &["kind"],
                seconds,
            )?,
            planned: registry.counter(
                "planned_deliveries_total",
                "Deliveries planned into NOTIFY",
                &["channel", "lane"],
            )?,
            ledger_hits: registry.counter(
                "ledger_hits_total",
                "Deliveries not sent again because the ledger says they are done",
                &["channel"],
            )?,
            remembered: registry.counter(
                "remembered_deliveries_total",
                "Deliveries not sent again because this process had delivered them before its ledger write failed",
                &["channel"],
            )?,
            held: registry.counter(
                "held_total",
                "News held until a batching window closes",
                &["kind"],
            )?,
            subscribers: registry.single_gauge("subscribers", "Subscribers known")?,
            api_requests: registry.counter(
                "api_requests_total",
                "Subscriber API requests by endpoint and outcome",
                &["endpoint", "outcome"],
            )?,
            inbound: registry.counter(
                "inbound_total",
                "Inbound HTTP requests by kind and outcome",
                &["kind", "outcome"],
            )?,
            endpoint_changes: registry.counter(
                "endpoint_changes_total",
                "Endpoints stopped or disabled by a provider's answer",
                &["channel", "state"],
            )?,
        })
    }
}
