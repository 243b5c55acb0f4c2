//! Publishing events. Every path sets `Nats-Msg-Id` and ends in an awaited
//! stream ack; there is no fire-and-forget path.
//!
//! - [`publish`] / [`publish_bytes`]: one event, one awaited ack. For
//!   events that are rare or must be durable before the next step.
//! - [`Publisher`]: pipelined. Up to K acks are in flight at once (the
//!   client's own ack-permit backpressure); each [`Publisher::send`] returns
//!   a [`Pending`] that resolves when that message is durable or has
//!   failed. A failed message is retried by the caller with the same
//!   message id, so a publish that landed but whose ack was lost is
//!   deduplicated by the server.
//! - [`publish_expecting`]: one event on the condition that its subject's
//!   latest message is still the one the writer knows. A writer that lost
//!   its place (a deposed leader, a stale API replica) is refused by the
//!   server instead of appending a duplicate or out-of-order event.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    context::{PublishAckFuture, PublishErrorKind},
    message::PublishMessage,
};

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};

use crate::retry::{Class, Classify};
use beacon_contract::event::{Envelope, Message};

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The envelope could not be serialized (a bug).
    #[error("cannot encode {kind} event: {reason}")]
    Encode {
        /// Message kind.
        kind: &'static str,
        /// What serde said.
        reason: String,
    },
    /// The server did not store it (no stream, timeout, disconnected).
    /// Retryable: the same event id makes the retry a no-op if it did land.
    #[error("publish to {subject} was not acknowledged: {reason}")]
    NotStored {
        /// Subject.
        subject: String,
        /// What the client said.
        reason: String,
        /// Whether the server said no stream takes this subject.
        no_stream: bool,
    },
    /// A conditional publish was refused: the subject's latest message is
    /// not the one the writer expected.
    #[error("publish to {subject} refused: its latest message is not sequence {expected}")]
    WrongLastSequence {
        /// Subject.
        subject: String,
        /// The sequence the writer expected to be the subject's latest.
        expected: u64,
    },
}

impl PublishError {
    /// What kind of failure this is.
    pub fn kind(&self) -> PublishFailure {
        match self {
            PublishError::Encode { .. } => PublishFailure::Encode,
            PublishError::NotStored {
                no_stream: true, ..
            } => PublishFailure::NoStream,
            PublishError::NotStored { .. } => PublishFailure::NotAcknowledged,
            PublishError::WrongLastSequence { .. } => PublishFailure::WrongLastSequence,
        }
    }
}

/// The kinds of [`PublishError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishFailure {
    /// The message could not be serialized.
    Encode,
    /// No stream takes the subject (the topology is not applied yet).
    NoStream,
    /// No ack: timeout, disconnection, a full stream.
    NotAcknowledged,
    /// Someone else wrote to the subject first.
    WrongLastSequence,
}

impl Classify for PublishError {
    fn class(&self) -> Class {
        match self.kind() {
            // The same conditional publish will be refused again; the
            // writer must re-read what is there.
            PublishFailure::Encode | PublishFailure::WrongLastSequence => Class::Permanent,
            // A missing stream is an operator's step away (`beaconctl bus
            // ensure`), not a fault of the message.
            PublishFailure::NoStream | PublishFailure::NotAcknowledged => Class::Retryable,
        }
    }
}

/// What the stream said about a stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Stream that stored it.
    pub stream: String,
    /// Sequence in that stream.
    pub sequence: u64,
    /// True when the server had already seen this event id (a retry).
    pub duplicate: bool,
}

/// Publishes `envelope` on `subject` with `Nats-Msg-Id` set to the event id
/// and waits for the stream ack.
pub async fn publish<T: Message>(
    js: &jetstream::Context,
    subject: &str,
    envelope: &Envelope<T>,
) -> Result<Stored, PublishError> {
    let payload = envelope.encode().map_err(|e| PublishError::Encode {
        kind: T::KIND,
        reason: e.to_string(),
    })?;
    publish_bytes(js, subject, &envelope.id.to_string(), payload.into(), None).await
}

/// Publishes `envelope` on `subject` only if the subject's latest message
/// in its stream is sequence `last_subject_sequence` (0: the subject has no
/// message yet), and waits for the stream ack. The event id is the
/// `Nats-Msg-Id`, so a retry of a publish that landed is a duplicate, not a
/// refusal, within the dedup window.
pub async fn publish_expecting<T: Message>(
    js: &jetstream::Context,
    subject: &str,
    envelope: &Envelope<T>,
    last_subject_sequence: u64,
) -> Result<Stored, PublishError> {
    let payload = envelope.encode().map_err(|e| PublishError::Encode {
        kind: T::KIND,
        reason: e.to_string(),
    })?;
    let message = PublishMessage::build()
        .payload(payload.into())
        .expected_last_subject_sequence(last_subject_sequence)
        .message_id(envelope.id.to_string());
    let ack = js
        .send_publish(subject.to_owned(), message)
        .await
        .map_err(|e| not_stored(subject, e))?;
    match ack.await {
        Ok(ack) => Ok(Stored {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        }),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
            Err(PublishError::WrongLastSequence {
                subject: subject.to_owned(),
                expected: last_subject_sequence,
            })
        }
        Err(e) => Err(not_stored(subject, e)),
    }
}

/// Publishes raw bytes with an explicit message id and optional headers, and
/// waits for the stream ack. For dead letters and benchmarks; events go
/// through [`publish`].
pub async fn publish_bytes(
    js: &jetstream::Context,
    subject: &str,
    message_id: &str,
    payload: bytes::Bytes,
    headers: Option<async_nats::HeaderMap>,
) -> Result<Stored, PublishError> {
    send(js, subject, message_id, payload, headers)
        .await?
        .durable()
        .await
}

fn not_stored(subject: &str, e: jetstream::context::PublishError) -> PublishError {
    PublishError::NotStored {
        subject: subject.to_owned(),
        no_stream: e.kind() == PublishErrorKind::StreamNotFound,
        reason: e.to_string(),
    }
}

/// Sends one message and returns its pending ack without awaiting it.
async fn send(
    js: &jetstream::Context,
    subject: &str,
    message_id: &str,
    payload: bytes::Bytes,
    headers: Option<async_nats::HeaderMap>,
) -> Result<Pending, PublishError> {
    // Headers first: `message_id` adds to the map, `headers` would replace it.
    let mut message = PublishMessage::build().payload(payload);
    if let Some(headers) = headers {
        message = message.headers(headers);
    }
    let message = message.message_id(message_id);
    let ack = js
        .send_publish(subject.to_owned(), message)
        .await
        .map_err(|e| not_stored(subject, e))?;
    Ok(Pending {
        subject: subject.to_owned(),
        ack,
    })
}

/// A sent message whose stream ack has not been read yet. Await
/// [`Pending::durable`] to learn whether it is stored; until then it holds
/// one of its [`Publisher`]'s in-flight places.
#[derive(Debug)]
#[must_use = "a message is only known to be stored once its ack is awaited"]
pub struct Pending {
    subject: String,
    ack: PublishAckFuture,
}

impl Pending {
    /// Waits for the stream ack: `Ok` once the message is durable.
    pub async fn durable(self) -> Result<Stored, PublishError> {
        let subject = self.subject;
        let ack = self.ack.await.map_err(|e| not_stored(&subject, e))?;
        Ok(Stored {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

/// Default number of stream acks a [`Publisher`] keeps in flight.
pub const DEFAULT_IN_FLIGHT: usize = 1024;

/// A pipelined publisher: keeps up to `in_flight` stream acks outstanding,
/// so one connection publishes at the bus's async rate instead of one round
/// trip per message. [`Publisher::send`] waits while all places are taken.
///
/// Each [`Pending`] holds its place until it is awaited or dropped, so a
/// caller that sends more than `in_flight` messages must read acks as it
/// goes ([`Publisher::publish_all`] does).
#[derive(Debug, Clone)]
pub struct Publisher {
    js: jetstream::Context,
    limit: usize,
}

impl Publisher {
    /// A publisher on `client` with at most `in_flight` acks outstanding
    /// (at least one), each waited for at most `ack_timeout`.
    pub fn new(client: async_nats::Client, in_flight: usize, ack_timeout: Duration) -> Self {
        let limit = in_flight.max(1);
        let js = jetstream::ContextBuilder::new()
            .timeout(ack_timeout)
            .max_ack_inflight(limit)
            .backpressure_on_inflight(true)
            .build(client);
        Self { js, limit }
    }

    /// Sends `envelope` on `subject` with its event id as `Nats-Msg-Id`;
    /// waits only for an in-flight place, not for the ack.
    pub async fn send<T: Message>(
        &self,
        subject: &str,
        envelope: &Envelope<T>,
    ) -> Result<Pending, PublishError> {
        let payload = envelope.encode().map_err(|e| PublishError::Encode {
            kind: T::KIND,
            reason: e.to_string(),
        })?;
        send(
            &self.js,
            subject,
            &envelope.id.to_string(),
            payload.into(),
            None,
        )
        .await
    }

    /// Most acks this publisher keeps in flight.
    pub fn in_flight(&self) -> usize {
        self.limit
    }

    /// Publishes every `(subject, envelope)` and returns each one's result,
    /// in input order, once all are settled. Keeps up to
    /// [`Publisher::in_flight`] acks outstanding; a failed one can be sent
    /// again as is (same id, deduplicated).
    pub async fn publish_all<'a, T, I>(&self, items: I) -> Vec<Result<Stored, PublishError>>
    where
        T: Message + 'a,
        I: IntoIterator<Item = (&'a str, &'a Envelope<T>)>,
    {
        let encoded = items.into_iter().map(|(subject, envelope)| {
            let payload = envelope.encode().map_err(|e| PublishError::Encode {
                kind: T::KIND,
                reason: e.to_string(),
            })?;
            Ok((
                subject,
                envelope.id.to_string(),
                bytes::Bytes::from(payload),
            ))
        });
        self.pipeline(encoded).await
    }

    /// [`Publisher::publish_all`] for raw `(subject, message id, payload)`.
    pub async fn publish_all_bytes<'a, I>(&self, items: I) -> Vec<Result<Stored, PublishError>>
    where
        I: IntoIterator<Item = (&'a str, String, bytes::Bytes)>,
    {
        self.pipeline(items.into_iter().map(Ok)).await
    }

    async fn pipeline<'a, I>(&self, items: I) -> Vec<Result<Stored, PublishError>>
    where
        I: Iterator<Item = Result<(&'a str, String, bytes::Bytes), PublishError>>,
    {
        let mut results = Vec::new();
        let mut acks = FuturesOrdered::new();
        for item in items {
            // Never wait for a place while holding every place: read acks
            // first.
            while acks.len() >= self.limit {
                if let Some(result) = acks.next().await {
                    results.push(result);
                }
            }
            let sent = match item {
                Ok((subject, id, payload)) => {
                    // The places are shared by every caller of this
                    // publisher: while waiting for one, keep reading this
                    // call's own acks, or callers that each hold places
                    // and wait for another would wait for each other.
                    let sending = send(&self.js, subject, &id, payload, None);
                    tokio::pin!(sending);
                    loop {
                        tokio::select! {
                            biased;
                            sent = &mut sending => break sent,
                            Some(result) = acks.next(), if !acks.is_empty() => results.push(result),
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(pending) => acks.push_back(pending.durable().boxed()),
                Err(e) => acks.push_back(futures::future::ready(Err(e)).boxed()),
            }
        }
        while let Some(result) = acks.next().await {
            results.push(result);
        }
        results
    }

    /// Sends raw bytes with an explicit message id and optional headers.
    pub async fn send_bytes(
        &self,
        subject: &str,
        message_id: &str,
        payload: bytes::Bytes,
        headers: Option<async_nats::HeaderMap>,
    ) -> Result<Pending, PublishError> {
        send(&self.js, subject, message_id, payload, headers).await
    }
}
