//! The consumer loop every daemon uses to read a stream.
//!
//! - The handler's durable side effect comes first; the message is acked only
//!   after the handler returns `Ok`.
//! - [`HandlerError::Retry`] naks with a delay from the spec's
//!   [`RetryPolicy`] that doubles per attempt up to a cap. A retryable
//!   failure is a dependency's fault (ClickHouse down, a KV write lost), not
//!   the message's, so by default it is retried until it succeeds; a
//!   consumer may set `give_up_after` to dead-letter instead.
//! - [`HandlerError::Poison`] (including every decode failure) copies the
//!   message to the `DEADLETTER` stream, counts it and terminates it.
//! - Errors from the server never end the loop: it logs, backs off and
//!   re-opens the consumer. Only shutdown ends it.
//!
//! Messages are handled one at a time, in stream order, per consumer.

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, AckKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use prometheus::{HistogramVec, IntCounterVec};

use crate::event::{Envelope, Message};
use crate::names::deadletter_subject;
use crate::publish::publish_bytes;
use crate::shutdown::{Backoff, Shutdown};
use crate::telemetry::{MetricError, Metrics};

/// Headers a dead letter carries besides the original payload.
pub mod deadletter_headers {
    /// Subject the message was published on.
    pub const SUBJECT: &str = "Beacon-Original-Subject";
    /// Stream it came from.
    pub const STREAM: &str = "Beacon-Original-Stream";
    /// Its sequence in that stream.
    pub const SEQUENCE: &str = "Beacon-Original-Sequence";
    /// Consumer that gave up on it.
    pub const CONSUMER: &str = "Beacon-Consumer";
    /// Why.
    pub const REASON: &str = "Beacon-Reason";
}

/// What a handler says went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Try again later (a dependency is down). The message is nak'ed with
    /// the delay the consumer's [`RetryPolicy`] gives for this attempt.
    #[error("retryable: {reason}")]
    Retry {
        /// Why.
        reason: String,
    },
    /// This message will never succeed (undecodable, invalid). Dead-lettered.
    #[error("poison: {reason}")]
    Poison {
        /// Why.
        reason: String,
    },
}

impl HandlerError {
    /// A retryable error.
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        HandlerError::Retry {
            reason: reason.to_string(),
        }
    }

    /// A permanent error.
    pub fn poison(reason: impl std::fmt::Display) -> Self {
        HandlerError::Poison {
            reason: reason.to_string(),
        }
    }
}

/// One delivered message, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Subject it was published on.
    pub subject: String,
    /// Payload.
    pub payload: Bytes,
    /// Headers, if any.
    pub headers: Option<HeaderMap>,
    /// Sequence in the stream.
    pub stream_sequence: u64,
    /// Delivery attempt, starting at 1.
    pub attempt: i64,
}

impl Delivery {
    /// Decodes the payload as an envelope of `T`; a failure is poison.
    pub fn decode<T: Message>(&self) -> Result<Envelope<T>, HandlerError> {
        Envelope::<T>::decode(&self.payload).map_err(HandlerError::poison)
    }
}

/// How long to wait before redelivering a message whose handler asked for
/// a retry, and whether to ever give up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt; it doubles with each attempt.
    pub first: Duration,
    /// Longest delay, so a long outage costs one retry per message per `max`.
    pub max: Duration,
    /// Dead-letter after this many attempts; `None` retries until it works.
    pub give_up_after: Option<i64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            give_up_after: None,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed delivery `attempt` (1 for the first). Pure.
    pub fn delay(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 31)).unwrap_or(0);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .max(self.first.min(self.max))
    }

    /// Whether failed delivery `attempt` is the last one allowed.
    pub fn gives_up_at(&self, attempt: i64) -> bool {
        self.give_up_after.is_some_and(|limit| attempt >= limit)
    }
}

/// Which stream to read and how.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Stream name.
    pub stream: String,
    /// Durable consumer name; the server remembers its position.
    pub durable: String,
    /// Subjects to read; empty means the whole stream.
    pub filter_subjects: Vec<String>,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Delays between retries, and whether to give up.
    pub retry: RetryPolicy,
    /// Where a new consumer starts.
    pub deliver_policy: consumer::DeliverPolicy,
}

impl ConsumerSpec {
    /// A durable consumer of the whole stream from the beginning, with defaults.
    pub fn new(stream: &str, durable: &str) -> Self {
        Self {
            stream: stream.to_owned(),
            durable: durable.to_owned(),
            filter_subjects: Vec::new(),
            ack_wait: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            deliver_policy: consumer::DeliverPolicy::All,
        }
    }

    fn consumer_config(&self) -> consumer::pull::Config {
        let mut config = consumer::pull::Config {
            durable_name: Some(self.durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // Unlimited on the server: the retry policy decides, and a
            // message whose dead-letter copy failed must keep coming back
            // rather than be dropped silently by the server.
            max_deliver: -1,
            deliver_policy: self.deliver_policy,
            ..Default::default()
        };
        match self.filter_subjects.as_slice() {
            [] => {}
            [one] => config.filter_subject = one.clone(),
            many => config.filter_subjects = many.to_vec(),
        }
        config
    }
}

/// Counters for one daemon's consumers, labelled by consumer and outcome.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    messages: IntCounterVec,
    errors: IntCounterVec,
    handle_seconds: HistogramVec,
}

impl ConsumerMetrics {
    /// Registers the consumer metrics in `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricError> {
        Ok(Self {
            messages: metrics.counter(
                "messages_total",
                "Messages handled, by consumer and outcome (acked, retried, dead_lettered)",
                &["consumer", "outcome"],
            )?,
            errors: metrics.counter(
                "consumer_errors_total",
                "Errors talking to the server while consuming, by consumer",
                &["consumer"],
            )?,
            handle_seconds: metrics.histogram(
                "handle_seconds",
                "Time spent in a handler",
                &["consumer"],
            )?,
        })
    }

    /// Messages counted with `outcome` for `consumer` (for tests and dashboards).
    pub fn count(&self, consumer: &str, outcome: &str) -> u64 {
        self.messages.with_label_values(&[consumer, outcome]).get()
    }
}

/// Runs a consumer until shutdown. Never returns early on an error.
pub async fn run_consumer<H, Fut>(
    js: jetstream::Context,
    spec: ConsumerSpec,
    metrics: ConsumerMetrics,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        let mut messages = match open(&js, &spec).await {
            Ok(messages) => messages,
            Err(reason) => {
                metrics.errors.with_label_values(&[&spec.durable]).inc();
                let delay = backoff.next_delay();
                tracing::warn!(consumer = %spec.durable, stream = %spec.stream, retry_in = ?delay, error = %reason,
                    "Cannot open consumer, retrying.");
                shutdown.sleep(delay).await;
                continue;
            }
        };
        tracing::info!(consumer = %spec.durable, stream = %spec.stream, "Consuming.");
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    backoff.reset(Duration::from_millis(200));
                    handle_one(&js, &spec, &metrics, &handler, message).await;
                }
                Some(Err(e)) => {
                    metrics.errors.with_label_values(&[&spec.durable]).inc();
                    tracing::warn!(consumer = %spec.durable, error = %e, "Consumer error, continuing.");
                    // Errors such as missed heartbeats come while the server
                    // is away; pause so a dead server is not spun on.
                    shutdown.sleep(backoff.next_delay()).await;
                }
                None => {
                    tracing::warn!(consumer = %spec.durable, "Consumer stream ended, re-opening.");
                    break;
                }
            }
        }
    }
}

async fn open(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<consumer::pull::Stream, String> {
    let stream = js
        .get_stream(&spec.stream)
        .await
        .map_err(|e| e.to_string())?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(spec.consumer_config())
        .await
        .map_err(|e| e.to_string())?;
    consumer
        .stream()
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| e.to_string())
}

async fn handle_one<H, Fut>(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    metrics: &ConsumerMetrics,
    handler: &H,
    message: jetstream::Message,
) where
    H: Fn(Delivery) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let (stream_sequence, attempt) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(_) => (0, 1),
    };
    let delivery = Delivery {
        subject: message.subject.to_string(),
        payload: message.payload.clone(),
        headers: message.headers.clone(),
        stream_sequence,
        attempt,
    };
    let started = Instant::now();
    let result = handler(delivery).await;
    metrics
        .handle_seconds
        .with_label_values(&[&spec.durable])
        .observe(started.elapsed().as_secs_f64());

    let consumer = spec.durable.as_str();
    let outcome = match result {
        Ok(()) => match message.ack().await {
            Ok(()) => "acked",
            Err(e) => {
                // The side effect happened; the redelivery will be a duplicate
                // that handlers are written to tolerate.
                tracing::warn!(consumer, seq = stream_sequence, error = %e, "Ack failed, message will be redelivered.");
                "ack_failed"
            }
        },
        Err(HandlerError::Retry { reason }) if !spec.retry.gives_up_at(attempt) => {
            let delay = spec.retry.delay(attempt);
            tracing::warn!(consumer, seq = stream_sequence, attempt, retry_in = ?delay, %reason, "Handler failed, will retry.");
            if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                tracing::warn!(consumer, error = %e, "Nak failed; the server redelivers after ack_wait.");
            }
            "retried"
        }
        Err(HandlerError::Retry { reason }) => {
            let reason = format!("gave up after {attempt} attempts: {reason}");
            dead_letter(js, spec, &message, stream_sequence, &reason).await
        }
        Err(HandlerError::Poison { reason }) => {
            dead_letter(js, spec, &message, stream_sequence, &reason).await
        }
    };
    metrics
        .messages
        .with_label_values(&[consumer, outcome])
        .inc();
}

/// Copies the message to the dead-letter stream, then terminates it. If the
/// copy fails the message is nak'ed instead, so nothing is lost.
async fn dead_letter(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    message: &jetstream::Message,
    sequence: u64,
    reason: &str,
) -> &'static str {
    let mut headers = HeaderMap::new();
    headers.insert(deadletter_headers::SUBJECT, message.subject.as_str());
    headers.insert(deadletter_headers::STREAM, spec.stream.as_str());
    headers.insert(deadletter_headers::SEQUENCE, sequence.to_string().as_str());
    headers.insert(deadletter_headers::CONSUMER, spec.durable.as_str());
    // Header values cannot hold line breaks.
    headers.insert(
        deadletter_headers::REASON,
        reason.replace(['\r', '\n'], " ").as_str(),
    );
    let subject = deadletter_subject(&spec.stream, &spec.durable);
    let message_id = format!("dl-{}-{}-{}", spec.stream, spec.durable, sequence);
    match publish_bytes(
        js,
        &subject,
        &message_id,
        message.payload.clone(),
        Some(headers),
    )
    .await
    {
        Ok(_) => {
            tracing::warn!(consumer = %spec.durable, seq = sequence, %reason, "Message dead-lettered.");
            if let Err(e) = message.ack_with(AckKind::Term).await {
                tracing::warn!(consumer = %spec.durable, error = %e, "Term failed; a redelivery will be dead-lettered again (same id, deduplicated).");
            }
            "dead_lettered"
        }
        Err(e) => {
            tracing::error!(consumer = %spec.durable, seq = sequence, error = %e, "Cannot dead-letter message, will retry it.");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            "retried"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_from_the_first_to_the_cap() {
        let policy = RetryPolicy {
            first: Duration::from_secs(2),
            max: Duration::from_secs(30),
            give_up_after: None,
        };
        let table = [
            (-5, 2),
            (0, 2),
            (1, 2),
            (2, 4),
            (3, 8),
            (4, 16),
            (5, 30),
            (6, 30),
            (i64::MAX, 30),
        ];
        for (attempt, seconds) in table {
            assert_eq!(
                policy.delay(attempt),
                Duration::from_secs(seconds),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn by_default_a_retryable_failure_is_never_given_up() {
        let policy = RetryPolicy::default();
        assert!(!policy.gives_up_at(1));
        assert!(!policy.gives_up_at(i64::MAX));
        let limited = RetryPolicy {
            give_up_after: Some(3),
            ..policy
        };
        assert_eq!(
            (1..=4).map(|a| limited.gives_up_at(a)).collect::<Vec<_>>(),
            [false, false, true, true]
        );
    }
}
