//! Streams, KV buckets and the object store, and one idempotent [`ensure`].
//!
//! Every daemon calls [`ensure`] at start. It creates what is missing and
//! updates what exists to the configuration below, so a fresh server and an
//! upgraded one end up the same.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};

use crate::names::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Retention and replica settings for the whole topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Replicas of every stream and bucket (1 for a single server, 3 in a cluster).
    pub replicas: usize,
    /// How long probe results are kept on the bus (ClickHouse keeps history).
    pub health_max_age: Duration,
    /// How long status changes, receipts and dead letters are kept.
    pub events_max_age: Duration,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            replicas: 1,
            health_max_age: 7 * DAY,
            events_max_age: 365 * DAY,
        }
    }
}

impl Topology {
    /// Configuration of every stream.
    pub fn streams(&self) -> Vec<stream::Config> {
        let stream = |name: &str,
                      subject: &str,
                      max_age: Duration,
                      retention: stream::RetentionPolicy| stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{SUBJECT_ROOT}.{subject}.>")],
            retention,
            max_age,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: DEDUP_WINDOW,
            ..Default::default()
        };
        use stream::RetentionPolicy::{Limits, WorkQueue};
        vec![
            stream(STREAM_HEALTH, "health", self.health_max_age, Limits),
            stream(STREAM_STATUS, "status", self.events_max_age, Limits),
            // Incidents, maintenance and the changelog are the record of what
            // operators said: kept forever.
            stream(STREAM_INCIDENTS, "incident", Duration::ZERO, Limits),
            stream(STREAM_MAINTENANCE, "maintenance", Duration::ZERO, Limits),
            stream(STREAM_CHANGELOG, "changelog", Duration::ZERO, Limits),
            stream(STREAM_NOTIFY, "notify", 7 * DAY, WorkQueue),
            stream(STREAM_DELIVERIES, "delivery", 30 * DAY, Limits),
            stream(STREAM_DEADLETTER, "deadletter", 30 * DAY, Limits),
        ]
    }

    /// Configuration of every KV bucket.
    pub fn buckets(&self) -> Vec<kv::Config> {
        let bucket = |name: &str, history: i64, description: &str| kv::Config {
            bucket: name.to_owned(),
            description: description.to_owned(),
            history,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        };
        let leases = kv::Config {
            // Per-key TTLs expire a dead holder's lease; the delete marker
            // it leaves is kept a minute so watchers see the expiry.
            limit_markers: Some(Duration::from_secs(60)),
            ..bucket(
                KV_LEASES,
                1,
                "Leases of singleton roles, by role and partition",
            )
        };
        vec![
            bucket(KV_STATUS, 5, "Current status of every component (decider)"),
            bucket(KV_CONFIG, 10, "Validated page configs (decider)"),
            bucket(KV_SUBSCRIBERS, 1, "Subscribers (notifier)"),
            bucket(KV_UPTIME, 1, "Daily uptime rollups (recorder)"),
            bucket(KV_TIMERS, 1, "Durable timers, by owner (decider, notifier)"),
            leases,
        ]
    }

    /// Configuration of the object store.
    pub fn object_stores(&self) -> Vec<object_store::Config> {
        vec![object_store::Config {
            bucket: OBJECT_PAGES.to_owned(),
            description: Some("Rendered pages (publisher), mirrored by edges".to_owned()),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }]
    }
}

/// Why [`ensure`] failed, naming the stream or bucket.
#[derive(Debug, thiserror::Error)]
#[error("cannot create or update {what} {name}: {reason}")]
pub struct EnsureError {
    /// `stream`, `KV bucket` or `object store`.
    pub what: &'static str,
    /// Its name.
    pub name: String,
    /// What the server said.
    pub reason: String,
}

/// Creates or updates every stream, bucket and object store. Safe to run
/// any number of times, from any number of daemons at once.
pub async fn ensure(js: &jetstream::Context, topology: &Topology) -> Result<(), EnsureError> {
    for config in topology.streams() {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|e| EnsureError {
                what: "stream",
                name,
                reason: e.to_string(),
            })?;
    }
    for config in topology.buckets() {
        let name = config.bucket.clone();
        js.create_or_update_key_value(config)
            .await
            .map_err(|e| EnsureError {
                what: "KV bucket",
                name,
                reason: e.to_string(),
            })?;
    }
    for config in topology.object_stores() {
        let name = config.bucket.clone();
        // There is no update call for object stores; creating an existing one
        // with the same config succeeds.
        js.create_object_store(config)
            .await
            .map_err(|e| EnsureError {
                what: "object store",
                name,
                reason: e.to_string(),
            })?;
    }
    Ok(())
}
