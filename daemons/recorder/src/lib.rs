//! The recorder: keeps the history of probe results and status changes in
//! ClickHouse.
//!
//! It reads `HEALTH` and `STATUS` with durable batch consumers and inserts
//! each batch in one `INSERT`, acking only after ClickHouse has stored it. Copies
//! of an event collapse in `ReplacingMergeTree` tables, so redeliveries are
//! harmless; while ClickHouse is away, messages wait on the bus.
//!
//! # Layout
//!
//! - [`config`]: the ClickHouse flags and their validation.
//! - [`schema`]: the DDL of the database and tables (ClickHouse 18.16 and current).
//! - [`rows`]: pure mapping from messages to row structs.
//! - [`sink`]: the consumers and their handlers: decode, map, insert, retry.
//! - [`service`]: ClickHouse I/O: schema creation, inserts, their metrics.
//! - [`run`]: start-up order and readiness.

pub mod config;
pub mod rows;
pub mod schema;
pub mod service;
pub mod sink;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use beacon_core::consume::{
    run_batch_consumer, BatchArgs, ConsumerMetrics, ConsumerSpec, Delivery, Outcome,
};
use beacon_core::daemon::Daemon;
use beacon_core::retry::{until_ok, Backoff, GaveUp, RetryPolicy};
use beacon_core::telemetry::MetricError;

use crate::config::RecorderConfig;
use crate::service::ClickHouse;
use crate::sink::Sink;

/// Why the recorder could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a name clash: a bug).
    #[error(transparent)]
    Metrics(#[from] MetricError),
}

/// Runs the recorder until shutdown begins.
///
/// Creates the ClickHouse schema (retrying while ClickHouse is
/// unreachable), starts both consumers on the daemon's shutdown path and
/// marks the daemon ready once the consumers exist on the server. Returns
/// when shutdown begins; [`Daemon::finish`] then waits for the consumers to
/// finish the message in hand.
pub async fn run(daemon: &Daemon, config: RecorderConfig) -> Result<(), RunError> {
    run_with(
        daemon,
        config,
        consumer_specs(&BatchArgs::default()).unwrap_or_default(),
    )
    .await
}

/// The recorder's consumers with the batch flags applied, or every reason
/// they cannot work (the daemon exits 64 with them).
pub fn consumer_specs(args: &BatchArgs) -> Result<Vec<ConsumerSpec>, Vec<String>> {
    args.apply_all(vec![sink::health_spec(), sink::status_spec()])
}

/// [`run`] with consumer settings from [`consumer_specs`]: the health
/// consumer first, then the status consumer.
pub async fn run_with(
    daemon: &Daemon,
    config: RecorderConfig,
    specs: Vec<ConsumerSpec>,
) -> Result<(), RunError> {
    let consumer_metrics = ConsumerMetrics::register(&daemon.process.metrics)?;
    let store = Arc::new(ClickHouse::new(&config, &daemon.process.metrics)?);

    if !create_schema(daemon, &config, &store).await {
        return Ok(());
    }

    let sink = Sink::new(store);
    let mut specs = specs.into_iter();
    let health = specs.next().unwrap_or_else(sink::health_spec);
    let status = specs.next().unwrap_or_else(sink::status_spec);
    let health_sink = sink.clone();
    spawn_consumer(
        daemon,
        health.clone(),
        consumer_metrics.clone(),
        move |delivery| health_sink.clone().record_health(delivery),
    );
    spawn_consumer(daemon, status.clone(), consumer_metrics, move |delivery| {
        sink.clone().record_status(delivery)
    });

    if !wait_for_consumers(daemon, &[health, status]).await {
        return Ok(());
    }
    daemon.process.readiness.set(true);
    tracing::info!(database = %config.database, "Recorder ready.");
    daemon.process.shutdown.cancelled().await;
    daemon.process.readiness.set(false);
    Ok(())
}

/// Runs one consumer as a task the daemon's shutdown waits for.
fn spawn_consumer<H, Fut>(daemon: &Daemon, spec: ConsumerSpec, metrics: ConsumerMetrics, handler: H)
where
    H: Fn(Vec<Delivery>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Outcome>> + Send + 'static,
{
    let consumer = run_batch_consumer(
        daemon.js.clone(),
        spec,
        metrics,
        daemon.process.shutdown.clone(),
        handler,
    );
    daemon.process.shutdown.spawn(consumer);
}

/// Creates the schema, retrying with backoff until it works; false if
/// shutdown began first.
async fn create_schema(daemon: &Daemon, config: &RecorderConfig, store: &ClickHouse) -> bool {
    let policy = RetryPolicy::new(Duration::from_millis(250), Duration::from_secs(10));
    let what = format!("create the ClickHouse schema at {}", config.url);
    let created = until_ok(&daemon.process.shutdown, policy, &what, || {
        store.ensure_schema()
    })
    .await;
    match created {
        Ok(()) => {
            tracing::info!(url = %config.url, database = %store.database(), "ClickHouse schema ready.");
            true
        }
        Err(GaveUp::Permanent(e)) => {
            // Not reached today (every store error is retryable); kept so a
            // future permanent error is reported, not swallowed.
            tracing::error!(url = %config.url, error = %e, "Cannot create the ClickHouse schema.");
            false
        }
        Err(GaveUp::Shutdown) => false,
    }
}

/// Waits until every durable consumer exists on the server, so readiness
/// means the recorder is really consuming; false if shutdown began first.
async fn wait_for_consumers(daemon: &Daemon, specs: &[ConsumerSpec]) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    for spec in specs {
        loop {
            let exists = match daemon.js.get_stream(&spec.stream).await {
                Ok(stream) => stream.consumer_info(&spec.durable).await.is_ok(),
                Err(_) => false,
            };
            if exists {
                break;
            }
            if !daemon.process.shutdown.sleep(backoff.next_delay()).await {
                return false;
            }
        }
    }
    true
}
