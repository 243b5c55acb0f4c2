//! Edge health: a pure hysteresis per edge, and the task that checks every
//! edge over HTTP and publishes which ones are handed out.
//!
//! An edge starts healthy (a responder that just started hands out every
//! edge rather than none), is left out after `fail_after` failed checks in
//! a row and handed out again after `recover_after` passed checks in a
//! row, so one lost packet does not move users around.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use beacon_runtime::shutdown::Shutdown;
use prometheus::{IntCounterVec, IntGaugeVec};

use crate::config::DnsConfig;

/// One edge's hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Whether the edge is handed out.
    pub healthy: bool,
    /// Checks in a row that disagree with `healthy`.
    streak: u32,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Self {
            healthy: true,
            streak: 0,
        }
    }
}

impl Hysteresis {
    /// Folds one check in; true when `healthy` changed.
    pub fn observe(&mut self, passed: bool, fail_after: u32, recover_after: u32) -> bool {
        if passed == self.healthy {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        let needed = if self.healthy {
            fail_after
        } else {
            recover_after
        };
        if self.streak >= needed {
            self.healthy = passed;
            self.streak = 0;
            return true;
        }
        false
    }
}

/// Which edges are handed out, by index into the config's edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthy(pub Vec<bool>);

/// The shared view the DNS handler reads.
pub type HealthView = Arc<ArcSwap<Healthy>>;

/// A view in which every edge of `config` is healthy.
pub fn all_healthy(config: &DnsConfig) -> HealthView {
    Arc::new(ArcSwap::from_pointee(Healthy(vec![
        true;
        config.edges.len()
    ])))
}

/// The checker's metrics.
#[derive(Clone)]
pub struct HealthMetrics {
    /// `edge_healthy{edge}`: 1 while handed out.
    pub healthy: IntGaugeVec,
    /// `edge_checks_total{edge,outcome}`.
    pub checks: IntCounterVec,
    /// `edge_changes_total{edge}`: times an edge was left out or taken back.
    pub changes: IntCounterVec,
}

/// Checks every edge every `check_interval` until shutdown, updating
/// `view` when an edge's hysteresis flips.
pub async fn run(
    config: Arc<DnsConfig>,
    view: HealthView,
    metrics: HealthMetrics,
    shutdown: Shutdown,
) {
    let client = match reqwest::Client::builder()
        .timeout(config.check_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "Cannot build the HTTP client for edge checks; every edge stays handed out.");
            return;
        }
    };
    let mut states = vec![Hysteresis::default(); config.edges.len()];
    for edge in &config.edges {
        metrics.healthy.with_label_values(&[&edge.name]).set(1);
    }
    let mut tick = tokio::time::interval(config.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let checks = config.edges.iter().map(|edge| {
            let client = client.clone();
            async move { check(&client, &edge.check).await }
        });
        let results = futures::future::join_all(checks).await;
        let mut changed = false;
        for ((edge, state), passed) in config.edges.iter().zip(&mut states).zip(results) {
            let outcome = if passed { "passed" } else { "failed" };
            metrics
                .checks
                .with_label_values(&[&edge.name, outcome])
                .inc();
            if state.observe(passed, config.fail_after, config.recover_after) {
                changed = true;
                metrics.changes.with_label_values(&[&edge.name]).inc();
                metrics
                    .healthy
                    .with_label_values(&[&edge.name])
                    .set(i64::from(state.healthy));
                if state.healthy {
                    tracing::info!(edge = %edge.name, "Edge passes its checks again; handing it out.");
                } else {
                    tracing::warn!(edge = %edge.name, check = %edge.check, "Edge fails its checks; no longer handed out.");
                }
            }
        }
        if changed {
            view.store(Arc::new(Healthy(
                states.iter().map(|s| s.healthy).collect(),
            )));
        }
    }
}

/// One check: a 2xx answer within the client's timeout.
async fn check(client: &reqwest::Client, url: &url::Url) -> bool {
    let started = Instant::now();
    match client.get(url.clone()).send().await {
        Ok(response) => response.status().is_success(),
        Err(e) => {
            tracing::debug!(%url, error = %e, took = ?started.elapsed(), "Edge check failed.");
            false
        }
    }
}

/// How long, at most, from an edge's death until it is no longer handed
/// out: `fail_after` checks, each up to an interval apart, the last one
/// timing out.
pub fn failover_bound(config: &DnsConfig) -> Duration {
    config.check_interval * config.fail_after + config.check_timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (checks, fail_after, recover_after, healthy after each check)
    const CASES: &[(&[bool], u32, u32, &[bool])] = &[
        // One failure does not move anyone.
        (&[false, true, false, true], 2, 2, &[true, true, true, true]),
        // Two in a row do.
        (&[false, false], 2, 2, &[true, false]),
        // Coming back needs its own streak.
        (
            &[false, false, true, false, true, true],
            2,
            2,
            &[true, false, false, false, false, true],
        ),
        // fail_after 1: at once.
        (&[false, true], 1, 1, &[false, true]),
        // A long outage then recovery with recover_after 3.
        (
            &[false, false, false, true, true, true],
            2,
            3,
            &[true, false, false, false, false, true],
        ),
    ];

    #[test]
    fn hysteresis_table() {
        for (checks, fail_after, recover_after, expected) in CASES {
            let mut state = Hysteresis::default();
            let seen: Vec<bool> = checks
                .iter()
                .map(|passed| {
                    state.observe(*passed, *fail_after, *recover_after);
                    state.healthy
                })
                .collect();
            assert_eq!(&seen, expected, "checks {checks:?}");
        }
    }

    #[test]
    fn a_flip_is_reported_once() {
        let mut state = Hysteresis::default();
        assert!(!state.observe(false, 2, 2));
        assert!(state.observe(false, 2, 2));
        assert!(!state.observe(false, 2, 2));
    }
}
