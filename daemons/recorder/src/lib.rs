//! The recorder: keeps the history of probe results, status changes,
//! incidents, maintenance windows and notification deliveries in
//! ClickHouse, computes exact uptime from it, keeps daily rollups in KV
//! `uptime` and serves SLA reports.
//!
//! It reads `HEALTH`, `STATUS`, `INCIDENTS`, `MAINTENANCE` and `DELIVERIES`
//! with durable batch consumers and inserts each batch in one `INSERT` per
//! table, acking only after ClickHouse has stored it. Copies of an event
//! collapse by event id, so redeliveries are harmless; while ClickHouse is
//! away, messages wait on the bus.
//!
//! # Layout
//!
//! - [`config`]: the flags and their validation.
//! - [`schema`]: the migrations of `schemas/clickhouse/`, single or sharded.
//! - [`rows`]: pure mapping from messages to row structs.
//! - [`sink`]: the consumers and their handlers: decode, map, insert, isolate refused rows.
//! - [`group`]: group inserts: batches that arrive while an insert runs go in the next one together.
//! - [`service`]: ClickHouse I/O: migrations, inserts, queries, error classes, metrics.
//! - [`uptime`]: the uptime SQL and the pure reference it is tested against.
//! - [`rollup`]: daily rollups in ClickHouse and the last 90 days in KV `uptime`.
//! - [`report`]: SLA reports: uptime against targets, error budgets, incidents, MTTR.
//! - [`api`]: the `beacon.api.sla.report` endpoint.
//! - [`pages`]: page configs followed from KV `config`.
//! - [`run`]: start-up order and readiness.

pub mod api;
pub mod config;
pub mod group;
pub mod pages;
pub mod report;
pub mod rollup;
pub mod rows;
pub mod schema;
pub mod service;
pub mod sink;
pub mod uptime;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use beacon_contract::names::{KV_CONFIG, KV_UPTIME};
use beacon_runtime::buckets;
use beacon_runtime::consume::{
    run_batch_consumer, BatchArgs, ConsumerMetrics, ConsumerSpec, Delivery, Outcome,
};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::retry::{until_ok, Backoff, GaveUp, RetryPolicy};
use beacon_runtime::telemetry::MetricError;

use crate::config::RecorderConfig;
use crate::pages::Pages;
use crate::rollup::{Dirty, RollupMetrics, Rollups};
use crate::service::ClickHouse;
use crate::sink::{Sink, SinkMetrics};

/// Why the recorder could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a name clash: a bug).
    #[error(transparent)]
    Metrics(#[from] MetricError),
}

/// Runs the recorder until shutdown begins, with the default consumers.
pub async fn run(daemon: &Daemon, config: RecorderConfig) -> Result<(), RunError> {
    run_with(
        daemon,
        config,
        consumer_specs(&BatchArgs::default()).unwrap_or_default(),
    )
    .await
}

/// The recorder's consumers with the batch flags applied (health, status,
/// incidents, maintenance, deliveries), or every reason they cannot work
/// (the daemon exits 64 with them).
pub fn consumer_specs(args: &BatchArgs) -> Result<Vec<ConsumerSpec>, Vec<String>> {
    args.apply_all(vec![
        sink::health_spec(),
        sink::status_spec(),
        sink::incidents_spec(),
        sink::maintenance_spec(),
        sink::deliveries_spec(),
    ])
}

/// [`run`] with consumer settings from [`consumer_specs`].
///
/// Migrates the ClickHouse schema (retrying while ClickHouse is
/// unreachable), starts the consumers, follows KV `config`, starts the
/// rollups and the report API, and marks the daemon ready once the
/// consumers exist on the server and the page configs are loaded. Returns
/// when shutdown begins; [`Daemon::finish`] then waits for the consumers to
/// finish the messages in hand.
pub async fn run_with(
    daemon: &Daemon,
    config: RecorderConfig,
    specs: Vec<ConsumerSpec>,
) -> Result<(), RunError> {
    let metrics = &daemon.process.metrics;
    let consumer_metrics = ConsumerMetrics::register(metrics)?;
    let sink_metrics = SinkMetrics::register(metrics, daemon.process.degradation.clone())?;
    let rollup_metrics = RollupMetrics::register(metrics)?;
    let pending = metrics.gauge(
        "pending_messages",
        "Messages in the stream the consumer has not acked yet (its lag behind the stream), by consumer",
        &["consumer"],
    )?;
    let store = Arc::new(ClickHouse::new(&config, metrics)?);

    if !migrate(daemon, &config, &store).await {
        return Ok(());
    }

    let dirty = Dirty::default();
    let sink = Sink::new(store.clone(), dirty.clone(), sink_metrics);
    let mut specs = specs.into_iter();
    let mut next = |default: fn() -> ConsumerSpec| specs.next().unwrap_or_else(default);
    let health = next(sink::health_spec);
    let status = next(sink::status_spec);
    let incidents = next(sink::incidents_spec);
    let maintenance = next(sink::maintenance_spec);
    let deliveries = next(sink::deliveries_spec);
    let all = vec![
        health.clone(),
        status.clone(),
        incidents.clone(),
        maintenance.clone(),
        deliveries.clone(),
    ];
    let s = sink.clone();
    spawn_consumer(daemon, health, consumer_metrics.clone(), move |b| {
        s.clone().record_health(b)
    });
    let s = sink.clone();
    spawn_consumer(daemon, status, consumer_metrics.clone(), move |b| {
        s.clone().record_status(b)
    });
    let s = sink.clone();
    spawn_consumer(daemon, incidents, consumer_metrics.clone(), move |b| {
        s.clone().record_incidents(b)
    });
    let s = sink.clone();
    spawn_consumer(daemon, maintenance, consumer_metrics.clone(), move |b| {
        s.clone().record_maintenance(b)
    });
    let s = sink;
    spawn_consumer(daemon, deliveries, consumer_metrics, move |b| {
        s.clone().record_deliveries(b)
    });
    daemon
        .process
        .shutdown
        .spawn(watch_pending(daemon.clone(), all.clone(), pending));

    let shutdown = &daemon.process.shutdown;
    let Some(config_kv) = buckets::open(&daemon.js, KV_CONFIG, shutdown).await else {
        return Ok(());
    };
    let Some(uptime_kv) = buckets::open(&daemon.js, KV_UPTIME, shutdown).await else {
        return Ok(());
    };
    let pages = Pages::default();
    let (loaded_tx, mut loaded) = tokio::sync::watch::channel(false);
    shutdown.spawn(pages::follow(
        config_kv,
        pages.clone(),
        loaded_tx,
        shutdown.clone(),
    ));
    let requests = daemon.process.metrics.counter(
        "api_requests_total",
        "SLA report API requests, by endpoint and outcome",
        &["endpoint", "outcome"],
    )?;
    let (api_up_tx, api_up) = tokio::sync::oneshot::channel();
    let sla_api = api::Api {
        store: store.clone(),
        pages: pages.clone(),
        snapshots: Arc::default(),
        requests,
    };
    shutdown.spawn(api::serve(daemon.clone(), sla_api, api_up_tx));

    if !wait_for_consumers(daemon, &all).await {
        return Ok(());
    }
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = loaded.wait_for(|loaded| *loaded) => {}
    }
    // Ready only once the SLA report endpoint answers too; a recorder whose
    // endpoint could not be registered keeps recording but never says it
    // is ready, so its supervisor sees it.
    let api_answers = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        up = api_up => up.is_ok(),
    };
    let rollups = Rollups {
        store,
        pages,
        dirty,
        kv: uptime_kv,
        clock: daemon.clock.clone(),
        origin: daemon.origin.clone(),
        interval: config.rollup_interval,
        metrics: rollup_metrics,
    };
    shutdown.spawn(rollups.run(shutdown.clone()));

    daemon.process.readiness.set(api_answers);
    tracing::info!(database = %config.database, "Recorder ready.");
    shutdown.cancelled().await;
    daemon.process.readiness.set(false);
    Ok(())
}

/// Keeps `beacon_recorder_pending_messages` up to date: what each consumer
/// has yet to ack.
async fn watch_pending(daemon: Daemon, specs: Vec<ConsumerSpec>, gauge: prometheus::IntGaugeVec) {
    let every = Duration::from_secs(5);
    loop {
        for spec in &specs {
            if let Ok(stream) = daemon.js.get_stream(&spec.stream).await {
                if let Ok(info) = stream.consumer_info(&spec.durable).await {
                    let pending = info.num_pending + info.num_ack_pending as u64;
                    gauge
                        .with_label_values(&[&spec.durable])
                        .set(i64::try_from(pending).unwrap_or(i64::MAX));
                }
            }
        }
        if !daemon.process.shutdown.sleep(every).await {
            return;
        }
    }
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

/// Runs the migrations, retrying with backoff until they work; false if
/// shutdown began first.
async fn migrate(daemon: &Daemon, config: &RecorderConfig, store: &ClickHouse) -> bool {
    let policy = RetryPolicy::new(Duration::from_millis(250), Duration::from_secs(10));
    let what = format!("migrate the ClickHouse schema at {}", config.url);
    let migrated = until_ok(&daemon.process.shutdown, policy, &what, || store.migrate()).await;
    match migrated {
        Ok(()) => {
            tracing::info!(url = %config.url, database = %store.database(), "ClickHouse schema ready.");
            true
        }
        Err(GaveUp::Permanent(e)) => {
            // A statement the server refuses for good (a migration this
            // ClickHouse cannot run): an operator must act.
            tracing::error!(url = %config.url, error = %e, "Cannot migrate the ClickHouse schema.");
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
