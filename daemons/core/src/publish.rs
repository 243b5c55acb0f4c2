//! Publishing events: one helper that sets `Nats-Msg-Id` and always awaits
//! the stream ack, so no caller can forget either.

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};

use crate::event::{Envelope, Message};

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
    let not_stored = |e: jetstream::context::PublishError| PublishError::NotStored {
        subject: subject.to_owned(),
        no_stream: e.kind() == PublishErrorKind::StreamNotFound,
        reason: e.to_string(),
    };
    // Headers first: `message_id` adds to the map, `headers` would replace it.
    let mut message = PublishMessage::build().payload(payload);
    if let Some(headers) = headers {
        message = message.headers(headers);
    }
    let message = message.message_id(message_id);
    let ack = js
        .send_publish(subject.to_owned(), message)
        .await
        .map_err(not_stored)?
        .await
        .map_err(not_stored)?;
    Ok(Stored {
        stream: ack.stream,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}
