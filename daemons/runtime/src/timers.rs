//! Work due at a time rather than on a message: a region gone stale, a
//! maintenance window that starts, a batching window that closes, a
//! heartbeat that is late, a reminder an hour before maintenance.
//!
//! - [`Timers`]: keyed in-memory timers on `tokio_util`'s `DelayQueue`.
//!   Scheduling a key again moves its deadline; cancelling forgets it;
//!   [`Timers::next_due`] yields keys as their time comes. It runs on
//!   tokio's clock, so tests drive it with `tokio::time::pause()`. An owner
//!   selects on `next_due` next to its other inputs, so a timer scheduled
//!   while it waits is seen at the next turn of its loop.
//! - [`DurableTimers`]: timers whose work must survive a restart. Each is a
//!   record in KV `timers` under `{owner}.{id}` (due wall time and an
//!   opaque payload), written before the in-memory timer is set. At start
//!   [`DurableTimers::rebuild`] reads the owner's records back and sets
//!   them all (past-due ones fire at once). A fired timer's record is
//!   deleted only when the owner calls [`DurableTimers::done`] after its
//!   work, with a revision check, so firing is at least once: a crash
//!   between the fire and `done` fires it again after the restart, and a
//!   timer scheduled again during the work is not lost.

use std::collections::HashMap;
use std::hash::Hash;
use std::task::Poll;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::time::{delay_queue, DelayQueue};

use crate::retry::{Class, Classify};
use crate::telemetry::{MetricError, Metrics};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::names::check_token;

/// Keyed timers in memory.
#[derive(Debug)]
pub struct Timers<K> {
    queue: DelayQueue<K>,
    keys: HashMap<K, delay_queue::Key>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Self {
            queue: DelayQueue::new(),
            keys: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Timers<K> {
    /// No timers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to fire at `at`, replacing its earlier deadline if any.
    pub fn schedule(&mut self, key: K, at: Instant) {
        match self.keys.get(&key) {
            Some(slot) => self.queue.reset_at(slot, at),
            None => {
                let slot = self.queue.insert_at(key.clone(), at);
                self.keys.insert(key, slot);
            }
        }
    }

    /// Sets `key` to fire at wall-clock time `at_ms` (Unix milliseconds),
    /// converted once against `now_ms`; a time already past fires at once.
    pub fn schedule_wall(&mut self, key: K, at_ms: u64, now_ms: u64) {
        let wait = Duration::from_millis(at_ms.saturating_sub(now_ms));
        self.schedule(key, Instant::now() + wait);
    }

    /// Forgets `key`; true if it was set.
    pub fn cancel(&mut self, key: &K) -> bool {
        match self.keys.remove(key) {
            Some(slot) => {
                self.queue.remove(&slot);
                true
            }
            None => false,
        }
    }

    /// When `key` fires, if it is set.
    pub fn deadline(&self, key: &K) -> Option<Instant> {
        self.keys.get(key).map(|slot| self.queue.deadline(slot))
    }

    /// Timers set.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no timer is set.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The next key whose time has come, in deadline order; waits forever
    /// while nothing is set (select on it next to the inputs that set
    /// timers). Cancel-safe: dropping the future loses nothing.
    pub async fn next_due(&mut self) -> K {
        futures::future::poll_fn(|cx| match self.queue.poll_expired(cx) {
            Poll::Ready(Some(expired)) => {
                let key = expired.into_inner();
                self.keys.remove(&key);
                Poll::Ready(key)
            }
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        })
        .await
    }
}

/// A durable timer as stored in KV `timers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerRecord {
    /// When it is due, Unix milliseconds.
    pub due_ms: u64,
    /// What the owner needs to do the work (which window, which step).
    pub payload: serde_json::Value,
}

/// A durable timer whose time came; hand it back to
/// [`DurableTimers::done`] once its work is durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// Timer id within its owner.
    pub id: String,
    /// When it was due, Unix milliseconds.
    pub due_ms: u64,
    /// The payload given when it was scheduled.
    pub payload: serde_json::Value,
    revision: u64,
}

/// Why a durable timer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// The owner or timer id is not a subject-safe token.
    #[error("invalid timer id {id:?}: {reason}")]
    InvalidId {
        /// The id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The record could not be encoded (a bug) or a stored one read.
    #[error("timer record {key}: {reason}")]
    Record {
        /// KV key.
        key: String,
        /// Why.
        reason: String,
    },
    /// KV `timers` did not answer.
    #[error("KV timers: {operation} {key}: {reason}")]
    Store {
        /// What was being done.
        operation: &'static str,
        /// KV key.
        key: String,
        /// What the server said.
        reason: String,
    },
}

impl Classify for TimerError {
    fn class(&self) -> Class {
        match self {
            TimerError::Store { .. } => Class::Retryable,
            TimerError::InvalidId { .. } | TimerError::Record { .. } => Class::Permanent,
        }
    }
}

/// Metrics of the durable timers, labelled by owner.
#[derive(Debug, Clone)]
pub struct TimerMetrics {
    scheduled: IntGaugeVec,
    fired: IntCounterVec,
    lateness: HistogramVec,
}

impl TimerMetrics {
    /// Registers the timer metrics in `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricError> {
        Ok(Self {
            scheduled: metrics.gauge(
                "timers_scheduled",
                "Durable timers set, by owner",
                &["owner"],
            )?,
            fired: metrics.counter(
                "timers_fired_total",
                "Durable timers fired, by owner",
                &["owner"],
            )?,
            lateness: metrics.histogram(
                "timer_lateness_seconds",
                "How long after its due time a durable timer fired, by owner",
                &["owner"],
            )?,
        })
    }
}

/// Timers whose work must survive a restart, kept in KV `timers`.
#[derive(Debug)]
pub struct DurableTimers {
    store: kv::Store,
    owner: String,
    timers: Timers<String>,
    records: HashMap<String, (TimerRecord, u64)>,
    metrics: TimerMetrics,
}

impl DurableTimers {
    /// Reads `owner`'s timers back from KV `timers` and sets them all;
    /// past-due ones fire at once.
    pub async fn rebuild(
        store: kv::Store,
        owner: &str,
        metrics: TimerMetrics,
    ) -> Result<Self, TimerError> {
        check_id(owner)?;
        let mut timers = Self {
            store,
            owner: owner.to_owned(),
            timers: Timers::new(),
            records: HashMap::new(),
            metrics,
        };
        let prefix = format!("{owner}.");
        let mut keys = timers.store.keys().await.map_err(|e| TimerError::Store {
            operation: "list",
            key: prefix.clone(),
            reason: e.to_string(),
        })?;
        let mut mine = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| TimerError::Store {
                operation: "list",
                key: prefix.clone(),
                reason: e.to_string(),
            })?;
            if let Some(id) = key.strip_prefix(&prefix) {
                mine.push(id.to_owned());
            }
        }
        let now = wall_clock_ms();
        for id in mine {
            let key = timers.key(&id);
            let entry = timers
                .store
                .entry(&key)
                .await
                .map_err(|e| TimerError::Store {
                    operation: "read",
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
            let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
                continue;
            };
            match serde_json::from_slice::<TimerRecord>(&entry.value) {
                Ok(record) => {
                    timers.timers.schedule_wall(id.clone(), record.due_ms, now);
                    timers.records.insert(id, (record, entry.revision));
                }
                Err(e) => {
                    // One unreadable record must not stop the others.
                    tracing::warn!(%key, error = %e, "Unreadable timer record, skipped.");
                }
            }
        }
        timers.update_gauge();
        tracing::info!(owner, timers = timers.len(), "Durable timers rebuilt.");
        Ok(timers)
    }

    fn key(&self, id: &str) -> String {
        format!("{}.{id}", self.owner)
    }

    fn update_gauge(&self) {
        self.metrics
            .scheduled
            .with_label_values(&[&self.owner])
            .set(self.records.len() as i64);
    }

    /// Timers set.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no timer is set.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of timer `id`, if it is set.
    pub fn get(&self, id: &str) -> Option<&TimerRecord> {
        self.records.get(id).map(|(record, _)| record)
    }

    /// Sets timer `id` to fire at `due_ms` with `payload`, replacing an
    /// earlier setting. Durable before it returns.
    pub async fn schedule(
        &mut self,
        id: &str,
        due_ms: u64,
        payload: serde_json::Value,
    ) -> Result<(), TimerError> {
        check_id(id)?;
        let key = self.key(id);
        let record = TimerRecord { due_ms, payload };
        let bytes = serde_json::to_vec(&record).map_err(|e| TimerError::Record {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let revision = self
            .store
            .put(&key, bytes.into())
            .await
            .map_err(|e| TimerError::Store {
                operation: "write",
                key: key.clone(),
                reason: e.to_string(),
            })?;
        self.timers
            .schedule_wall(id.to_owned(), due_ms, wall_clock_ms());
        self.records.insert(id.to_owned(), (record, revision));
        self.update_gauge();
        Ok(())
    }

    /// Cancels timer `id`; it will not fire, now or after a restart.
    pub async fn cancel(&mut self, id: &str) -> Result<(), TimerError> {
        let key = self.key(id);
        self.store
            .delete(&key)
            .await
            .map_err(|e| TimerError::Store {
                operation: "delete",
                key,
                reason: e.to_string(),
            })?;
        self.timers.cancel(&id.to_owned());
        self.records.remove(id);
        self.update_gauge();
        Ok(())
    }

    /// Waits for the next timer whose time came. Its record stays in KV
    /// until [`DurableTimers::done`]. Cancel-safe.
    pub async fn next_fired(&mut self) -> Fired {
        loop {
            let id = self.timers.next_due().await;
            // A cancelled or replaced timer leaves no stale entry behind,
            // but stay defensive: only fire what has a record.
            let Some((record, revision)) = self.records.get(&id) else {
                continue;
            };
            let late_ms = wall_clock_ms().saturating_sub(record.due_ms);
            self.metrics.fired.with_label_values(&[&self.owner]).inc();
            self.metrics
                .lateness
                .with_label_values(&[&self.owner])
                .observe(late_ms as f64 / 1000.0);
            return Fired {
                id,
                due_ms: record.due_ms,
                payload: record.payload.clone(),
                revision: *revision,
            };
        }
    }

    /// The fired timer's work is durable: delete its record, unless it was
    /// scheduled again meanwhile (then the new setting stands).
    pub async fn done(&mut self, fired: &Fired) -> Result<(), TimerError> {
        match self.records.get(&fired.id) {
            Some((_, revision)) if *revision == fired.revision => {}
            _ => return Ok(()),
        }
        let key = self.key(&fired.id);
        match self
            .store
            .delete_expect_revision(&key, Some(fired.revision))
            .await
        {
            Ok(()) => {
                self.records.remove(&fired.id);
                self.update_gauge();
                Ok(())
            }
            Err(e) => Err(TimerError::Store {
                operation: "delete",
                key,
                reason: e.to_string(),
            }),
        }
    }

    /// Fires `fired` again after `delay`, for work that failed and should
    /// be retried; its record is unchanged.
    pub fn retry_after(&mut self, fired: &Fired, delay: Duration) {
        if self.records.contains_key(&fired.id) {
            self.timers
                .schedule(fired.id.clone(), Instant::now() + delay);
        }
    }
}

fn check_id(id: &str) -> Result<(), TimerError> {
    check_token(id).map_err(|e| TimerError::InvalidId {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything due by now, in firing order, without waiting.
    async fn due_now(timers: &mut Timers<&'static str>) -> Vec<&'static str> {
        let mut fired = Vec::new();
        while let Ok(key) = tokio::time::timeout(Duration::from_millis(1), timers.next_due()).await
        {
            fired.push(key);
        }
        fired
    }

    #[tokio::test(start_paused = true)]
    async fn exactly_the_due_timers_fire_in_deadline_order() {
        let mut timers = Timers::new();
        let start = Instant::now();
        timers.schedule("c", start + Duration::from_secs(30));
        timers.schedule("a", start + Duration::from_secs(10));
        timers.schedule("b", start + Duration::from_secs(20));
        assert_eq!(timers.len(), 3);

        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(due_now(&mut timers).await.is_empty());
        tokio::time::advance(Duration::from_secs(12)).await;
        assert_eq!(due_now(&mut timers).await, ["a", "b"]);
        assert_eq!(timers.len(), 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(due_now(&mut timers).await, ["c"]);
        assert!(timers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn rescheduling_moves_and_cancelling_prevents() {
        let mut timers = Timers::new();
        let start = Instant::now();
        timers.schedule("moved", start + Duration::from_secs(5));
        timers.schedule("cancelled", start + Duration::from_secs(5));
        timers.schedule("moved", start + Duration::from_secs(60));
        assert!(timers.cancel(&"cancelled"));
        assert!(!timers.cancel(&"cancelled"));
        assert_eq!(
            timers.deadline(&"moved"),
            Some(start + Duration::from_secs(60))
        );

        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(due_now(&mut timers).await.is_empty());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(due_now(&mut timers).await, ["moved"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_time_in_the_past_fires_at_once() {
        let mut timers = Timers::new();
        let now_ms = 1_700_000_000_000;
        timers.schedule_wall("past", now_ms - 5_000, now_ms);
        timers.schedule_wall("future", now_ms + 5_000, now_ms);
        assert_eq!(due_now(&mut timers).await, ["past"]);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(due_now(&mut timers).await, ["future"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_set_while_waiting_is_seen_at_the_next_turn() {
        let mut timers = Timers::new();
        timers.schedule("late", Instant::now() + Duration::from_secs(3600));
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = sender.send("early").await;
        });
        let started = Instant::now();
        let fired = loop {
            tokio::select! {
                key = timers.next_due() => break key,
                Some(key) = receiver.recv() => {
                    timers.schedule(key, Instant::now() + Duration::from_secs(2));
                }
            }
        };
        assert_eq!(fired, "early");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_set_waits_without_firing() {
        let mut timers: Timers<&'static str> = Timers::new();
        let waited = tokio::time::timeout(Duration::from_secs(60), timers.next_due()).await;
        assert!(waited.is_err());
    }
}
