//! The decider: turns probe evidence into component status, and owns page
//! configs (and, later, incidents and maintenance).
//!
//! # Layout
//!
//! - [`rules`]: pure per-region hysteresis and quorum across regions.
//! - [`step`]: pure application of one probe result to a component.
//! - [`health`]: the HEALTH consumer handler: KV `status` CAS, then a STATUS event.
//! - [`configs`]: KV `config` watch and the `beacon.api.config.*` endpoints.
//!
//! Several deciders may run; one holds the `decider` lease (core
//! [`beacon_core::lease`]) and consumes HEALTH, the others serve the config
//! API and stand by. A standby takes over within the lease TTL of the
//! holder's death, and a deposed holder's status writes are refused by the
//! lease check before they reach KV.

pub mod configs;
pub mod health;
pub mod rules;
pub mod step;

use beacon_core::buckets;
use std::time::Duration;

use beacon_core::consume::{run_consumer, BatchArgs, BatchSettings, ConsumerMetrics, ConsumerSpec};
use beacon_core::daemon::Daemon;
use beacon_core::lease::{Leadership, Lease, LeaseArgs, LeaseConfig, LeaseMetrics};
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

/// The decider's settings beyond the common flags, validated.
#[derive(Debug, Clone)]
pub struct DeciderSettings {
    /// The HEALTH consumer.
    pub consumer: ConsumerSpec,
    /// The lease that keeps one decider active.
    pub lease: LeaseConfig,
}

impl DeciderSettings {
    /// Settings from the flags, or every reason they cannot work.
    pub fn from_args(batch: &BatchArgs, lease: &LeaseArgs) -> Result<Self, Vec<String>> {
        let consumer = consumer_spec(batch);
        let lease = lease.config().and_then(|config| {
            if config.partitions == 1 {
                Ok(config)
            } else {
                // HEALTH is not split by partition yet, so a second
                // partition would have no results of its own to decide.
                Err(vec![format!(
                    "--partitions: the decider runs one partition for now, got {}",
                    config.partitions
                )])
            }
        });
        match (consumer, lease) {
            (Ok(consumer), Ok(lease)) => Ok(Self { consumer, lease }),
            (consumer, lease) => Err(consumer
                .err()
                .into_iter()
                .flatten()
                .chain(lease.err().into_iter().flatten())
                .collect()),
        }
    }
}

/// Role name of the decider's lease.
pub const ROLE: &str = "decider";

/// Runs the decider until shutdown. Every instance serves the config API;
/// only the holder of the decider lease consumes HEALTH and writes status.
pub async fn run(daemon: Daemon, settings: DeciderSettings) -> Result<(), RunError> {
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

    let lease_metrics = LeaseMetrics::register(&daemon.process.metrics)?;
    let lease = loop {
        match Lease::open(&daemon.js, ROLE, 0, settings.lease, lease_metrics.clone()).await {
            Ok(lease) => break lease,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot open the decider lease, retrying.");
                if !shutdown.sleep(Duration::from_secs(1)).await {
                    return Ok(());
                }
            }
        }
    };
    let (leadership_tx, mut leadership) = tokio::sync::watch::channel(Leadership::Follower);
    shutdown.spawn(lease.clone().run(shutdown.clone(), leadership_tx));

    let handler = HealthHandler::new(daemon.clone(), lease, configs, status_store)?;
    let metrics = ConsumerMetrics::register(&daemon.process.metrics)?;
    daemon.process.readiness.set(true);
    tracing::info!("Decider ready, waiting for the decider lease.");

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            led = leadership.wait_for(Leadership::is_leader) => {
                if led.is_err() {
                    return Ok(());
                }
            }
        }
        tracing::info!("Deciding: this decider holds the lease.");
        handler.reset().await;
        let term = shutdown.child();
        let consuming = {
            let handler = handler.clone();
            shutdown.spawn(run_consumer(
                daemon.js.clone(),
                settings.consumer.clone(),
                metrics.clone(),
                term.clone(),
                move |delivery| {
                    let handler = handler.clone();
                    async move { handler.handle(delivery).await }
                },
            ))
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = leadership.wait_for(|l| !l.is_leader()) => {
                tracing::warn!("Lease lost: stopping the HEALTH consumer.");
            }
        }
        term.cancel();
        let _ = consuming.await;
    }
}
