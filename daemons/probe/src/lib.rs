//! The probe: runs the checks assigned to its region and publishes every
//! result to HEALTH.
//!
//! # Layout
//!
//! - [`checks`]: one module per check kind (HTTP, TCP), one dispatching `match`.
//! - [`schedule`]: follows KV `config` and keeps one jittered task per check.
//! - [`outbox`]: buffers results while the bus is away and publishes them, pipelined.

pub mod checks;
pub mod outbox;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use beacon_core::buckets;
use beacon_core::daemon::Daemon;
use beacon_core::names::KV_CONFIG;
use beacon_core::publish::Publisher;

use crate::checks::Clients;
use crate::outbox::Outbox;
use crate::schedule::Runner;

/// Probe settings beyond the common flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Region this probe reports as.
    pub region: String,
    /// Results kept while the bus is unreachable.
    pub outbox_capacity: usize,
}

impl ProbeConfig {
    /// Checks the settings, returning every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Err(e) = beacon_core::names::check_token(&self.region) {
            errors.push(format!("--region: {e}"));
        }
        if self.outbox_capacity == 0 {
            errors.push("--outbox-capacity: must be at least 1".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Why the probe stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_core::telemetry::MetricError),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Runs the probe until shutdown.
pub async fn run(daemon: Daemon, config: ProbeConfig) -> Result<(), RunError> {
    let metrics = &daemon.process.metrics;
    let outbox = Arc::new(Outbox::new(
        config.outbox_capacity,
        metrics.single_gauge("outbox_depth", "Results waiting to be published")?,
        metrics.single_counter(
            "outbox_dropped_total",
            "Results dropped because the outbox was full",
        )?,
    ));
    let runner = Runner {
        daemon: daemon.clone(),
        region: config.region.clone(),
        clients: Clients::new()?,
        outbox: outbox.clone(),
        runs: metrics.counter(
            "checks_total",
            "Checks run, by kind and outcome",
            &["kind", "outcome"],
        )?,
        latency: metrics.histogram(
            "check_duration_seconds",
            "Check latency, by kind",
            &["kind"],
        )?,
        scheduled: metrics.single_gauge("checks_scheduled", "Checks this probe runs")?,
    };

    let Some(store) = buckets::open(&daemon.js, KV_CONFIG, &daemon.process.shutdown).await else {
        return Ok(());
    };

    {
        let publisher = Publisher::new(
            daemon.client.clone(),
            outbox::IN_FLIGHT,
            Duration::from_secs(10),
        );
        let shutdown = daemon.process.shutdown.clone();
        let outbox = outbox.clone();
        daemon.process.shutdown.spawn(async move {
            outbox
                .run_sender(publisher, shutdown, Duration::from_secs(3))
                .await
        });
    }
    let (loaded_tx, mut loaded_rx) = tokio::sync::watch::channel(false);
    daemon.process.shutdown.spawn(runner.run(store, loaded_tx));
    tokio::select! {
        _ = daemon.process.shutdown.cancelled() => return Ok(()),
        _ = loaded_rx.wait_for(|loaded| *loaded) => {}
    }
    daemon.process.readiness.set(true);
    tracing::info!(region = %config.region, "Probe ready.");
    daemon.process.shutdown.cancelled().await;
    Ok(())
}
