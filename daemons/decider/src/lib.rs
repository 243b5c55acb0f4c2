//! The decider: turns probe evidence into component status, and owns page
//! configs (and, later, incidents and maintenance).
//!
//! # Layout
//!
//! - [`rules`]: pure per-region hysteresis and quorum across regions.
//! - [`step`]: pure application of one probe result to a component.
//! - [`health`]: the HEALTH consumer handler: KV `status` CAS, then a STATUS event.
//! - [`configs`]: KV `config` watch and the `beacon.api.config.*` endpoints.

pub mod configs;
pub mod health;
pub mod rules;
pub mod step;

use beacon_core::buckets;
use std::time::Duration;

use beacon_core::consume::{run_consumer, BatchArgs, BatchSettings, ConsumerMetrics, ConsumerSpec};
use beacon_core::daemon::Daemon;
use beacon_core::names::{KV_CONFIG, KV_STATUS, STREAM_HEALTH};

use crate::configs::Configs;
use crate::health::HealthHandler;

/// Why the decider stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_core::telemetry::MetricError),
}

/// Durable consumer name of the decider on HEALTH.
pub const CONSUMER: &str = "decider";

/// The decider's HEALTH consumer: results are applied one at a time in
/// arrival order (a component's state is a fold over them), in small
/// batches closed within a few milliseconds, so a failing check becomes a
/// status change without waiting for a batch to fill.
pub fn health_spec() -> ConsumerSpec {
    ConsumerSpec {
        batch: BatchSettings {
            max_messages: 500,
            max_wait: Duration::from_millis(5),
            concurrency: 1,
        },
        ..ConsumerSpec::new(STREAM_HEALTH, CONSUMER)
    }
}

/// The HEALTH consumer with the batch flags applied, or every reason it
/// cannot work (the daemon exits 64 with them).
pub fn consumer_spec(args: &BatchArgs) -> Result<ConsumerSpec, Vec<String>> {
    let mut specs = args.apply_all(vec![health_spec()])?;
    Ok(specs.pop().unwrap_or_else(health_spec))
}

/// Runs the decider until shutdown.
pub async fn run(daemon: Daemon, spec: ConsumerSpec) -> Result<(), RunError> {
    let shutdown = &daemon.process.shutdown;
    let Some(config_store) = buckets::open(&daemon.js, KV_CONFIG, shutdown).await else {
        return Ok(());
    };
    let Some(status_store) = buckets::open(&daemon.js, KV_STATUS, shutdown).await else {
        return Ok(());
    };

    let configs = Configs::default();
    let (loaded_tx, mut loaded_rx) = tokio::sync::watch::channel(false);
    shutdown.spawn(configs::watch(
        daemon.clone(),
        config_store.clone(),
        configs.clone(),
        loaded_tx,
    ));
    shutdown.spawn(configs::serve(daemon.clone(), config_store));

    // Results are only meaningful against the stored configs: wait for them
    // so a restart does not ignore a burst of results.
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = loaded_rx.wait_for(|loaded| *loaded) => {}
    }

    let handler = HealthHandler::new(daemon.clone(), configs, status_store)?;
    let metrics = ConsumerMetrics::register(&daemon.process.metrics)?;
    shutdown.spawn(run_consumer(
        daemon.js.clone(),
        spec,
        metrics,
        shutdown.clone(),
        move |delivery| {
            let handler = handler.clone();
            async move { handler.handle(delivery).await }
        },
    ));
    daemon.process.readiness.set(true);
    tracing::info!("Decider ready.");
    shutdown.cancelled().await;
    Ok(())
}
