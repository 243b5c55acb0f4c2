//! The consumer side: which streams the recorder reads and what it does
//! with each message.
//!
//! A handler receives a batch, decodes each envelope and maps it to a row,
//! and inserts the batch's rows in one `INSERT`; its messages are `Done`
//! only after ClickHouse has stored them, and the consumer loop acks only
//! after that. Undecodable or unmappable messages are poison and end in the
//! dead-letter stream without holding up the rest of their batch. A failed
//! insert retries the batch's messages with the consumer's retry policy,
//! delays growing to [`RETRY_DELAY_MAX`], for as long as ClickHouse is
//! away: an outage is not the message's fault, so nothing is dead-lettered
//! for it.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::consume::{BatchSettings, ConsumerSpec, Delivery, Outcome, RetryPolicy};
use beacon_core::event::{Envelope, Message};
use beacon_core::messages::{HealthResult, StatusChange};
use beacon_core::names::{STREAM_HEALTH, STREAM_STATUS};

use crate::rows::{HealthRow, StatusRow};
use crate::schema::{HEALTH_TABLE, STATUS_TABLE};
use crate::service::ClickHouse;

/// Durable consumer of `HEALTH`.
pub const HEALTH_CONSUMER: &str = "recorder-health";

/// Durable consumer of `STATUS`.
pub const STATUS_CONSUMER: &str = "recorder-status";

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

/// The consumer of probe results: large batches, because ClickHouse
/// wants few big inserts, and two in flight so one insert's round trip
/// overlaps the next batch's collection. Row order does not matter: rows
/// carry their own timestamps.
pub fn health_spec() -> ConsumerSpec {
    ConsumerSpec {
        retry: RETRY,
        batch: BatchSettings {
            max_messages: 2_000,
            max_wait: Duration::from_millis(200),
            concurrency: 2,
        },
        ..ConsumerSpec::new(STREAM_HEALTH, HEALTH_CONSUMER)
    }
}

/// The consumer of status changes: rare, so small batches soon.
pub fn status_spec() -> ConsumerSpec {
    ConsumerSpec {
        retry: RETRY,
        batch: BatchSettings {
            max_messages: 500,
            max_wait: Duration::from_millis(50),
            concurrency: 1,
        },
        ..ConsumerSpec::new(STREAM_STATUS, STATUS_CONSUMER)
    }
}

/// Writes messages into ClickHouse. Cheap to clone: handlers take the sink
/// by value so each message's future owns what it uses.
#[derive(Debug, Clone)]
pub struct Sink {
    store: Arc<ClickHouse>,
}

impl Sink {
    /// A sink that writes through `store`.
    pub fn new(store: Arc<ClickHouse>) -> Self {
        Self { store }
    }

    /// Handles a batch of `HEALTH` messages.
    pub async fn record_health(self, batch: Vec<Delivery>) -> Vec<Outcome> {
        self.record(HEALTH_TABLE, batch, |e: &Envelope<HealthResult>| {
            HealthRow::from_envelope(e)
        })
        .await
    }

    /// Handles a batch of `STATUS` messages.
    pub async fn record_status(self, batch: Vec<Delivery>) -> Vec<Outcome> {
        self.record(STATUS_TABLE, batch, |e: &Envelope<StatusChange>| {
            StatusRow::from_envelope(e)
        })
        .await
    }

    /// Maps each delivery to a row (or a poison outcome), inserts the rows
    /// in one go, and gives every mapped message the insert's outcome.
    async fn record<M, R, E>(
        &self,
        table: &'static str,
        batch: Vec<Delivery>,
        to_row: impl Fn(&Envelope<M>) -> Result<R, E>,
    ) -> Vec<Outcome>
    where
        M: Message,
        R: clickhouse::RowOwned + clickhouse::RowWrite,
        E: std::fmt::Display,
    {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        for delivery in &batch {
            match delivery.decode::<M>() {
                Ok(envelope) => match to_row(&envelope) {
                    Ok(row) => {
                        rows.push(row);
                        outcomes.push(None);
                    }
                    Err(e) => outcomes.push(Some(Outcome::poison(e))),
                },
                Err(e) => outcomes.push(Some(Outcome::from(Err(e)))),
            }
        }
        let inserted = match self.store.insert(table, &rows).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::retry(e),
        };
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| inserted.clone()))
            .collect()
    }
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
        ] {
            assert_eq!(
                (spec.stream.as_str(), spec.durable.as_str()),
                (stream, durable)
            );
            assert_eq!(spec.retry, RETRY);
            assert!(
                !spec.retry.gives_up_at(i64::MAX),
                "an outage must not dead-letter"
            );
        }
    }
}
