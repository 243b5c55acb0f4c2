//! Reading what a stream already holds, for state that is a fold over
//! events (incidents, maintenance windows) and for writers that must know
//! a subject's latest message before they append to it.
//!
//! - [`last`]: the latest message on one subject, with its sequence and
//!   `Nats-Msg-Id`: what a conditional publish
//!   ([`crate::publish::publish_expecting`]) names, and how a retry finds
//!   out whether its earlier attempt landed.
//! - [`read`]: every message on a subject filter, up to now.
//! - [`follow`]: every message on a subject filter, then every new one, in
//!   stream order, surviving server restarts; like
//!   [`crate::buckets::follow`] it says when it has caught up.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::retry::{Class, Classify};
use crate::shutdown::{Backoff, Shutdown};

/// One stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its subject.
    pub subject: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// Its `Nats-Msg-Id`, if it has one.
    pub message_id: Option<String>,
    /// Its payload.
    pub payload: Bytes,
}

/// Why a stream could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read {what}: {reason}")]
pub struct HistoryError {
    /// What was being read.
    pub what: String,
    /// What the client said.
    pub reason: String,
}

impl Classify for HistoryError {
    /// Reading fails when the server is away or slow; the same read works
    /// later.
    fn class(&self) -> Class {
        Class::Retryable
    }
}

fn error(what: impl Into<String>, reason: impl std::fmt::Display) -> HistoryError {
    HistoryError {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// The latest message on `subject` in `stream`; `None` when it has none.
pub async fn last(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Option<Stored>, HistoryError> {
    let handle = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| error(format!("stream {stream}"), e))?;
    match handle.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Ok(Some(Stored {
            message_id: message
                .headers
                .get("Nats-Msg-Id")
                .map(|value| value.to_string()),
            subject: message.subject.to_string(),
            sequence: message.sequence,
            payload: message.payload,
        })),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(error(format!("the latest message on {subject}"), e)),
    }
}

/// How long [`read`] waits for the next message before it gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Every message on `filter` in `stream`, in stream order, up to the moment
/// of the call.
///
/// Each read is an ordered (ephemeral) consumer, deleted when the read is
/// done: left to its inactivity threshold, a few hundred reads a second
/// (an API answering every write from the stream) would keep thousands of
/// consumers alive until the server refuses more.
pub async fn read(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> Result<Vec<Stored>, HistoryError> {
    let what = || format!("{filter} in {stream}");
    let handle = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| error(what(), e))?;
    let mut consumer = handle
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_owned(),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| error(what(), e))?;
    let name = consumer.cached_info().name.clone();
    let result = read_all(&mut consumer, &what).await;
    // Best effort: the server's inactivity threshold for ordered consumers
    // removes it otherwise.
    if let Err(e) = handle.delete_consumer(&name).await {
        tracing::debug!(stream, consumer = %name, error = %e, "could not delete a read's consumer");
    }
    result
}

async fn read_all(
    consumer: &mut jetstream::consumer::Consumer<consumer::pull::OrderedConfig>,
    what: &(dyn Fn() -> String + Sync),
) -> Result<Vec<Stored>, HistoryError> {
    let pending = consumer
        .info()
        .await
        .map_err(|e| error(what(), e))?
        .num_pending;
    let mut stored = Vec::with_capacity(pending as usize);
    if pending == 0 {
        return Ok(stored);
    }
    let mut messages = consumer
        .clone()
        .messages()
        .await
        .map_err(|e| error(what(), e))?;
    loop {
        let next = tokio::time::timeout(READ_TIMEOUT, messages.next())
            .await
            .map_err(|_| error(what(), "timed out"))?;
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(error(what(), e)),
            None => return Err(error(what(), "the consumer ended")),
        };
        let info = message.info().map_err(|e| error(what(), e))?;
        let left = info.pending;
        stored.push(stored_of(&message, info.stream_sequence));
        if left == 0 {
            return Ok(stored);
        }
    }
}

fn stored_of(message: &jetstream::Message, sequence: u64) -> Stored {
    Stored {
        subject: message.subject.to_string(),
        sequence,
        message_id: message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Nats-Msg-Id"))
            .map(|value| value.to_string()),
        payload: message.payload.clone(),
    }
}

/// One thing [`follow`] reports.
#[derive(Debug)]
pub enum Event {
    /// A message, in stream order.
    Message(Stored),
    /// Everything stored when the follow began has been delivered (sent
    /// once).
    CaughtUp,
}

/// Follows `filter` in `stream` until shutdown, in a tracked task: every
/// stored message, then every new one. After an error it resumes after the
/// last message it delivered, so nothing is delivered twice or skipped.
pub fn follow(
    js: jetstream::Context,
    stream: &str,
    filter: &str,
    shutdown: &Shutdown,
) -> mpsc::Receiver<Event> {
    let (sender, receiver) = mpsc::channel(1024);
    let task_shutdown = shutdown.clone();
    let (stream, filter) = (stream.to_owned(), filter.to_owned());
    shutdown.spawn(async move { run(js, stream, filter, task_shutdown, sender).await });
    receiver
}

async fn run(
    js: jetstream::Context,
    stream: String,
    filter: String,
    shutdown: Shutdown,
    sender: mpsc::Sender<Event>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut next_sequence = 1u64;
    let mut caught_up = false;
    while !shutdown.is_cancelled() {
        let opened = async {
            let handle = js
                .get_stream_no_info(&stream)
                .await
                .map_err(|e| e.to_string())?;
            let mut consumer = handle
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: filter.clone(),
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: next_sequence,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let pending = consumer
                .info()
                .await
                .map_err(|e| e.to_string())?
                .num_pending;
            let messages = consumer.messages().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((pending, messages))
        };
        let (pending, mut messages) = match opened.await {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(%stream, %filter, error = %e, "Cannot follow stream, retrying.");
                shutdown.sleep(backoff.next_delay()).await;
                continue;
            }
        };
        if !caught_up && pending == 0 {
            caught_up = true;
            if sender.send(Event::CaughtUp).await.is_err() {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    let Ok(info) = message.info() else { continue };
                    let (sequence, left) = (info.stream_sequence, info.pending);
                    next_sequence = sequence + 1;
                    if sender
                        .send(Event::Message(stored_of(&message, sequence)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if !caught_up && left == 0 {
                        caught_up = true;
                        if sender.send(Event::CaughtUp).await.is_err() {
                            return;
                        }
                    }
                    backoff.reset(Duration::from_millis(200));
                }
                Some(Err(e)) => {
                    tracing::warn!(%stream, %filter, error = %e, "Stream follow error, resuming.");
                    break;
                }
                None => break,
            }
        }
        shutdown.sleep(backoff.next_delay()).await;
    }
}
