//! Leader election for singleton roles (the decider, the notifier's
//! planner, the maintenance scheduler), on KV bucket `leases`.
//!
//! - **Key**: `{role}.{partition}`. A role with P partitions has P leases,
//!   so several processes can each hold some and share the work
//!   ([`partition_of`] maps a page id to its partition).
//! - **Acquire** by create with a per-key TTL: a write that succeeds only
//!   when the key has no message yet, or its last one is a delete or
//!   expiry marker.
//! - **Renew** every `renew_every` by compare-and-set on the revision the
//!   holder last wrote, re-applying the TTL, so only the holder can renew.
//! - **Expire** by TTL: the server removes the key of a holder that stopped
//!   renewing (crashed, paused, cut off); a standby polling every
//!   [`STANDBY_POLL`] then creates it.
//! - **Release** on clean shutdown: a revision-checked delete, so a standby
//!   takes over at once.
//! - **Self-fencing**: a holder that could not renew before its local
//!   deadline (last successful renew + TTL − [`SAFETY_MARGIN`], on the
//!   monotonic clock) steps down by itself.
//! - **Fencing token**: the revision at which the holder acquired the lease,
//!   its *term*. Terms only grow: a later holder's create lands at a later
//!   revision of the same stream. [`Lease::check`] returns the current
//!   [`Fence`] only while the local deadline holds and the server still
//!   shows this holder; writes that must not come from a stale leader call
//!   it right before writing, and carry the fence (header [`FENCE_HEADER`]
//!   or a field) so readers can refuse an older term. The window between
//!   the check and the write is bounded by the safety margin.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use bytes::Bytes;
use prometheus::{IntCounterVec, IntGaugeVec};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::retry::{Class, Classify};
use crate::shutdown::Shutdown;
use crate::telemetry::{MetricError, Metrics};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::names::{check_token, KV_LEASES};

/// Header a fenced write carries: `{role}.{partition}.{term}`.
pub const FENCE_HEADER: &str = "Beacon-Fence";

/// How often a standby tries to take a lease it does not hold.
pub const STANDBY_POLL: Duration = Duration::from_millis(250);

/// How much before its TTL runs out a holder stops trusting its lease.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(500);

/// Largest number of partitions a role may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// Lease timing and partitioning for one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease lives without renewal. Whole seconds (the server's
    /// per-message TTL is in seconds).
    pub ttl: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// Partitions of the role; each has its own lease.
    pub partitions: u32,
}

impl Default for LeaseConfig {
    /// A 3 s TTL renewed every second: a dead holder is replaced within
    /// about 4 s, well inside the 5 s the design asks for.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3),
            renew_every: Duration::from_secs(1),
            partitions: 1,
        }
    }
}

impl LeaseConfig {
    /// Checks that the settings can work; returns every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.ttl < Duration::from_secs(1) || self.ttl.subsec_nanos() != 0 {
            errors.push(format!(
                "lease TTL must be a whole number of seconds, at least 1s, got {:?}",
                self.ttl
            ));
        }
        if self.ttl <= SAFETY_MARGIN * 2 {
            errors.push(format!(
                "lease TTL must be longer than {:?} (twice the safety margin), got {:?}",
                SAFETY_MARGIN * 2,
                self.ttl
            ));
        }
        if self.renew_every.is_zero() || self.renew_every * 2 > self.ttl {
            errors.push(format!(
                "lease renewal interval must be above zero and at most half the TTL ({:?}), got {:?}",
                self.ttl / 2,
                self.renew_every
            ));
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            errors.push(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, got {}",
                self.partitions
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Lease flags of a daemon that runs a singleton role.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LeaseArgs {
    /// How long the role's lease lives without renewal, whole seconds.
    #[arg(long, env = "BEACON_LEASE_TTL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// How often the holder renews its lease.
    #[arg(long, env = "BEACON_LEASE_RENEW", default_value = "1s", value_parser = humantime::parse_duration)]
    pub lease_renew: Duration,
    /// Partitions of the role, each with its own lease.
    #[arg(long, env = "BEACON_PARTITIONS", default_value_t = 1)]
    pub partitions: u32,
}

impl LeaseArgs {
    /// The validated config, or every problem.
    pub fn config(&self) -> Result<LeaseConfig, Vec<String>> {
        let config = LeaseConfig {
            ttl: self.lease_ttl,
            renew_every: self.lease_renew,
            partitions: self.partitions,
        };
        config.validate().map(|()| config)
    }
}

pub use beacon_contract::names::{fnv1a, partition_of};

/// What a lease says about its holder, for operators and for fencing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    /// Unique per lease instance (a ULID with the host's name).
    pub holder: String,
    /// When this holder acquired it, Unix milliseconds.
    pub acquired_at_ms: u64,
}

/// Proof of leadership a write carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Role.
    pub role: String,
    /// Partition.
    pub partition: u32,
    /// The revision at which this holder acquired the lease; grows with
    /// every new holder.
    pub term: u64,
}

impl Fence {
    /// The value of [`FENCE_HEADER`].
    pub fn header_value(&self) -> String {
        format!("{}.{}.{}", self.role, self.partition, self.term)
    }

    /// Adds [`FENCE_HEADER`] to `headers`.
    pub fn stamp(&self, headers: &mut HeaderMap) {
        headers.insert(FENCE_HEADER, self.header_value().as_str());
    }
}

/// Leadership of one partition, as the lease task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// Someone else holds it, or nobody yet.
    Follower,
    /// This process holds it.
    Leader {
        /// The fencing term.
        term: u64,
    },
}

impl Leadership {
    /// Whether this process leads.
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader { .. })
    }
}

/// Why a fenced write may not go ahead, or a lease operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// This process does not hold the lease (never did, lost it, or its
    /// local deadline passed).
    #[error("not the holder of lease {key}: {reason}")]
    NotLeader {
        /// Lease key.
        key: String,
        /// Why.
        reason: String,
    },
    /// KV `leases` did not answer.
    #[error("lease {key}: {reason}")]
    Store {
        /// Lease key.
        key: String,
        /// What the server said.
        reason: String,
    },
}

impl Classify for LeaseError {
    fn class(&self) -> Class {
        match self {
            // Not leading is no fault of the message: whoever leads now
            // will do the work, so the message must come back.
            LeaseError::NotLeader { .. } | LeaseError::Store { .. } => Class::Retryable,
        }
    }
}

/// Lease metrics, labelled by role and partition (bounded: partitions are
/// few).
#[derive(Debug, Clone)]
pub struct LeaseMetrics {
    holder: IntGaugeVec,
    transitions: IntCounterVec,
}

impl LeaseMetrics {
    /// Registers the lease metrics in `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricError> {
        Ok(Self {
            holder: metrics.gauge(
                "lease_holder",
                "1 while this process holds the lease of the role's partition",
                &["role", "partition"],
            )?,
            transitions: metrics.counter(
                "lease_transitions_total",
                "Lease events: acquired, renew_failed, lost, released",
                &["role", "outcome"],
            )?,
        })
    }

    /// Whether this process holds `role`'s `partition`, per the gauge.
    pub fn holds(&self, role: &str, partition: u32) -> bool {
        self.holder
            .with_label_values(&[role, &partition.to_string()])
            .get()
            == 1
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    term: u64,
    revision: u64,
    deadline: Instant,
}

/// One partition's lease, held or wanted by this process.
#[derive(Debug, Clone)]
pub struct Lease {
    store: kv::Store,
    js: jetstream::Context,
    role: String,
    partition: u32,
    key: String,
    holder: String,
    config: LeaseConfig,
    held: Arc<Mutex<Option<Held>>>,
    metrics: LeaseMetrics,
}

impl Lease {
    /// A lease on `role`'s `partition` in KV `leases`; nothing is
    /// acquired until [`Lease::run`].
    pub async fn open(
        js: &jetstream::Context,
        role: &str,
        partition: u32,
        config: LeaseConfig,
        metrics: LeaseMetrics,
    ) -> Result<Self, LeaseError> {
        let key = format!("{role}.{partition}");
        check_token(role).map_err(|e| LeaseError::Store {
            key: key.clone(),
            reason: format!("invalid role: {e}"),
        })?;
        let store = js
            .get_key_value(KV_LEASES)
            .await
            .map_err(|e| LeaseError::Store {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
        Ok(Self {
            store,
            js: js.clone(),
            role: role.to_owned(),
            partition,
            key,
            holder: format!("{host}-{}-{}", std::process::id(), ulid::Ulid::new()),
            config,
            held: Arc::default(),
            metrics,
        })
    }

    /// The lease key, `{role}.{partition}`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This instance's holder id, as written into the lease.
    pub fn holder_id(&self) -> &str {
        &self.holder
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, held: Option<Held>) {
        *self.lock() = held;
        self.metrics
            .holder
            .with_label_values(&[&self.role, &self.partition.to_string()])
            .set(i64::from(held.is_some()));
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .transitions
            .with_label_values(&[&self.role, outcome])
            .inc();
    }

    fn server_ttl(&self) -> Duration {
        Duration::from_secs(self.config.ttl.as_secs().max(1))
    }

    fn record(&self) -> Bytes {
        let record = HolderRecord {
            holder: self.holder.clone(),
            acquired_at_ms: wall_clock_ms(),
        };
        // A two-field struct of strings and numbers always serializes.
        serde_json::to_vec(&record).unwrap_or_default().into()
    }

    /// The fence for a write, after checking that the local deadline holds
    /// and that the server still shows this holder.
    pub async fn check(&self) -> Result<Fence, LeaseError> {
        let not_leader = |reason: &str| LeaseError::NotLeader {
            key: self.key.clone(),
            reason: reason.to_owned(),
        };
        let Some(held) = *self.lock() else {
            return Err(not_leader("this process does not hold it"));
        };
        if Instant::now() >= held.deadline {
            return Err(not_leader("its renewal deadline has passed"));
        }
        if !holds_on_server(&self.store, &self.key, &self.holder).await? {
            return Err(not_leader("the server shows another holder, or none"));
        }
        Ok(Fence {
            role: self.role.clone(),
            partition: self.partition,
            term: held.term,
        })
    }

    /// Holds the lease when it can, until shutdown: acquires, renews,
    /// steps down when renewal fails past the deadline, and releases at
    /// shutdown. Reports every change on `leadership`.
    pub async fn run(self, shutdown: Shutdown, leadership: watch::Sender<Leadership>) {
        let announce = |state: Leadership| {
            leadership.send_if_modified(|current| {
                let changed = *current != state;
                *current = state;
                changed
            });
        };
        loop {
            let held = *self.lock();
            match held {
                None => {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    match self.try_acquire().await {
                        Ok(Some(held)) => {
                            self.set(Some(held));
                            self.count("acquired");
                            tracing::info!(lease = %self.key, term = held.term, holder = %self.holder, "Lease acquired.");
                            announce(Leadership::Leader { term: held.term });
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(lease = %self.key, error = %e, "Cannot try the lease, retrying.");
                        }
                    }
                    shutdown.sleep(STANDBY_POLL).await;
                }
                Some(held) => {
                    let slept = shutdown.sleep(self.config.renew_every).await;
                    if !slept {
                        self.release(held).await;
                        announce(Leadership::Follower);
                        return;
                    }
                    match self.renew(held).await {
                        Ok(renewed) => self.set(Some(renewed)),
                        Err(Renewal::Lost) => {
                            self.set(None);
                            self.count("lost");
                            tracing::warn!(lease = %self.key, "Lease lost to another holder, stepping down.");
                            announce(Leadership::Follower);
                        }
                        Err(Renewal::Failed(reason)) if Instant::now() >= held.deadline => {
                            self.set(None);
                            self.count("renew_failed");
                            tracing::warn!(lease = %self.key, %reason, "Cannot renew the lease before its deadline, stepping down.");
                            announce(Leadership::Follower);
                        }
                        Err(Renewal::Failed(reason)) => {
                            tracing::warn!(lease = %self.key, %reason, "Cannot renew the lease, retrying.");
                        }
                    }
                }
            }
        }
    }

    async fn try_acquire(&self) -> Result<Option<Held>, LeaseError> {
        let started = Instant::now();
        let store_error = |reason: String| LeaseError::Store {
            key: self.key.clone(),
            reason,
        };
        // Create: the key must have no message yet (expected sequence 0)…
        let revision = match self.write(0).await {
            Ok(revision) => revision,
            Err(Renewal::Failed(reason)) => return Err(store_error(reason)),
            Err(Renewal::Lost) => {
                // …or its last one is a delete or an expiry marker. Written
                // here rather than with the client's `create`, which writes
                // over a marker without a TTL: a holder killed before its
                // first renewal would then hold the lease forever.
                let entry = self
                    .store
                    .entry(&self.key)
                    .await
                    .map_err(|e| store_error(e.to_string()))?;
                match entry {
                    Some(entry) if entry.operation != kv::Operation::Put => {
                        match self.write(entry.revision).await {
                            Ok(revision) => revision,
                            Err(Renewal::Lost) => return Ok(None),
                            Err(Renewal::Failed(reason)) => return Err(store_error(reason)),
                        }
                    }
                    _ => return Ok(None),
                }
            }
        };
        Ok(Some(Held {
            term: revision,
            revision,
            deadline: started + self.config.ttl - SAFETY_MARGIN,
        }))
    }

    async fn renew(&self, held: Held) -> Result<Held, Renewal> {
        let started = Instant::now();
        let revision = match self.write(held.revision).await {
            Ok(revision) => revision,
            // An earlier renewal of ours may have landed with its answer
            // lost: then the latest record is this holder's own, and the
            // lease is still ours. Renew over it rather than step down and
            // leave a record nobody may replace until its TTL runs out.
            Err(Renewal::Lost) => match self.own_latest().await {
                Some(latest) => self.write(latest).await?,
                None => return Err(Renewal::Lost),
            },
            Err(failed) => return Err(failed),
        };
        Ok(Held {
            term: held.term,
            revision,
            deadline: started + self.config.ttl - SAFETY_MARGIN,
        })
    }

    /// Writes the holder record with the TTL, if the key's last revision is
    /// still `expected` (0: no message at all). `Lost` when it is not.
    async fn write(&self, expected: u64) -> Result<u64, Renewal> {
        let subject = format!("{}{}", self.store.prefix, self.key);
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        headers.insert("Nats-TTL", self.server_ttl().as_secs().to_string().as_str());
        let sent = self
            .js
            .publish_with_headers(subject, headers, self.record())
            .await
            .map_err(|e| Renewal::Failed(e.to_string()))?;
        match sent.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Err(Renewal::Lost)
            }
            Err(e) => Err(Renewal::Failed(e.to_string())),
        }
    }

    /// The revision of the key's latest record if it is this holder's.
    async fn own_latest(&self) -> Option<u64> {
        let entry = self.store.entry(&self.key).await.ok()??;
        if entry.operation != kv::Operation::Put {
            return None;
        }
        let record: HolderRecord = serde_json::from_slice(&entry.value).ok()?;
        (record.holder == self.holder).then_some(entry.revision)
    }

    async fn release(&self, held: Held) {
        self.set(None);
        match self
            .store
            .delete_expect_revision(&self.key, Some(held.revision))
            .await
        {
            Ok(()) => {
                self.count("released");
                tracing::info!(lease = %self.key, "Lease released.");
            }
            Err(e) => {
                tracing::warn!(lease = %self.key, error = %e, "Cannot release the lease; it expires by its TTL.");
            }
        }
    }
}

enum Renewal {
    /// Someone else's write is the latest: the lease is theirs.
    Lost,
    /// No answer; the lease may still be ours.
    Failed(String),
}

/// Whether the lease at `key` is currently held by `holder` on the server.
pub async fn holds_on_server(
    store: &kv::Store,
    key: &str,
    holder: &str,
) -> Result<bool, LeaseError> {
    let entry = store.entry(key).await.map_err(|e| LeaseError::Store {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(match entry {
        Some(entry) if entry.operation == kv::Operation::Put => {
            serde_json::from_slice::<HolderRecord>(&entry.value)
                .is_ok_and(|record| record.holder == holder)
        }
        _ => false,
    })
}

/// Runs one [`Lease`] per partition of `role` in tasks on `shutdown`, and
/// returns a receiver of each partition's leadership, in partition order.
pub async fn run_partitions(
    js: &jetstream::Context,
    role: &str,
    config: LeaseConfig,
    metrics: LeaseMetrics,
    shutdown: &Shutdown,
) -> Result<Vec<(Lease, watch::Receiver<Leadership>)>, LeaseError> {
    let mut leases = Vec::new();
    for partition in 0..config.partitions {
        let lease = Lease::open(js, role, partition, config, metrics.clone()).await?;
        let (sender, receiver) = watch::channel(Leadership::Follower);
        shutdown.spawn(lease.clone().run(shutdown.clone(), sender));
        leases.push((lease, receiver));
    }
    Ok(leases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn settings_that_cannot_work_are_refused_with_every_reason() {
        assert_eq!(LeaseConfig::default().validate(), Ok(()));
        let zero = LeaseConfig {
            ttl: Duration::ZERO,
            renew_every: Duration::ZERO,
            partitions: 0,
        };
        let errors = zero.validate().expect_err("refused");
        assert!(
            errors.iter().any(|e| e.contains("whole number of seconds")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("renewal interval")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("partitions")),
            "{errors:?}"
        );
        let slow_renewal = LeaseConfig {
            renew_every: Duration::from_secs(2),
            ..LeaseConfig::default()
        };
        assert!(slow_renewal.validate().is_err());
        let fractional = LeaseConfig {
            ttl: Duration::from_millis(2_500),
            ..LeaseConfig::default()
        };
        assert!(fractional.validate().is_err());
    }

    const PINNED: [u32; 3] = [3, 2, 3];

    #[test]
    fn partitions_are_stable_and_spread() {
        // Pinned values: a change here moves pages between holders.
        assert_eq!(partition_of("demo", 1), 0);
        assert_eq!(partition_of("demo", 8), partition_of("demo", 8));
        let got: Vec<u32> = ["acme", "demo", "status"]
            .iter()
            .map(|k| partition_of(k, 4))
            .collect();
        assert_eq!(got, PINNED);
        let mut counts = [0u32; 4];
        for n in 0..4_000 {
            counts[partition_of(&format!("page-{n}"), 4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (800..1_200).contains(c)),
            "{counts:?}"
        );
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(
            partition_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8c_u64 % u64::from(u32::MAX)) as u32
        );
    }

    proptest! {
        #[test]
        fn a_partition_is_always_in_range(key in "[a-z0-9_-]{1,64}", partitions in 1u32..=MAX_PARTITIONS) {
            prop_assert!(partition_of(&key, partitions) < partitions);
        }
    }
}
