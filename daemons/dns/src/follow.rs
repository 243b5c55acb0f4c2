//! Follows KV `status` into the shared [`Statuses`] and keeps them on
//! disk. Connects in the background and retries for ever: the responder
//! answers from what it last knew while NATS is away.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::StatusRecord;
use beacon_contract::names::{split_component_key, KV_STATUS};
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::connect::NatsArgs;
use beacon_runtime::shutdown::Shutdown;
use prometheus::{IntCounter, IntGauge};

use crate::status::{StatusFile, StatusView, Statuses};
use beacon_contract::degradation::Level;
use beacon_runtime::degradation::Degradation;

/// How often folded changes reach the answers and the disk.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// The follower's metrics.
#[derive(Clone)]
pub struct FollowMetrics {
    /// `status_changes_total`: component statuses that changed the answer.
    pub changes: IntCounter,
    /// `status_followed`: 1 once the bucket has been read to its end.
    pub followed: IntGauge,
    /// `status_save_failures_total`.
    pub save_failures: IntCounter,
}

/// Follows KV `status` until shutdown.
pub async fn run(
    nats: NatsArgs,
    view: StatusView,
    file: StatusFile,
    metrics: FollowMetrics,
    degradation: Degradation,
    shutdown: Shutdown,
) {
    // Until NATS answers, the statuses are the ones on disk: level 2.
    degradation.hold("bus", Level::ComputeDegraded, true);
    let client = match beacon_runtime::connect::connect(&nats, "beacon-dns", &shutdown).await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "Cannot connect to NATS; answering from the statuses on disk only.");
            return;
        }
    };
    shutdown.spawn(beacon_runtime::degradation::watch_bus(
        client.clone(),
        degradation,
        shutdown.clone(),
    ));
    let js = async_nats::jetstream::new(client);
    let Some(store) = buckets::open(&js, KV_STATUS, &shutdown).await else {
        return;
    };
    let mut changes = buckets::follow(store, &shutdown);
    let mut statuses: Statuses = (**view.load()).clone();
    // Changes are handed to the answers and the disk in batches: a replay
    // of the whole bucket is thousands of entries, one copy each would be
    // quadratic.
    let mut unpublished = false;
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            change = changes.recv() => match change {
                Some(Change::Entry(entry)) => {
                    if fold(&mut statuses, &entry) {
                        statuses.updated_at_ms = wall_clock_ms();
                        metrics.changes.inc();
                        unpublished = true;
                    }
                }
                Some(Change::CaughtUp) => metrics.followed.set(1),
                None => break,
            },
            _ = publish.tick(), if unpublished => {
                view.store(Arc::new(statuses.clone()));
                match file.save(&statuses) {
                    Ok(()) => unpublished = false,
                    Err(e) => {
                        metrics.save_failures.inc();
                        tracing::error!(error = %e, "Cannot store the statuses on disk; they are answered from memory.");
                    }
                }
            }
        }
    }
    if unpublished {
        let _ = file.save(&statuses);
    }
}

/// Folds one KV entry in; true when an answer changed.
fn fold(statuses: &mut Statuses, entry: &kv::Entry) -> bool {
    let Some((page, component)) = split_component_key(&entry.key) else {
        return false;
    };
    match entry.operation {
        kv::Operation::Put => match Envelope::<StatusRecord>::decode(&entry.value) {
            Ok(envelope) => statuses.set(page, component, envelope.data.status),
            Err(e) => {
                tracing::warn!(key = %entry.key, error = %e, "A stored status is unreadable; ignoring it.");
                false
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => statuses.remove(page, component),
    }
}
