//! The api daemon's metrics, `beacon_api_…`, with bounded labels: routes
//! are their templates (`/api/v1/incidents/{id}`), never ids.

use beacon_runtime::telemetry::{MetricError, Metrics as Registry};
use prometheus::{HistogramVec, IntCounterVec};

/// Every metric of the api daemon.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Requests by route template, method and status.
    pub requests: IntCounterVec,
    /// Time per request by route template.
    pub request_seconds: HistogramVec,
    /// Refused keys by reason.
    pub refused: IntCounterVec,
    /// Requests over a rate limit, by kind (key, address).
    pub rate_limited: IntCounterVec,
    /// Public sign-ups and link follows, by outcome.
    pub signups: IntCounterVec,
}

impl Metrics {
    /// Registers them.
    pub fn register(registry: &Registry) -> Result<Self, MetricError> {
        Ok(Self {
            requests: registry.counter(
                "requests_total",
                "HTTP requests by route template, method and status",
                &["route", "method", "status"],
            )?,
            request_seconds: registry.histogram_with_buckets(
                "request_seconds",
                "Time to answer an HTTP request, by route template",
                &["route"],
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ],
            )?,
            refused: registry.counter(
                "keys_refused_total",
                "Requests refused for their API key, by reason",
                &["reason"],
            )?,
            rate_limited: registry.counter(
                "rate_limited_total",
                "Requests refused for a rate limit, by kind (key, address)",
                &["kind"],
            )?,
            signups: registry.counter(
                "signups_total",
                "Public sign-up requests and link follows by outcome (pending, known, recipient_limited, invalid, rate_limited, unavailable, confirmed, confirm_invalid, unsubscribed, unsubscribe_invalid)",
                &["outcome"],
            )?,
        })
    }
}
