//! The consumer side: which streams the recorder reads and what it does
//! with each message.
//!
//! A handler decodes the envelope, maps it to a row and inserts it; it
//! returns `Ok` only after ClickHouse has stored the row, and the consumer
//! loop acks only after that. Undecodable or unmappable messages are poison
//! and end in the dead-letter stream. A failed insert is retried with a
//! delay that grows with each attempt, for long enough to ride out a
//! ClickHouse outage of about a day.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::consume::{ConsumerSpec, Delivery, HandlerError};
use beacon_core::messages::{HealthResult, StatusChange};
use beacon_core::names::{STREAM_HEALTH, STREAM_STATUS};

use crate::rows::{HealthRow, StatusRow};
use crate::schema::{HEALTH_TABLE, STATUS_TABLE};
use crate::service::{ClickHouse, StoreError};

/// Durable consumer of `HEALTH`.
pub const HEALTH_CONSUMER: &str = "recorder-health";

/// Durable consumer of `STATUS`.
pub const STATUS_CONSUMER: &str = "recorder-status";

/// Delay before the first retries of a failed insert: long enough for a
/// ClickHouse restart, short enough that history catches up quickly.
pub const RETRY_DELAY_MIN: Duration = Duration::from_secs(2);

/// Longest delay between retries of one message. The delay grows by a
/// second per attempt up to this, so a long outage costs a retry per
/// message every 30 s rather than a storm of failing inserts.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);

/// Deliveries of one message before it is dead-lettered. At
/// [`RETRY_DELAY_MAX`] per attempt this is about a day: ClickHouse
/// outages shorter than that lose nothing, and a message that still fails
/// is kept in the dead-letter stream, not dropped.
pub const MAX_DELIVER: i64 = 3_000;

/// The consumer of probe results.
pub fn health_spec() -> ConsumerSpec {
    ConsumerSpec {
        max_deliver: MAX_DELIVER,
        ..ConsumerSpec::new(STREAM_HEALTH, HEALTH_CONSUMER)
    }
}

/// The consumer of status changes.
pub fn status_spec() -> ConsumerSpec {
    ConsumerSpec {
        max_deliver: MAX_DELIVER,
        ..ConsumerSpec::new(STREAM_STATUS, STATUS_CONSUMER)
    }
}

/// The delay before redelivering a message whose insert failed on
/// delivery `attempt` (1 for the first).
pub fn retry_delay(attempt: i64) -> Duration {
    let seconds = u64::try_from(attempt).unwrap_or(0);
    Duration::from_secs(seconds).clamp(RETRY_DELAY_MIN, RETRY_DELAY_MAX)
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

    /// Handles one `HEALTH` message.
    pub async fn record_health(self, delivery: Delivery) -> Result<(), HandlerError> {
        let envelope = delivery.decode::<HealthResult>()?;
        let row = HealthRow::from_envelope(&envelope).map_err(HandlerError::poison)?;
        self.store
            .insert(HEALTH_TABLE, &row)
            .await
            .map_err(|e| retry(&delivery, e))
    }

    /// Handles one `STATUS` message.
    pub async fn record_status(self, delivery: Delivery) -> Result<(), HandlerError> {
        let envelope = delivery.decode::<StatusChange>()?;
        let row = StatusRow::from_envelope(&envelope).map_err(HandlerError::poison)?;
        self.store
            .insert(STATUS_TABLE, &row)
            .await
            .map_err(|e| retry(&delivery, e))
    }
}

fn retry(delivery: &Delivery, error: StoreError) -> HandlerError {
    HandlerError::Retry {
        reason: error.to_string(),
        delay: retry_delay(delivery.attempt),
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
            (2, 2),
            (3, 3),
            (10, 10),
            (30, 30),
            (31, 30),
            (MAX_DELIVER, 30),
            (-5, 2),
        ];
        for (attempt, seconds) in table {
            assert_eq!(
                retry_delay(attempt),
                Duration::from_secs(seconds),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn retries_last_about_a_day_before_dead_lettering() {
        let total: Duration = (1..MAX_DELIVER).map(retry_delay).sum();
        assert!(
            total > Duration::from_secs(20 * 3600) && total < Duration::from_secs(30 * 3600),
            "{total:?}"
        );
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
            assert_eq!(spec.max_deliver, MAX_DELIVER);
        }
    }
}
