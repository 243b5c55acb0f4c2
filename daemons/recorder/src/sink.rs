//! The consumer side: which streams the recorder reads and what it does
//! with each message.
//!
//! A handler decodes the envelope, maps it to a row and inserts it; it
//! returns `Ok` only after ClickHouse has stored the row, and the consumer
//! loop acks only after that. Undecodable or unmappable messages are poison
//! and end in the dead-letter stream. A failed insert is retried by the
//! consumer loop's retry policy, with delays growing to
//! [`RETRY_DELAY_MAX`], for as long as ClickHouse is away: an outage is not
//! the message's fault, so nothing is dead-lettered for it.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::consume::{ConsumerSpec, Delivery, HandlerError, RetryPolicy};
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

/// The consumer of probe results.
pub fn health_spec() -> ConsumerSpec {
    ConsumerSpec {
        retry: RETRY,
        ..ConsumerSpec::new(STREAM_HEALTH, HEALTH_CONSUMER)
    }
}

/// The consumer of status changes.
pub fn status_spec() -> ConsumerSpec {
    ConsumerSpec {
        retry: RETRY,
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

    /// Handles one `HEALTH` message.
    pub async fn record_health(self, delivery: Delivery) -> Result<(), HandlerError> {
        let envelope = delivery.decode::<HealthResult>()?;
        let row = HealthRow::from_envelope(&envelope).map_err(HandlerError::poison)?;
        self.store
            .insert(HEALTH_TABLE, &row)
            .await
            .map_err(HandlerError::retry)
    }

    /// Handles one `STATUS` message.
    pub async fn record_status(self, delivery: Delivery) -> Result<(), HandlerError> {
        let envelope = delivery.decode::<StatusChange>()?;
        let row = StatusRow::from_envelope(&envelope).map_err(HandlerError::poison)?;
        self.store
            .insert(STATUS_TABLE, &row)
            .await
            .map_err(HandlerError::retry)
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
