//! The consumer side: which streams the recorder reads and what it does
//! with each batch.
//!
//! A handler decodes each envelope and maps it to its row(s), inserts the
//! batch's rows in one `INSERT` per table, and says what became of each
//! message. The consumer loop acks only after that, so a message is acked
//! only once ClickHouse has stored its rows.
//!
//! - A message that does not decode, or carries an impossible time, is
//!   poison: dead-lettered without holding up the rest of its batch.
//! - An insert that fails with a retryable error (ClickHouse away, slow or
//!   missing its schema) retries the batch's messages with the consumer's
//!   retry policy, for as long as it takes: an outage is not the message's
//!   fault, so nothing is dead-lettered for it, and the stream holds the
//!   backlog until ClickHouse is back.
//! - An insert that fails with a permanent error (ClickHouse refuses a row)
//!   is split in halves, and the halves inserted again, until the refused
//!   rows are found: only their messages are dead-lettered, the rest land.

use std::sync::Arc;
use std::time::Duration;

use beacon_contract::degradation::Level;
use beacon_contract::event::{Envelope, Message};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{
    DeliveryReceipt, HealthResult, IncidentEvent, MaintenanceEvent, StatusChange,
};
use beacon_contract::names::{
    STREAM_DELIVERIES, STREAM_HEALTH, STREAM_INCIDENTS, STREAM_MAINTENANCE, STREAM_STATUS,
};
use beacon_runtime::consume::{BatchSettings, ConsumerSpec, Delivery, Outcome, RetryPolicy};
use beacon_runtime::degradation::Degradation;
use beacon_runtime::retry::{Class, Classify};
use beacon_runtime::telemetry::{MetricError, Metrics};
use prometheus::{GaugeVec, IntCounterVec};

use crate::group::GroupInsert;
use crate::rollup::Dirty;
use crate::rows::{
    DeliveryRow, HealthRow, IncidentRow, IncidentUpdateRow, MaintenanceRow, RowError, StatusRow,
};
use crate::schema::{
    DELIVERY_TABLE, HEALTH_TABLE, INCIDENT_TABLE, INCIDENT_UPDATE_TABLE, MAINTENANCE_TABLE,
    STATUS_TABLE,
};
use crate::service::{ClickHouse, StoreError};

/// Durable consumer of `HEALTH`.
pub const HEALTH_CONSUMER: &str = "recorder-health";
/// Durable consumer of `STATUS`.
pub const STATUS_CONSUMER: &str = "recorder-status";
/// Durable consumer of `INCIDENTS`.
pub const INCIDENTS_CONSUMER: &str = "recorder-incidents";
/// Durable consumer of `MAINTENANCE`.
pub const MAINTENANCE_CONSUMER: &str = "recorder-maintenance";
/// Durable consumer of `DELIVERIES`.
pub const DELIVERIES_CONSUMER: &str = "recorder-deliveries";

/// Delay before the first retry of a failed insert: long enough for a
/// ClickHouse restart, short enough that history catches up quickly.
pub const RETRY_DELAY_MIN: Duration = Duration::from_secs(2);

/// Longest delay between retries of one message, so a long outage costs a
/// retry per message every 30 s rather than a storm of failing inserts.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);

/// The recorder's retry policy: patient, never giving up on an insert.
pub const RETRY: RetryPolicy = RetryPolicy {
    first: RETRY_DELAY_MIN,
    max: RETRY_DELAY_MAX,
    give_up_after: None,
};

/// The consumer of probe results: batches of up to 10,000, several in
/// flight, so that while one group insert runs the next batches are pulled
/// and decoded and then go into ClickHouse together ([`crate::group`]).
/// Row order does not matter: rows carry their own timestamps.
pub fn health_spec() -> ConsumerSpec {
    ConsumerSpec {
        retry: RETRY,
        batch: BatchSettings {
            max_messages: 10_000,
            max_wait: Duration::from_millis(200),
            concurrency: 8,
        },
        ..ConsumerSpec::new(STREAM_HEALTH, HEALTH_CONSUMER)
    }
}

/// A consumer of rare events: small batches soon, one at a time.
fn events_spec(stream: &str, durable: &str) -> ConsumerSpec {
    ConsumerSpec {
        retry: RETRY,
        batch: BatchSettings {
            max_messages: 500,
            max_wait: Duration::from_millis(50),
            concurrency: 1,
        },
        ..ConsumerSpec::new(stream, durable)
    }
}

/// The consumer of status changes.
pub fn status_spec() -> ConsumerSpec {
    events_spec(STREAM_STATUS, STATUS_CONSUMER)
}

/// The consumer of incident events.
pub fn incidents_spec() -> ConsumerSpec {
    events_spec(STREAM_INCIDENTS, INCIDENTS_CONSUMER)
}

/// The consumer of maintenance events.
pub fn maintenance_spec() -> ConsumerSpec {
    events_spec(STREAM_MAINTENANCE, MAINTENANCE_CONSUMER)
}

/// The consumer of delivery receipts.
pub fn deliveries_spec() -> ConsumerSpec {
    events_spec(STREAM_DELIVERIES, DELIVERIES_CONSUMER)
}

/// Metrics of the handlers, labelled by table.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    dead_letters: IntCounterVec,
    lag: GaugeVec,
    /// Level 1 (`clickhouse`) while ClickHouse cannot take rows: history
    /// is delayed, nothing is lost.
    degradation: Degradation,
}

impl SinkMetrics {
    /// Registers the handler metrics.
    pub fn register(metrics: &Metrics, degradation: Degradation) -> Result<Self, MetricError> {
        Ok(Self {
            degradation,
            dead_letters: metrics.counter(
                "dead_letters_total",
                "Messages handed to the dead-letter stream, by table and reason \
                 (undecodable, impossible_time, unencodable, rejected)",
                &["table", "reason"],
            )?,
            lag: metrics.float_gauge(
                "lag_seconds",
                "Age of the oldest event in the latest insert: how far behind its stream the recorder is, by table",
                &["table"],
            )?,
        })
    }
}

/// Writes messages into ClickHouse. Cheap to clone: handlers take the sink
/// by value so each batch's future owns what it uses.
#[derive(Debug, Clone)]
pub struct Sink {
    store: Arc<ClickHouse>,
    /// Probe results go through a group insert: their consumer has several
    /// batches in flight, and ClickHouse wants them in few large inserts.
    health: GroupInsert<HealthRow>,
    dirty: Dirty,
    metrics: SinkMetrics,
}

/// What a batch's messages came to, filled in as the batch is worked on:
/// `None` until something went wrong for that message.
struct Outcomes {
    table: &'static str,
    of: Vec<Option<Outcome>>,
    /// Each message's HLC wall time, for the lag metric.
    stamps: Vec<u64>,
}

impl Outcomes {
    fn new(table: &'static str, len: usize) -> Self {
        Self {
            table,
            of: vec![None; len],
            stamps: vec![0; len],
        }
    }

    fn is_open(&self, index: usize) -> bool {
        self.of[index].is_none()
    }

    fn set(&mut self, index: usize, outcome: Outcome) {
        if self.of[index].is_none() {
            self.of[index] = Some(outcome);
        }
    }

    fn finish(self) -> Vec<Outcome> {
        self.of
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Done))
            .collect()
    }
}

impl Sink {
    /// A sink that writes through `store` and marks changed days in
    /// `dirty`. Starts the group insert task of probe results, so it must
    /// be called within a tokio runtime.
    pub fn new(store: Arc<ClickHouse>, dirty: Dirty, metrics: SinkMetrics) -> Self {
        Self {
            health: GroupInsert::start(store.clone(), HEALTH_TABLE),
            store,
            dirty,
            metrics,
        }
    }

    /// Decodes every delivery and maps it with `to_rows`; undecodable and
    /// unmappable messages are poison. Returns the rows with the index of
    /// the message each came from.
    fn decode<M, R>(
        &self,
        batch: &[Delivery],
        outcomes: &mut Outcomes,
        mut to_rows: impl FnMut(Envelope<M>, u64) -> Result<R, RowError>,
    ) -> Vec<(usize, R)>
    where
        M: Message,
    {
        let now_ms = wall_clock_ms();
        let mut rows = Vec::with_capacity(batch.len());
        for (index, delivery) in batch.iter().enumerate() {
            match delivery.decode::<M>() {
                Ok(envelope) => {
                    outcomes.stamps[index] = envelope.hlc.wall_ms;
                    match to_rows(envelope, now_ms) {
                        Ok(row) => rows.push((index, row)),
                        Err(e) => {
                            self.count_dead(outcomes.table, e.label());
                            outcomes.set(index, Outcome::poison(e));
                        }
                    }
                }
                Err(e) => {
                    self.count_dead(outcomes.table, "undecodable");
                    outcomes.set(index, Outcome::from(Err(e)));
                }
            }
        }
        rows
    }

    fn count_dead(&self, table: &str, reason: &str) {
        self.metrics
            .dead_letters
            .with_label_values(&[table, reason])
            .inc();
    }

    /// Inserts the rows of every message still open into `table`. A
    /// permanent failure splits the rows in halves until the refused ones
    /// are alone; so does an unknown error code, which may be the rows'
    /// (the row alone is then retried rather than dead-lettered); an error
    /// of the server's retries every message of the failed part.
    async fn land<R>(&self, table: &'static str, rows: Vec<(usize, R)>, outcomes: &mut Outcomes)
    where
        R: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        let (owners, rows) = open_rows(rows, outcomes);
        self.split_insert(table, &owners, &rows, outcomes).await;
    }

    /// [`Sink::land`] through the group insert of probe results: the rows
    /// go with the other batches waiting. If the group was refused, the
    /// fault may lie in another batch's rows, so this batch inserts its own
    /// rows alone and splits them as [`Sink::land`] does.
    async fn land_grouped(&self, rows: Vec<(usize, HealthRow)>, outcomes: &mut Outcomes) {
        let (owners, rows) = open_rows(rows, outcomes);
        if rows.is_empty() {
            return;
        }
        let Some(landed) = self.health.insert(rows).await else {
            // The rows went with the task; nothing says they were stored.
            for &owner in &owners {
                outcomes.set(owner, Outcome::retry("the group insert stopped"));
            }
            return;
        };
        match landed.result {
            Ok(()) => self.note_landed(HEALTH_TABLE, &owners, outcomes),
            Err(e) if e.class() == Class::Retryable && !e.may_be_the_rows() => {
                self.clickhouse_answers(false);
                for &owner in &owners {
                    outcomes.set(owner, Outcome::retry(&e));
                }
            }
            Err(_) => {
                self.split_insert(HEALTH_TABLE, &owners, &landed.rows, outcomes)
                    .await
            }
        }
    }

    /// Inserts `rows` (of the messages `owners`), halving a refused part
    /// (a permanent error, or an unknown code that may be the rows') until
    /// the refused rows are alone.
    async fn split_insert<R>(
        &self,
        table: &'static str,
        owners: &[usize],
        rows: &[R],
        outcomes: &mut Outcomes,
    ) where
        R: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        let mut parts = vec![(0, rows.len())];
        while let Some((start, end)) = parts.pop() {
            if start == end {
                continue;
            }
            match self.store.insert(table, &rows[start..end]).await {
                Ok(()) => self.note_landed(table, &owners[start..end], outcomes),
                Err(e) if e.class() == Class::Retryable && !e.may_be_the_rows() => {
                    self.clickhouse_answers(false);
                    for &owner in &owners[start..end] {
                        outcomes.set(owner, Outcome::retry(&e));
                    }
                }
                Err(e) if end - start == 1 && e.class() == Class::Retryable => {
                    // An unknown code on one row: retried alone, so it
                    // holds up nothing but itself while the code is new.
                    tracing::warn!(table, error = %e, "ClickHouse refused a row with an unknown error; retrying it alone.");
                    outcomes.set(owners[start], Outcome::retry(&e));
                }
                Err(e) if end - start == 1 => {
                    tracing::warn!(table, error = %e, "ClickHouse refused a row; dead-lettering its message.");
                    self.count_dead(table, "rejected");
                    outcomes.set(owners[start], Outcome::poison(refused(&e)));
                }
                Err(e) => {
                    tracing::info!(table, rows = end - start, error = %e,
                        "ClickHouse refused a batch; splitting it to find the rows at fault.");
                    let middle = start + (end - start) / 2;
                    parts.push((middle, end));
                    parts.push((start, middle));
                }
            }
        }
    }

    /// Sets the lag gauge from the oldest event of rows just stored.
    fn clickhouse_answers(&self, answers: bool) {
        self.metrics
            .degradation
            .hold("clickhouse", Level::OriginDegraded, !answers);
    }

    fn note_landed(&self, table: &'static str, owners: &[usize], outcomes: &Outcomes) {
        self.clickhouse_answers(true);
        let Some(oldest) = owners.iter().map(|&owner| outcomes.stamps[owner]).min() else {
            return;
        };
        let lag = wall_clock_ms().saturating_sub(oldest);
        self.metrics
            .lag
            .with_label_values(&[table])
            .set(lag as f64 / 1000.0);
    }

    /// Handles a batch of `HEALTH` messages.
    pub async fn record_health(self, batch: Vec<Delivery>) -> Vec<Outcome> {
        let mut outcomes = Outcomes::new(HEALTH_TABLE, batch.len());
        let rows = self.decode(&batch, &mut outcomes, |e: Envelope<HealthResult>, now| {
            HealthRow::from_envelope(e, now)
        });
        // The rows are what waits for the group insert; the deliveries'
        // copies of subjects and headers need not wait with them.
        drop(batch);
        self.land_grouped(rows, &mut outcomes).await;
        outcomes.finish()
    }

    /// Handles a batch of `STATUS` messages; marks the days they change.
    pub async fn record_status(self, batch: Vec<Delivery>) -> Vec<Outcome> {
        let mut outcomes = Outcomes::new(STATUS_TABLE, batch.len());
        let rows = self.decode(&batch, &mut outcomes, |e: Envelope<StatusChange>, now| {
            StatusRow::from_envelope(&e, now)
        });
        let changed: Vec<(usize, String, String, u64)> = rows
            .iter()
            .map(|(i, r)| (*i, r.page.clone(), r.component.clone(), r.at_ms))
            .collect();
        self.land(STATUS_TABLE, rows, &mut outcomes).await;
        for (index, page, component, at_ms) in changed {
            if outcomes.is_open(index) {
                self.dirty.mark(&page, &component, at_ms);
            }
        }
        outcomes.finish()
    }

    /// Handles a batch of `INCIDENTS` messages: the events, then the
    /// timeline updates they add. A message is done when both landed.
    pub async fn record_incidents(self, batch: Vec<Delivery>) -> Vec<Outcome> {
        let mut outcomes = Outcomes::new(INCIDENT_TABLE, batch.len());
        let pairs = self.decode(&batch, &mut outcomes, |e: Envelope<IncidentEvent>, now| {
            IncidentRow::from_envelope(&e, now)
        });
        let mut events = Vec::with_capacity(pairs.len());
        let mut updates: Vec<(usize, IncidentUpdateRow)> = Vec::new();
        for (index, (event, update)) in pairs {
            events.push((index, event));
            if let Some(update) = update {
                updates.push((index, update));
            }
        }
        self.land(INCIDENT_TABLE, events, &mut outcomes).await;
        outcomes.table = INCIDENT_UPDATE_TABLE;
        self.land(INCIDENT_UPDATE_TABLE, updates, &mut outcomes)
            .await;
        outcomes.finish()
    }

    /// Handles a batch of `MAINTENANCE` messages; marks the days they change.
    pub async fn record_maintenance(self, batch: Vec<Delivery>) -> Vec<Outcome> {
        let mut outcomes = Outcomes::new(MAINTENANCE_TABLE, batch.len());
        let rows = self.decode(
            &batch,
            &mut outcomes,
            |e: Envelope<MaintenanceEvent>, now| MaintenanceRow::from_envelope(&e, now),
        );
        let changed: Vec<(usize, String, Vec<String>, u64)> = rows
            .iter()
            .map(|(i, r)| {
                (
                    *i,
                    r.page.clone(),
                    r.components.clone(),
                    r.at_ms.min(r.starts_at_ms),
                )
            })
            .collect();
        self.land(MAINTENANCE_TABLE, rows, &mut outcomes).await;
        for (index, page, components, from_ms) in changed {
            if outcomes.is_open(index) {
                for component in components {
                    self.dirty.mark(&page, &component, from_ms);
                }
            }
        }
        outcomes.finish()
    }

    /// Handles a batch of `DELIVERIES` messages.
    pub async fn record_deliveries(self, batch: Vec<Delivery>) -> Vec<Outcome> {
        let mut outcomes = Outcomes::new(DELIVERY_TABLE, batch.len());
        let rows = self.decode(
            &batch,
            &mut outcomes,
            |e: Envelope<DeliveryReceipt>, now| DeliveryRow::from_envelope(&e, now),
        );
        self.land(DELIVERY_TABLE, rows, &mut outcomes).await;
        outcomes.finish()
    }
}

/// The rows of the messages still open, with the index of each row's
/// message.
fn open_rows<R>(rows: Vec<(usize, R)>, outcomes: &Outcomes) -> (Vec<usize>, Vec<R>) {
    let mut owners = Vec::with_capacity(rows.len());
    let mut open = Vec::with_capacity(rows.len());
    for (index, row) in rows {
        if outcomes.is_open(index) {
            owners.push(index);
            open.push(row);
        }
    }
    (owners, open)
}

/// The dead-letter reason for a row ClickHouse refused.
fn refused(error: &StoreError) -> String {
    format!(
        "ClickHouse refused the row ({}): {error}",
        error.permanent_code().unwrap_or("permanent error")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_from_the_minimum_to_the_cap() {
        let table = [
            (0, 2),
            (1, 2),
            (2, 4),
            (3, 8),
            (4, 16),
            (5, 30),
            (3_000, 30),
            (-5, 2),
        ];
        for (attempt, seconds) in table {
            assert_eq!(
                RETRY.delay(attempt),
                Duration::from_secs(seconds),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn an_outage_never_dead_letters() {
        assert!(!RETRY.gives_up_at(i64::MAX));
    }

    #[test]
    fn consumers_are_durable_and_patient() {
        for (spec, stream, durable) in [
            (health_spec(), STREAM_HEALTH, HEALTH_CONSUMER),
            (status_spec(), STREAM_STATUS, STATUS_CONSUMER),
            (incidents_spec(), STREAM_INCIDENTS, INCIDENTS_CONSUMER),
            (maintenance_spec(), STREAM_MAINTENANCE, MAINTENANCE_CONSUMER),
            (deliveries_spec(), STREAM_DELIVERIES, DELIVERIES_CONSUMER),
        ] {
            assert_eq!(
                (spec.stream.as_str(), spec.durable.as_str()),
                (stream, durable)
            );
            assert_eq!(spec.retry, RETRY);
            assert!(spec.validate().is_ok(), "{durable}");
            assert!(
                !spec.retry.gives_up_at(i64::MAX),
                "an outage must not dead-letter"
            );
        }
    }
}
