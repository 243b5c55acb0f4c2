//! The decider: turns probe evidence into component status, and owns page
//! configs, overrides, incidents and maintenance.
//!
//! # Layout
//!
//! Pure core (no I/O, no clocks; table and property tests):
//! - [`tracker`]: one region's view of one check: consecutive and k-of-n
//!   thresholds, slow results, out-of-order results ignored.
//! - [`quorum`]: across regions: stale and suspect regions left out,
//!   quorum for `major_outage`, no decision from half the evidence.
//! - [`automation`]: automation's memory and flap detection.
//! - [`component`]: one component: trackers, layers (override,
//!   maintenance, incident, automation), inhibition, proposals.
//! - [`suspect`]: telling a broken probe from a broken target.
//! - [`schedule`]: recurrence rules and maintenance steps.
//!
//! I/O shell:
//! - [`configs`]: page configs from KV `config`, indexed.
//! - [`books`]: incidents, maintenance and overrides, folded from their
//!   streams and bucket, on every instance.
//! - [`store`]: KV `status`, STATUS and proposals, stored so that no change
//!   is lost or doubled.
//! - [`engine`]: the single owner of a partition's state while this
//!   instance leads it.
//! - [`api`]: the operator endpoints, on every instance.
//! - [`metrics`]: the `beacon_decider_…` metrics.
//!
//! Several deciders may run; pages hash into partitions, each with its own
//! lease ([`beacon_runtime::lease`]). The holder of a partition's lease runs
//! its engine and consumes its pages' results; the others serve the API
//! and stand by, and one takes over within the lease TTL when the holder
//! dies.

pub mod api;
pub mod automation;
pub mod books;
pub mod component;
pub mod configs;
pub mod engine;
pub mod metrics;
pub mod quorum;
pub mod schedule;
pub mod store;
pub mod suspect;
pub mod tracker;

use std::time::Duration;

use beacon_contract::event::Envelope;
use beacon_contract::messages::{HealthResult, ProbeHeartbeat};
use beacon_contract::names::{KV_CONFIG, KV_OVERRIDES, KV_STATUS, STREAM_HEALTH};
use beacon_runtime::buckets;
use beacon_runtime::consume::{
    run_batch_consumer, BatchArgs, BatchSettings, ConsumerMetrics, ConsumerSpec, Delivery, Outcome,
};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::lease::{
    partition_of, run_partitions, Leadership, Lease, LeaseArgs, LeaseConfig, LeaseMetrics,
};
use beacon_runtime::shutdown::Shutdown;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::books::Books;
use crate::configs::Configs;
use crate::engine::{Decoded, Engine, Input, Settings};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::suspect::SuspectRules;

/// Why the decider stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_runtime::telemetry::MetricError),
    /// The partition leases could not be opened.
    #[error(transparent)]
    Lease(#[from] beacon_runtime::lease::LeaseError),
}

/// Durable consumer name of the decider on HEALTH (partition 0 of 1).
pub const CONSUMER: &str = "decider";

/// Role name of the decider's leases.
pub const ROLE: &str = "decider";

/// The durable consumer of partition `partition` of `partitions`.
pub fn consumer_name(partition: u32, partitions: u32) -> String {
    if partitions <= 1 {
        CONSUMER.to_owned()
    } else {
        format!("{CONSUMER}-{partition}")
    }
}

/// The decider's HEALTH consumer: batches closed within a few
/// milliseconds, so a failing check becomes a status change at once; two
/// in flight, so the next batch is pulled and decoded while the engine
/// works (the engine applies them in order, and ignores a result older than
/// one it has).
pub fn health_spec() -> ConsumerSpec {
    ConsumerSpec {
        batch: BatchSettings {
            max_messages: 1000,
            max_wait: Duration::from_millis(5),
            concurrency: 2,
        },
        ..ConsumerSpec::new(STREAM_HEALTH, CONSUMER)
    }
}

/// The decider's flags beyond the common ones and the consumer and lease
/// flags.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct EngineArgs {
    /// Fewest checks with a recent result to judge a probe region by.
    #[arg(long, env = "BEACON_SUSPECT_MIN_CHECKS", default_value_t = 10)]
    pub suspect_min_checks: u32,
    /// Share of its checks (0 to 1) a region must fail at once, while
    /// another passes them, to be a suspect probe.
    #[arg(long, env = "BEACON_SUSPECT_SHARE", default_value_t = 0.5)]
    pub suspect_share: f64,
    /// How far back a result counts when judging a probe, e.g. `1m`.
    #[arg(long, env = "BEACON_SUSPECT_WINDOW", default_value = "1m", value_parser = humantime::parse_duration)]
    pub suspect_window: Duration,
    /// Results older than this are dropped, e.g. `15m`.
    #[arg(long, env = "BEACON_MAX_RESULT_AGE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub max_result_age: Duration,
    /// Results stamped further ahead than this are dropped (a probe with a
    /// wrong clock), e.g. `1m`.
    #[arg(long, env = "BEACON_MAX_CLOCK_SKEW", default_value = "1m", value_parser = humantime::parse_duration)]
    pub max_clock_skew: Duration,
}

/// The decider's settings, validated.
#[derive(Debug, Clone)]
pub struct DeciderSettings {
    /// The HEALTH consumer (its name and filter are set per partition).
    pub consumer: ConsumerSpec,
    /// The leases that keep one decider active per partition.
    pub lease: LeaseConfig,
    /// What the engine judges by.
    pub suspect: SuspectRules,
    /// Oldest result applied.
    pub max_result_age: Duration,
    /// Furthest-ahead result applied.
    pub max_clock_skew: Duration,
}

impl DeciderSettings {
    /// Settings from the flags, or every reason they cannot work.
    pub fn from_args(
        batch: &BatchArgs,
        lease: &LeaseArgs,
        engine: &EngineArgs,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let consumer = match batch.apply_all(vec![health_spec()]) {
            Ok(mut specs) => specs.pop(),
            Err(problems) => {
                errors.extend(problems);
                None
            }
        };
        let lease = match lease.config() {
            Ok(lease) => Some(lease),
            Err(problems) => {
                errors.extend(problems);
                None
            }
        };
        if engine.suspect_min_checks == 0 {
            errors.push("--suspect-min-checks must be at least 1".to_owned());
        }
        if !(engine.suspect_share > 0.0 && engine.suspect_share <= 1.0) {
            errors.push(format!(
                "--suspect-share must be above 0 and at most 1, got {}",
                engine.suspect_share
            ));
        }
        if engine.suspect_window < Duration::from_secs(1) {
            errors.push("--suspect-window must be at least 1s".to_owned());
        }
        if engine.max_result_age < Duration::from_secs(10) {
            errors.push("--max-result-age must be at least 10s".to_owned());
        }
        match (consumer, lease) {
            (Some(consumer), Some(lease)) if errors.is_empty() => Ok(Self {
                consumer,
                lease,
                suspect: SuspectRules {
                    min_checks: engine.suspect_min_checks,
                    share: engine.suspect_share,
                    window_ms: engine.suspect_window.as_millis() as u64,
                },
                max_result_age: engine.max_result_age,
                max_clock_skew: engine.max_clock_skew,
            }),
            _ => Err(errors),
        }
    }
}

/// Runs the decider until shutdown. Every instance serves the API; the
/// holder of each partition's lease decides that partition's pages.
pub async fn run(daemon: Daemon, settings: DeciderSettings) -> Result<(), RunError> {
    let shutdown = daemon.process.shutdown.clone();
    let Some(config_store) = buckets::open(&daemon.js, KV_CONFIG, &shutdown).await else {
        return Ok(());
    };
    let Some(status_store) = buckets::open(&daemon.js, KV_STATUS, &shutdown).await else {
        return Ok(());
    };
    let Some(overrides_store) = buckets::open(&daemon.js, KV_OVERRIDES, &shutdown).await else {
        return Ok(());
    };
    let metrics = Metrics::register(&daemon.process.metrics)?;
    let consumer_metrics = ConsumerMetrics::register(&daemon.process.metrics)?;
    let lease_metrics = LeaseMetrics::register(&daemon.process.metrics)?;

    let configs = Configs::default();
    let (configs_loaded, mut configs_ready) = watch::channel(false);
    shutdown.spawn(configs::watch(
        daemon.clone(),
        config_store.clone(),
        configs.clone(),
        configs_loaded,
    ));
    let books = Books::default();
    let (books_loaded, mut books_ready) = watch::channel(false);
    books::follow(
        &daemon.js,
        overrides_store.clone(),
        books.clone(),
        &shutdown,
        books_loaded,
    );
    let (api_up, api_ready) = tokio::sync::oneshot::channel();
    shutdown.spawn(api::serve(
        api::Api {
            daemon: daemon.clone(),
            configs: configs.clone(),
            books: books.clone(),
            config_store,
            status_store: status_store.clone(),
            overrides_store,
            metrics: metrics.clone(),
            regional: beacon_runtime::regional::RegionalWriter::start(
                daemon.js.clone(),
                &daemon.origin,
                &shutdown,
            ),
        },
        api_up,
    ));

    // Results are only meaningful against the stored configs, incidents and
    // windows: wait for them so a new term does not decide half-blind.
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async {
            let _ = configs_ready.wait_for(|loaded| *loaded).await;
            let _ = books_ready.wait_for(|loaded| *loaded).await;
        } => {}
    }

    let leases = loop {
        match run_partitions(
            &daemon.js,
            ROLE,
            settings.lease,
            lease_metrics.clone(),
            &shutdown,
        )
        .await
        {
            Ok(leases) => break leases,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot open the decider leases, retrying.");
                if !shutdown.sleep(Duration::from_secs(1)).await {
                    return Ok(());
                }
            }
        }
    };
    let store = Store::new(daemon.clone(), status_store);
    // Ready only once the API answers (or could not start, which it has
    // logged).
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = api_ready => {}
    }
    daemon.process.readiness.set(true);
    tracing::info!(
        partitions = settings.lease.partitions,
        "Decider ready, waiting for its leases."
    );
    let partitions = settings.lease.partitions;
    for (partition, (lease, leadership)) in leases.into_iter().enumerate() {
        let partition = Partition {
            daemon: daemon.clone(),
            partition: partition as u32,
            partitions,
            lease,
            configs: configs.clone(),
            books: books.clone(),
            store: store.clone(),
            settings: settings.clone(),
            metrics: metrics.clone(),
            consumer_metrics: consumer_metrics.clone(),
        };
        shutdown.spawn(partition.lead(leadership));
    }
    shutdown.cancelled().await;
    Ok(())
}

/// One partition: leads it whenever this instance holds its lease.
struct Partition {
    daemon: Daemon,
    partition: u32,
    partitions: u32,
    lease: Lease,
    configs: Configs,
    books: Books,
    store: Store,
    settings: DeciderSettings,
    metrics: Metrics,
    consumer_metrics: ConsumerMetrics,
}

impl Partition {
    async fn lead(self, mut leadership: watch::Receiver<Leadership>) {
        let shutdown = self.daemon.process.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                led = leadership.wait_for(Leadership::is_leader) => if led.is_err() { return },
            }
            tracing::info!(
                partition = self.partition,
                "Deciding: this decider holds the partition's lease."
            );
            let term = shutdown.child();
            let (inputs, receiver) = mpsc::channel(4);
            let engine = Engine::new(
                self.daemon.clone(),
                self.lease.clone(),
                self.configs.clone(),
                self.books.clone(),
                self.store.clone(),
                Settings {
                    suspect: self.settings.suspect,
                    max_future_ms: self.settings.max_clock_skew.as_millis() as u64,
                    max_age_ms: self.settings.max_result_age.as_millis() as u64,
                    partition: self.partition,
                    partitions: self.partitions,
                },
                self.metrics.clone(),
            );
            let engine_task = shutdown.spawn(engine.run(receiver, term.clone()));
            let consumer_task =
                shutdown.spawn(self.clone_parts().consume(inputs.clone(), term.clone()));
            let heartbeat_task =
                shutdown.spawn(heartbeats(self.daemon.client.clone(), inputs, term.clone()));
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = leadership.wait_for(|l| !l.is_leader()) => {
                    tracing::warn!(partition = self.partition, "Lease lost: stopping this partition's term.");
                }
            }
            term.cancel();
            let _ = consumer_task.await;
            let _ = heartbeat_task.await;
            let _ = engine_task.await;
        }
    }

    fn clone_parts(&self) -> Consuming {
        Consuming {
            daemon: self.daemon.clone(),
            partition: self.partition,
            partitions: self.partitions,
            configs: self.configs.clone(),
            spec: self.settings.consumer.clone(),
            metrics: self.consumer_metrics.clone(),
        }
    }
}

/// The HEALTH consumer of one partition's term.
struct Consuming {
    daemon: Daemon,
    partition: u32,
    partitions: u32,
    configs: Configs,
    spec: ConsumerSpec,
    metrics: ConsumerMetrics,
}

impl Consuming {
    /// The subjects of this partition: everything for one partition, the
    /// pages that hash into it otherwise.
    fn filter(&self) -> Option<Vec<String>> {
        if self.partitions <= 1 {
            return Some(Vec::new());
        }
        let subjects: Vec<String> = self
            .configs
            .pages()
            .into_iter()
            .filter(|page| partition_of(page, self.partitions) == self.partition)
            .map(|page| beacon_contract::names::page_health_filter(&page))
            .collect();
        (!subjects.is_empty()).then_some(subjects)
    }

    /// Consumes until the term ends; restarts the consumer when the pages
    /// of a partition change its filter.
    async fn consume(self, inputs: mpsc::Sender<Input>, term: Shutdown) {
        let mut changes = self.configs.subscribe();
        loop {
            let filter = self.filter();
            let run = term.child();
            let task = filter.clone().map(|subjects| {
                let spec = ConsumerSpec {
                    durable: consumer_name(self.partition, self.partitions),
                    filter_subjects: subjects,
                    ..self.spec.clone()
                };
                let inputs = inputs.clone();
                term.spawn(run_batch_consumer(
                    self.daemon.js.clone(),
                    spec,
                    self.metrics.clone(),
                    run.clone(),
                    move |batch: Vec<Delivery>| {
                        let inputs = inputs.clone();
                        async move { handle(inputs, batch).await }
                    },
                ))
            });
            // Wait for the term to end or the filter to change.
            let changed = loop {
                tokio::select! {
                    _ = term.cancelled() => break false,
                    change = changes.recv() => {
                        if change.is_err() || self.filter() != filter {
                            break true;
                        }
                    }
                }
            };
            run.cancel();
            if let Some(task) = task {
                let _ = task.await;
            }
            if !changed {
                return;
            }
        }
    }
}

/// Decodes a batch and hands it to the engine; the engine's outcomes are
/// the batch's.
async fn handle(inputs: mpsc::Sender<Input>, batch: Vec<Delivery>) -> Vec<Outcome> {
    let count = batch.len();
    let decoded: Vec<Decoded> = batch
        .into_iter()
        .map(|delivery| {
            Envelope::<HealthResult>::decode(&delivery.payload)
                .map(|envelope| (delivery.subject, envelope))
                .map_err(|e| e.to_string())
        })
        .collect();
    let (reply, outcomes) = oneshot::channel();
    let gone = || vec![Outcome::retry("this decider's term ended"); count];
    if inputs
        .send(Input::Health {
            batch: decoded,
            reply,
        })
        .await
        .is_err()
    {
        return gone();
    }
    outcomes.await.unwrap_or_else(|_| gone())
}

/// Forwards probe heartbeats to the engine until the term ends. They are
/// read live (a missed one is replaced by the next), not from the stream.
async fn heartbeats(client: async_nats::Client, inputs: mpsc::Sender<Input>, term: Shutdown) {
    let mut subscription = loop {
        match client
            .subscribe(beacon_contract::names::ALL_PROBE_HEARTBEATS)
            .await
        {
            Ok(subscription) => break subscription,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot subscribe to probe heartbeats, retrying.");
                if !term.sleep(Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    };
    loop {
        let message = tokio::select! {
            _ = term.cancelled() => return,
            message = subscription.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        match Envelope::<ProbeHeartbeat>::decode(&message.payload) {
            Ok(heartbeat) => {
                if inputs.send(Input::Heartbeat(heartbeat)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "Unreadable probe heartbeat skipped.")
            }
        }
    }
}
