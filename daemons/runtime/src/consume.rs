//! The consumer loop every daemon uses to read a stream.
//!
//! - **Batches.** [`run_batch_consumer`] pulls up to
//!   [`BatchSettings::max_messages`] messages, waiting at most
//!   [`BatchSettings::max_wait`] for the batch to fill once its first message
//!   is there, and hands them to the handler together. The handler returns
//!   one [`Outcome`] per message. [`run_consumer`], the one-message form, is
//!   the same loop with a handler that takes the batch's messages one at a
//!   time.
//! - **Nothing waits unwatched.** A batch is only requested when a handler
//!   slot is free, so every message the client holds is in a batch being
//!   collected or handled; while a handler runs, its messages get progress
//!   acks every third of the ack wait. The server's `max_ack_pending` is set
//!   from the batch size and concurrency. A message is therefore redelivered
//!   only when a process died or stalled, not because it sat in a queue
//!   (its `attempt` stays 1).
//! - **Outcomes.** [`Outcome::Done`] acks after the handler's durable side
//!   effect. [`Outcome::Retry`] naks with a delay, by default from the
//!   spec's [`RetryPolicy`]; by default a retryable message is never given
//!   up, because an outage is not the message's fault. [`Outcome::Poison`]
//!   (every decode failure, and a handler panic) copies the message to the
//!   `DEADLETTER` stream, counts it and terminates it; if the copy fails it
//!   is nak'ed, never dropped.
//! - **Panics.** A panicking handler does not end the loop. The batch is
//!   handled again one message at a time, so only the message that panics
//!   is dead-lettered.
//! - **Errors from the server** never end the loop: it logs, backs off and
//!   re-opens the consumer. Only shutdown ends it; a batch in hand is
//!   finished and acked first.
//!
//! # Ordering
//!
//! First deliveries arrive in stream order, and the one-message form
//! handles a batch in that order. With [`BatchSettings::concurrency`] above
//! one, batches are handled at the same time and finish in any order. A
//! nak'ed message comes back after later messages have been handled, so a
//! handler that cares about order compares the event's HLC or timestamps,
//! never its arrival.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, AckKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use prometheus::{HistogramVec, IntCounterVec};

use crate::publish::publish_bytes;
use crate::retry::{Backoff, Class, Classify};
use crate::shutdown::Shutdown;
use crate::telemetry::{MetricError, Metrics};
use beacon_contract::event::{Envelope, Message};
use beacon_contract::names::deadletter_subject;

pub use crate::retry::RetryPolicy;

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

/// What a one-message handler says went wrong.
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

    /// Retry or poison, as the error's own [`Classify`] says.
    pub fn classified<E: Classify + std::fmt::Display>(error: E) -> Self {
        match error.class() {
            Class::Retryable => HandlerError::retry(error),
            Class::Permanent => HandlerError::poison(error),
        }
    }
}

impl Classify for HandlerError {
    fn class(&self) -> Class {
        match self {
            HandlerError::Retry { .. } => Class::Retryable,
            HandlerError::Poison { .. } => Class::Permanent,
        }
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its side effect is durable: ack it.
    Done,
    /// Try again later. `after: None` takes the delay from the consumer's
    /// [`RetryPolicy`] for this attempt.
    Retry {
        /// Why.
        reason: String,
        /// Delay before redelivery, if the handler knows better.
        after: Option<Duration>,
    },
    /// It will never succeed: dead-letter it.
    Poison {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// A retry with the policy's delay.
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        Outcome::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }

    /// A poison outcome.
    pub fn poison(reason: impl std::fmt::Display) -> Self {
        Outcome::Poison {
            reason: reason.to_string(),
        }
    }
}

impl From<Result<(), HandlerError>> for Outcome {
    fn from(result: Result<(), HandlerError>) -> Self {
        match result {
            Ok(()) => Outcome::Done,
            Err(HandlerError::Retry { reason }) => Outcome::Retry {
                reason,
                after: None,
            },
            Err(HandlerError::Poison { reason }) => Outcome::Poison { reason },
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

/// How messages are grouped and handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most messages in one batch.
    pub max_messages: usize,
    /// Longest wait for a batch to fill once its first message arrived.
    pub max_wait: Duration,
    /// Batches handled at the same time. Above one, batches finish in any
    /// order: only for handlers that do not care.
    pub concurrency: usize,
}

impl Default for BatchSettings {
    /// Batches of up to 100 messages, closed after 20 ms, one at a time.
    fn default() -> Self {
        Self {
            max_messages: 100,
            max_wait: Duration::from_millis(20),
            concurrency: 1,
        }
    }
}

/// Largest batch accepted: one pull request; the server caps pending
/// requests and bytes, and a handler holding more is holding too much.
pub const MAX_BATCH_MESSAGES: usize = 10_000;
/// Most batches handled at once by one consumer.
pub const MAX_CONCURRENCY: usize = 64;
/// Shortest ack wait accepted: progress acks go every third of it.
pub const MIN_ACK_WAIT: Duration = Duration::from_secs(1);

/// Which stream to read and how.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Stream name.
    pub stream: String,
    /// Durable consumer name; the server remembers its position.
    pub durable: String,
    /// Subjects to read; empty means the whole stream.
    pub filter_subjects: Vec<String>,
    /// How long the server waits for an ack (or a progress ack) before
    /// redelivering.
    pub ack_wait: Duration,
    /// Batch size, batch wait and concurrency.
    pub batch: BatchSettings,
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
            batch: BatchSettings::default(),
            retry: RetryPolicy::default(),
            deliver_policy: consumer::DeliverPolicy::All,
        }
    }

    /// Checks that the settings can work; returns every problem, worded
    /// for an operator (daemons exit 64 with them).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let name = &self.durable;
        let batch = &self.batch;
        if !(1..=MAX_BATCH_MESSAGES).contains(&batch.max_messages) {
            errors.push(format!(
                "consumer {name}: batch size must be between 1 and {MAX_BATCH_MESSAGES}, got {}",
                batch.max_messages
            ));
        }
        if batch.max_wait.is_zero() {
            errors.push(format!("consumer {name}: batch wait must be above zero"));
        }
        if !(1..=MAX_CONCURRENCY).contains(&batch.concurrency) {
            errors.push(format!(
                "consumer {name}: concurrency must be between 1 and {MAX_CONCURRENCY}, got {}",
                batch.concurrency
            ));
        }
        if self.ack_wait < MIN_ACK_WAIT {
            errors.push(format!(
                "consumer {name}: ack wait must be at least {MIN_ACK_WAIT:?}, got {:?}",
                self.ack_wait
            ));
        }
        if self.ack_wait <= batch.max_wait {
            errors.push(format!(
                "consumer {name}: ack wait ({:?}) must be longer than the batch wait ({:?}), \
                 or messages are redelivered while the batch is still being collected",
                self.ack_wait, batch.max_wait
            ));
        }
        if self.retry.first.is_zero() || self.retry.max < self.retry.first {
            errors.push(format!(
                "consumer {name}: retry delays must be above zero and the first at most the longest"
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Most messages delivered and not yet acked: every handler slot full,
    /// plus one batch of slack for acks still on their way to the server.
    pub fn max_ack_pending(&self) -> i64 {
        let in_hand = self.batch.max_messages * (self.batch.concurrency + 1);
        i64::try_from(in_hand).unwrap_or(i64::MAX)
    }

    /// Creates the durable consumer now, with exactly the settings the
    /// consumer loop uses, so a role that consumes only while it leads
    /// (the notifier's planner) misses nothing published before it first
    /// led. Creating it again with the same settings changes nothing.
    pub async fn ensure(&self, js: &jetstream::Context) -> Result<(), String> {
        let stream = js
            .get_stream(&self.stream)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .create_consumer(self.consumer_config())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn consumer_config(&self) -> consumer::pull::Config {
        let mut config = consumer::pull::Config {
            durable_name: Some(self.durable.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_ack_pending: self.max_ack_pending(),
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

/// Flags that tune a daemon's consumers; each unset flag keeps the
/// daemon's own default for that consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct BatchArgs {
    /// Most messages a consumer hands its handler at once.
    #[arg(long, env = "BEACON_BATCH_SIZE")]
    pub batch_size: Option<usize>,
    /// Longest wait for a batch to fill once its first message arrived, e.g. `20ms`.
    #[arg(long, env = "BEACON_BATCH_WAIT", value_parser = humantime::parse_duration)]
    pub batch_wait: Option<Duration>,
    /// Batches a consumer handles at once, where its handler allows it.
    #[arg(long, env = "BEACON_BATCH_CONCURRENCY")]
    pub batch_concurrency: Option<usize>,
    /// How long the server waits for an ack before redelivering, e.g. `30s`.
    #[arg(long, env = "BEACON_ACK_WAIT", value_parser = humantime::parse_duration)]
    pub ack_wait: Option<Duration>,
}

impl BatchArgs {
    /// `spec` with every flag that was given applied to it.
    pub fn apply(&self, mut spec: ConsumerSpec) -> ConsumerSpec {
        if let Some(size) = self.batch_size {
            spec.batch.max_messages = size;
        }
        if let Some(wait) = self.batch_wait {
            spec.batch.max_wait = wait;
        }
        if let Some(concurrency) = self.batch_concurrency {
            spec.batch.concurrency = concurrency;
        }
        if let Some(ack_wait) = self.ack_wait {
            spec.ack_wait = ack_wait;
        }
        spec
    }

    /// Applies the flags to every spec and validates them all, collecting
    /// every problem.
    pub fn apply_all(&self, specs: Vec<ConsumerSpec>) -> Result<Vec<ConsumerSpec>, Vec<String>> {
        let specs: Vec<ConsumerSpec> = specs.into_iter().map(|s| self.apply(s)).collect();
        let errors: Vec<String> = specs
            .iter()
            .filter_map(|s| s.validate().err())
            .flatten()
            .collect();
        if errors.is_empty() {
            Ok(specs)
        } else {
            Err(errors)
        }
    }
}

/// Counters for one daemon's consumers, labelled by consumer and outcome.
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    messages: IntCounterVec,
    errors: IntCounterVec,
    handle_seconds: HistogramVec,
    batch_messages: HistogramVec,
    progress_acks: IntCounterVec,
    panics: IntCounterVec,
}

impl ConsumerMetrics {
    /// Registers the consumer metrics in `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricError> {
        Ok(Self {
            messages: metrics.counter(
                "messages_total",
                "Messages handled, by consumer and outcome (acked, retried, dead_lettered, ack_failed)",
                &["consumer", "outcome"],
            )?,
            errors: metrics.counter(
                "consumer_errors_total",
                "Errors talking to the server while consuming, by consumer",
                &["consumer"],
            )?,
            handle_seconds: metrics.histogram(
                "handle_seconds",
                "Time a handler spent on one batch",
                &["consumer"],
            )?,
            batch_messages: metrics.histogram_with_buckets(
                "batch_messages",
                "Messages per batch handed to a handler",
                &["consumer"],
                vec![
                    1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0,
                ],
            )?,
            progress_acks: metrics.counter(
                "progress_acks_total",
                "Progress acks sent for messages whose handler was still working",
                &["consumer"],
            )?,
            panics: metrics.counter(
                "handler_panics_total",
                "Handler panics caught (each panicking message is dead-lettered)",
                &["consumer"],
            )?,
        })
    }

    /// Messages counted with `outcome` for `consumer` (for tests and dashboards).
    pub fn count(&self, consumer: &str, outcome: &str) -> u64 {
        self.messages.with_label_values(&[consumer, outcome]).get()
    }

    /// Progress acks sent by `consumer`.
    pub fn progress_acks(&self, consumer: &str) -> u64 {
        self.progress_acks.with_label_values(&[consumer]).get()
    }

    /// Handler panics caught on `consumer`.
    pub fn panics(&self, consumer: &str) -> u64 {
        self.panics.with_label_values(&[consumer]).get()
    }
}

/// Runs a consumer with a one-message handler until shutdown: each batch's
/// messages are handled one after another, in the order they came.
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
    let handler = &handler;
    run_batch_consumer(js, spec, metrics, shutdown, move |batch| async move {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            outcomes.push(Outcome::from(handler(delivery).await));
        }
        outcomes
    })
    .await
}

/// Runs a consumer with a batch handler until shutdown. The handler gets
/// the batch's deliveries and returns one outcome per delivery, in the same
/// order; a missing outcome is treated as a retry. Never returns early on
/// an error.
pub async fn run_batch_consumer<H, Fut>(
    js: jetstream::Context,
    spec: ConsumerSpec,
    metrics: ConsumerMetrics,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = Vec<Outcome>>,
{
    if let Err(errors) = spec.validate() {
        // Daemons validate at start and exit 64; reaching here is a bug in
        // the caller, so say so loudly and do not consume with settings
        // that would redeliver messages in a loop.
        tracing::error!(consumer = %spec.durable, errors = ?errors, "Consumer settings cannot work; not consuming.");
        shutdown.cancelled().await;
        return;
    }
    let worker = Worker {
        js,
        spec,
        metrics,
        handler,
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        let consumer = match worker.open().await {
            Ok(consumer) => consumer,
            Err(reason) => {
                worker.count_error();
                let delay = backoff.next_delay();
                tracing::warn!(consumer = %worker.spec.durable, stream = %worker.spec.stream, retry_in = ?delay, error = %reason,
                    "Cannot open consumer, retrying.");
                shutdown.sleep(delay).await;
                continue;
            }
        };
        tracing::info!(consumer = %worker.spec.durable, stream = %worker.spec.stream, "Consuming.");
        if worker
            .consume(&consumer, &shutdown, &mut backoff)
            .await
            .is_break()
        {
            return;
        }
    }
}

/// How long an idle consumer's pull request for its first message waits
/// before it is renewed.
const IDLE_PULL: Duration = Duration::from_secs(1);

/// Consecutive failed pulls after which the consumer is re-opened.
const REOPEN_AFTER_FAILURES: u32 = 3;

struct Worker<H> {
    js: jetstream::Context,
    spec: ConsumerSpec,
    metrics: ConsumerMetrics,
    handler: H,
}

impl<H, Fut> Worker<H>
where
    H: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = Vec<Outcome>>,
{
    fn count_error(&self) {
        self.metrics
            .errors
            .with_label_values(&[&self.spec.durable])
            .inc();
    }

    async fn open(&self) -> Result<consumer::PullConsumer, String> {
        let stream = self
            .js
            .get_stream(&self.spec.stream)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .create_consumer(self.spec.consumer_config())
            .await
            .map_err(|e| e.to_string())
    }

    /// Pulls and handles batches until shutdown (`Break`) or until the
    /// consumer should be re-opened (`Continue`).
    async fn consume(
        &self,
        consumer: &consumer::PullConsumer,
        shutdown: &Shutdown,
        backoff: &mut Backoff,
    ) -> std::ops::ControlFlow<()> {
        let mut in_flight = FuturesUnordered::new();
        // The pull in progress is kept across loop turns: dropping it would
        // strand messages the server already sent until their ack wait.
        let mut pulling = None;
        let mut idle = true;
        let mut failures = 0u32;
        loop {
            let stopping = shutdown.is_cancelled();
            if pulling.is_none() && !stopping && in_flight.len() < self.spec.batch.concurrency {
                pulling = Some(Box::pin(pull(consumer, &self.spec.batch, idle)));
            }
            if pulling.is_none() && in_flight.is_empty() {
                return if stopping {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                };
            }
            tokio::select! {
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                pulled = async { pulling.as_mut().expect("guarded by the branch condition").await }, if pulling.is_some() => {
                    pulling = None;
                    match pulled {
                        Ok(messages) => {
                            failures = 0;
                            backoff.reset(Duration::from_millis(200));
                            idle = messages.is_empty();
                            if !messages.is_empty() {
                                in_flight.push(self.handle_batch(messages));
                            }
                        }
                        Err(e) => {
                            self.count_error();
                            failures += 1;
                            let delay = backoff.next_delay();
                            tracing::warn!(consumer = %self.spec.durable, error = %e, retry_in = ?delay, "Pull failed, continuing.");
                            // Errors such as a missing consumer or a lost
                            // connection come while the server is away;
                            // pause so a dead server is not spun on.
                            let _ = shutdown.sleep(delay).await;
                            if failures >= REOPEN_AFTER_FAILURES && in_flight.is_empty() {
                                return std::ops::ControlFlow::Continue(());
                            }
                        }
                    }
                }
                _ = shutdown.cancelled(), if !stopping => {}
            }
        }
    }

    /// Handles one batch: runs the handler with progress acks, then acks,
    /// naks or dead-letters each message by its outcome.
    async fn handle_batch(&self, messages: Vec<jetstream::Message>) {
        let consumer = self.spec.durable.as_str();
        self.metrics
            .batch_messages
            .with_label_values(&[consumer])
            .observe(messages.len() as f64);
        let deliveries: Vec<Delivery> = messages.iter().map(delivery_of).collect();
        let started = Instant::now();
        let outcomes = self.run_handler(&messages, deliveries).await;
        self.metrics
            .handle_seconds
            .with_label_values(&[consumer])
            .observe(started.elapsed().as_secs_f64());
        // Counted per outcome and added once per batch: a labelled counter
        // lookup per message is measurable at tens of thousands a second.
        let mut counts: Vec<(&'static str, u64)> = Vec::new();
        for (message, outcome) in messages.iter().zip(outcomes) {
            let label = self.settle(message, outcome).await;
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
        }
        for (label, n) in counts {
            self.metrics
                .messages
                .with_label_values(&[consumer, label])
                .inc_by(n);
        }
    }

    /// The handler's outcomes, one per message. A panic re-runs the batch
    /// one message at a time so only the message that panics is poison.
    async fn run_handler(
        &self,
        messages: &[jetstream::Message],
        deliveries: Vec<Delivery>,
    ) -> Vec<Outcome> {
        let count = deliveries.len();
        // The deliveries go to the handler as they are; after a panic they
        // are rebuilt from the messages, so the common path copies nothing.
        let whole = self.guarded(messages, deliveries).await;
        let mut outcomes = match whole {
            Ok(outcomes) => outcomes,
            Err(panic) if count == 1 => vec![Outcome::poison(panic)],
            Err(panic) => {
                tracing::warn!(consumer = %self.spec.durable, batch = count, %panic, "Handler panicked; handling the batch one message at a time.");
                let mut outcomes = Vec::with_capacity(count);
                for (message, delivery) in messages.iter().zip(messages.iter().map(delivery_of)) {
                    let one = std::slice::from_ref(message);
                    outcomes.push(match self.guarded(one, vec![delivery]).await {
                        Ok(mut single) if !single.is_empty() => single.swap_remove(0),
                        Ok(_) => Outcome::retry("handler returned no outcome"),
                        Err(panic) => Outcome::poison(panic),
                    });
                }
                outcomes
            }
        };
        if outcomes.len() != count {
            tracing::error!(consumer = %self.spec.durable, batch = count, outcomes = outcomes.len(),
                "Handler returned the wrong number of outcomes; retrying the messages without one.");
            outcomes.resize(count, Outcome::retry("handler returned no outcome"));
        }
        outcomes
    }

    /// Runs the handler on `deliveries`, sending progress acks for
    /// `messages` while it works; a panic becomes `Err` with its message.
    async fn guarded(
        &self,
        messages: &[jetstream::Message],
        deliveries: Vec<Delivery>,
    ) -> Result<Vec<Outcome>, String> {
        // A handler can panic while building its future or while it runs;
        // both become the same `Err`.
        let work = async {
            match std::panic::catch_unwind(AssertUnwindSafe(|| (self.handler)(deliveries))) {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            }
        };
        tokio::pin!(work);
        let every = self.spec.ack_wait / 3;
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                result = &mut work => {
                    return result.map_err(|panic| {
                        self.metrics.panics.with_label_values(&[&self.spec.durable]).inc();
                        let text = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown payload".to_owned());
                        format!("handler panicked: {text}")
                    });
                }
                _ = progress.tick() => {
                    for message in messages {
                        if let Err(e) = message.ack_with(AckKind::Progress).await {
                            tracing::warn!(consumer = %self.spec.durable, error = %e, "Progress ack failed.");
                        }
                    }
                    self.metrics
                        .progress_acks
                        .with_label_values(&[&self.spec.durable])
                        .inc_by(messages.len() as u64);
                }
            }
        }
    }

    /// Acks, naks or dead-letters one message; returns the metric label.
    async fn settle(&self, message: &jetstream::Message, outcome: Outcome) -> &'static str {
        let consumer = self.spec.durable.as_str();
        // The position is read only where it is used: parsing the reply
        // subject of every acked message is measurable on busy streams.
        match outcome {
            Outcome::Done => match message.ack().await {
                Ok(()) => "acked",
                Err(e) => {
                    // The side effect happened; the redelivery will be a
                    // duplicate that handlers are written to tolerate.
                    let (sequence, _) = position(message);
                    tracing::warn!(consumer, seq = sequence, error = %e, "Ack failed, message will be redelivered.");
                    "ack_failed"
                }
            },
            Outcome::Retry { reason, after } => {
                let (sequence, attempt) = position(message);
                if self.spec.retry.gives_up_at(attempt) {
                    let reason = format!("gave up after {attempt} attempts: {reason}");
                    return dead_letter(&self.js, &self.spec, message, sequence, &reason).await;
                }
                let delay = after.unwrap_or_else(|| self.spec.retry.delay(attempt));
                tracing::warn!(consumer, seq = sequence, attempt, retry_in = ?delay, %reason, "Handler failed, will retry.");
                if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(consumer, error = %e, "Nak failed; the server redelivers after ack_wait.");
                }
                "retried"
            }
            Outcome::Poison { reason } => {
                let (sequence, _) = position(message);
                dead_letter(&self.js, &self.spec, message, sequence, &reason).await
            }
        }
    }
}

/// Pulls one batch. An idle consumer first waits (up to [`IDLE_PULL`]) for
/// one message, then gives the rest of the batch `max_wait` to arrive; a
/// busy one asks for a whole batch at once.
async fn pull(
    consumer: &consumer::PullConsumer,
    settings: &BatchSettings,
    idle: bool,
) -> Result<Vec<jetstream::Message>, String> {
    let mut messages = Vec::with_capacity(settings.max_messages);
    let mut wanted = settings.max_messages;
    if idle {
        collect(consumer, 1, IDLE_PULL, &mut messages).await?;
        if messages.is_empty() {
            return Ok(messages);
        }
        wanted -= 1;
    }
    if wanted > 0 {
        collect(consumer, wanted, settings.max_wait, &mut messages).await?;
    }
    Ok(messages)
}

/// One pull request for up to `count` messages, waiting at most `wait`.
async fn collect(
    consumer: &consumer::PullConsumer,
    count: usize,
    wait: Duration,
    into: &mut Vec<jetstream::Message>,
) -> Result<(), String> {
    let mut batch = consumer
        .batch()
        .max_messages(count)
        .expires(wait)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    while let Some(next) = batch.next().await {
        match next {
            Ok(message) => into.push(message),
            // Messages already in hand are still handled; the error is
            // reported on the next pull if it persists.
            Err(e) if !into.is_empty() => {
                tracing::debug!(error = %e, "Pull ended early.");
                break;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

fn position(message: &jetstream::Message) -> (u64, i64) {
    match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(_) => (0, 1),
    }
}

fn delivery_of(message: &jetstream::Message) -> Delivery {
    let (stream_sequence, attempt) = position(message);
    Delivery {
        subject: message.subject.to_string(),
        payload: message.payload.clone(),
        headers: message.headers.clone(),
        stream_sequence,
        attempt,
    }
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
    fn settings_that_cannot_work_are_refused_with_every_reason() {
        let good = ConsumerSpec::new("HEALTH", "decider");
        assert_eq!(good.validate(), Ok(()));

        let mut bad = good.clone();
        bad.batch.max_messages = 0;
        bad.batch.max_wait = Duration::from_secs(60);
        bad.batch.concurrency = 0;
        bad.ack_wait = Duration::from_secs(30);
        let errors = bad.validate().expect_err("refused");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("batch size"), "{errors:?}");
        assert!(errors[1].contains("concurrency"), "{errors:?}");
        assert!(
            errors[2].contains("longer than the batch wait"),
            "{errors:?}"
        );

        let mut zero = good.clone();
        zero.batch.max_wait = Duration::ZERO;
        zero.ack_wait = Duration::ZERO;
        let errors = zero.validate().expect_err("refused");
        assert!(
            errors.iter().any(|e| e.contains("above zero")),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("at least")), "{errors:?}");
    }

    #[test]
    fn max_ack_pending_covers_every_slot_plus_one_batch() {
        let mut spec = ConsumerSpec::new("HEALTH", "recorder");
        spec.batch.max_messages = 500;
        spec.batch.concurrency = 4;
        assert_eq!(spec.max_ack_pending(), 2_500);
    }

    #[test]
    fn handler_results_map_to_outcomes() {
        assert_eq!(Outcome::from(Ok(())), Outcome::Done);
        assert_eq!(
            Outcome::from(Err(HandlerError::retry("down"))),
            Outcome::Retry {
                reason: "down".into(),
                after: None
            }
        );
        assert_eq!(
            Outcome::from(Err(HandlerError::poison("bad"))),
            Outcome::Poison {
                reason: "bad".into()
            }
        );
        assert_eq!(HandlerError::retry("x").class(), Class::Retryable);
        assert_eq!(HandlerError::poison("x").class(), Class::Permanent);
    }
}
