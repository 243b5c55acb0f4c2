//! The notifier: tells subscribers about incidents, maintenance and (where
//! a page opts in) component status changes, by email, SMS, webhook, Slack
//! and Teams, to a million recipients a page, within each provider's
//! limits, once each.
//!
//! # Layout
//!
//! - [`settings`]: flags, validated once (exit 64 with every problem).
//! - [`context`]: what every part shares; signed links; confirmation batches.
//! - [`index`]: pages, subscribers and suppressions in memory, following
//!   KV `config`, `subscribers` and `suppressions`.
//! - [`store`]: writes to KV `subscribers` (compare-and-set, secure erasure)
//!   and `suppressions`.
//! - [`api`]: the subscriber API (`beacon.api.subscriber.…`).
//! - [`inbound`]: public HTTP: SMS replies (STOP/START), one-click
//!   unsubscribe, confirmation.
//! - [`addresses`] (pure): which addresses a subscriber may give.
//! - [`signing`] (pure): signed links, suppression hashes, Standard
//!   Webhooks and Twilio signatures.
//! - [`ssrf`]: the guard between subscriber URLs and the network.
//! - [`planner`]: events into delivery batches, under the planner lease
//!   (pure cores [`planner::news`] and [`planner::plan`]).
//! - [`render`] (pure): a notice as an email, an SMS, a webhook payload, a
//!   Slack or Teams message, everything encoded for where it goes.
//! - [`notify`]: one sender per channel kind, limits, and the NOTIFY
//!   consumers with their ledger, receipts and retries.
//! - [`records`]: what only the notifier stores (threads, ledger,
//!   suppressions) and the inbound SMS it hands itself.
//! - [`metrics`]: the `beacon_notifier_…` metrics.

pub mod addresses;
pub mod api;
pub mod context;
pub mod inbound;
pub mod index;
pub mod metrics;
pub mod notify;
pub mod planner;
pub mod records;
pub mod render;
pub mod settings;
pub mod signing;
pub mod ssrf;
pub mod store;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use beacon_contract::event::Envelope;
use beacon_contract::messages::{ChannelKind, Lane, Subscriber};
use beacon_contract::names::KV_CONFIG;
use beacon_page::config::PageConfig;
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::consume::ConsumerMetrics;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::lease::{Leadership, Lease, LeaseMetrics};
use beacon_runtime::publish::Publisher;
use beacon_runtime::shutdown::Shutdown;
use tokio::sync::watch;

use crate::context::Context;
use crate::index::{Pages, Subscribers, Suppressions};
use crate::notify::worker::{self, Worker};
use crate::notify::Senders;
use crate::settings::Settings;
use crate::signing::Keys;
use crate::ssrf::Guard;

/// Why the notifier stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_runtime::telemetry::MetricError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// `--inbound-listen` could not be bound.
    #[error("cannot serve inbound HTTP on {addr}: {reason}")]
    Inbound {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the OS said.
        reason: String,
    },
}

/// Runs the notifier until shutdown: the API and the senders on every
/// instance, the planner on the one holding its lease.
pub async fn run(daemon: Daemon, settings: Settings) -> Result<(), RunError> {
    let shutdown = daemon.process.shutdown.clone();
    let metrics = metrics::Metrics::register(&daemon.process.metrics)?;
    let consumer_metrics = ConsumerMetrics::register(&daemon.process.metrics)?;
    let lease_metrics = LeaseMetrics::register(&daemon.process.metrics)?;
    let publisher = Publisher::new(daemon.client.clone(), 1024, Duration::from_secs(10));
    let Some(store) = store::Store::open(&daemon, publisher).await else {
        return Ok(());
    };
    let Some(config_store) = buckets::open(&daemon.js, KV_CONFIG, &shutdown).await else {
        return Ok(());
    };
    let ctx = Context {
        daemon: daemon.clone(),
        keys: Keys::new(&settings.signing_secret),
        guard: Guard::system(settings.webhook_allow.clone()),
        settings: Arc::new(settings),
        pages: Pages::default(),
        subscribers: Subscribers::default(),
        suppressions: Suppressions::default(),
        store,
        metrics,
    };

    // Everything the API and the planner read, loaded before either runs.
    let (pages_loaded, mut pages_ready) = watch::channel(false);
    let (subscribers_loaded, mut subscribers_ready) = watch::channel(false);
    let (suppressions_loaded, mut suppressions_ready) = watch::channel(false);
    shutdown.spawn(follow_pages(ctx.clone(), config_store, pages_loaded));
    shutdown.spawn(follow_subscribers(
        ctx.clone(),
        ctx.store.subscribers.clone(),
        subscribers_loaded,
    ));
    shutdown.spawn(follow_suppressions(
        ctx.clone(),
        ctx.store.suppressions.clone(),
        suppressions_loaded,
    ));
    let started = std::time::Instant::now();
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = async {
            let _ = pages_ready.wait_for(|loaded| *loaded).await;
            let _ = subscribers_ready.wait_for(|loaded| *loaded).await;
            let _ = suppressions_ready.wait_for(|loaded| *loaded).await;
        } => {}
    }
    tracing::info!(subscribers = ctx.subscribers.count(), took = ?started.elapsed(), "Subscribers loaded.");

    // The planner's consumers exist from now on, whoever leads.
    for spec in planner::specs(ctx.settings.ack_wait) {
        let policy = beacon_runtime::retry::RetryPolicy::new(
            Duration::from_millis(250),
            Duration::from_secs(5),
        );
        let ensured = beacon_runtime::retry::until_ok(
            &shutdown,
            policy,
            "create the planner's consumers",
            || {
                let spec = spec.clone();
                let js = daemon.js.clone();
                async move { spec.ensure(&js).await.map_err(Retryable) }
            },
        )
        .await;
        if ensured.is_err() {
            return Ok(());
        }
    }

    let (api_up, api_ready) = tokio::sync::oneshot::channel();
    shutdown.spawn(api::serve(ctx.clone(), api_up));
    if let Some(addr) = ctx.settings.inbound_listen {
        inbound::serve(ctx.clone(), addr)
            .await
            .map_err(|e| RunError::Inbound {
                addr,
                reason: e.to_string(),
            })?;
    }

    let senders = Arc::new(Senders::new(ctx.guard.clone(), ctx.settings.send_timeout)?);
    for kind in ChannelKind::ALL {
        let urgent = Arc::new(AtomicUsize::new(0));
        for lane in Lane::ALL {
            let worker = Worker::new(ctx.clone(), senders.clone(), kind, lane, urgent.clone());
            shutdown.spawn(worker.run(consumer_metrics.clone(), shutdown.clone()));
        }
    }
    shutdown.spawn(worker::watch_depth(ctx.clone(), shutdown.clone()));

    let lease = loop {
        match Lease::open(
            &daemon.js,
            planner::ROLE,
            0,
            ctx.settings.lease,
            lease_metrics.clone(),
        )
        .await
        {
            Ok(lease) => break lease,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot open the planner's lease, retrying.");
                if !shutdown.sleep(Duration::from_secs(1)).await {
                    return Ok(());
                }
            }
        }
    };
    let (leading, leadership) = watch::channel(Leadership::Follower);
    shutdown.spawn(lease.clone().run(shutdown.clone(), leading));
    shutdown.spawn(planner::run(
        ctx.clone(),
        lease,
        leadership,
        consumer_metrics,
    ));

    // Ready only once the subscriber API answers (or could not start,
    // which it has logged).
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = api_ready => {}
    }
    daemon.process.readiness.set(true);
    tracing::info!("Notifier ready.");
    shutdown.cancelled().await;
    Ok(())
}

/// A start-up step that may work on the next try.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Retryable(String);

impl beacon_runtime::retry::Classify for Retryable {
    fn class(&self) -> beacon_runtime::retry::Class {
        beacon_runtime::retry::Class::Retryable
    }
}

/// Applies every change of a bucket with `apply` until shutdown; says when
/// the first catch-up is done.
async fn follow(
    store: kv::Store,
    shutdown: &Shutdown,
    loaded: watch::Sender<bool>,
    mut apply: impl FnMut(&kv::Entry),
) {
    let mut changes = buckets::follow(store, shutdown);
    while let Some(change) = changes.recv().await {
        match change {
            Change::Entry(entry) => apply(&entry),
            Change::CaughtUp => {
                loaded.send_replace(true);
            }
        }
    }
}

async fn follow_pages(ctx: Context, store: kv::Store, loaded: watch::Sender<bool>) {
    let shutdown = ctx.daemon.process.shutdown.clone();
    follow(store, &shutdown, loaded, |entry| match entry.operation {
        kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
            Ok(envelope) => ctx.pages.set(&entry.key, Some(envelope.data)),
            Err(e) => tracing::warn!(page = %entry.key, error = %e, "A page config cannot be read; ignored."),
        },
        kv::Operation::Delete | kv::Operation::Purge => ctx.pages.set(&entry.key, None),
    })
    .await
}

async fn follow_subscribers(ctx: Context, store: kv::Store, loaded: watch::Sender<bool>) {
    let shutdown = ctx.daemon.process.shutdown.clone();
    follow(store, &shutdown, loaded, |entry| {
        match entry.operation {
            kv::Operation::Put => match Envelope::<Subscriber>::decode(&entry.value) {
                Ok(envelope) => ctx.subscribers.put(&envelope.data, entry.revision),
                Err(e) => tracing::warn!(error = %e, "A subscriber cannot be read; ignored."),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                if let Some((page, subscriber)) = entry.key.split_once('.') {
                    ctx.subscribers.remove(page, subscriber);
                }
            }
        }
        ctx.metrics.subscribers.set(ctx.subscribers.count() as i64);
    })
    .await
}

async fn follow_suppressions(ctx: Context, store: kv::Store, loaded: watch::Sender<bool>) {
    let shutdown = ctx.daemon.process.shutdown.clone();
    follow(store, &shutdown, loaded, |entry| {
        let present = entry.operation == kv::Operation::Put;
        ctx.suppressions.set(&entry.key, present);
    })
    .await
}
