//! Writes to the notifier's KV buckets.
//!
//! - Subscribers are created with a create (a new id never collides) and
//!   changed by compare-and-set on the revision read, retried when someone
//!   else wrote in between. The bucket keeps two revisions so that, after a
//!   change, the older one is *securely erased* (JetStream overwrites an
//!   erased message) rather than merely dropped by the history limit.
//! - [`Store::erase_subscriber`] erases every stored revision of a
//!   subscriber and leaves a purge marker, so followers forget it too.
//! - Imports publish their creates pipelined, up to [`IMPORT_IN_FLIGHT`]
//!   acks outstanding.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::HlcClock;
use beacon_contract::messages::Subscriber;
use beacon_contract::names::{KV_LEDGER, KV_NOTICES, KV_SUBSCRIBERS, KV_SUPPRESSIONS};
use beacon_runtime::publish::Publisher;
use beacon_runtime::retry::{Class, Classify};
use futures::StreamExt;

use crate::records::Suppression;

/// Creates in flight at once during an import.
pub const IMPORT_IN_FLIGHT: usize = 512;

/// Attempts of a compare-and-set change before giving up.
const CAS_ATTEMPTS: usize = 8;

/// Why a write did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote first (and retrying did not help).
    #[error("{0} changed while it was being written; try again")]
    Conflict(String),
    /// The key exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// NATS did not answer or refused.
    #[error("cannot write {what}: {reason}")]
    Unavailable {
        /// What was being written.
        what: String,
        /// What the client said.
        reason: String,
    },
}

impl Classify for StoreError {
    fn class(&self) -> Class {
        match self {
            StoreError::Conflict(_) | StoreError::Unavailable { .. } => Class::Retryable,
            StoreError::Exists(_) => Class::Permanent,
        }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// What a change to a subscriber decided.
#[derive(Debug)]
pub enum Change<T> {
    /// Store the changed record, and answer `T`.
    Write(T),
    /// Erase the subscriber (its last endpoint went), and answer `T`.
    Erase(T),
    /// Leave it as it is, and answer `T`.
    Keep(T),
}

/// The KV buckets the notifier writes.
#[derive(Debug, Clone)]
pub struct Store {
    js: jetstream::Context,
    publisher: Publisher,
    /// KV `subscribers`.
    pub subscribers: kv::Store,
    /// KV `suppressions`.
    pub suppressions: kv::Store,
    /// KV `notices`.
    pub notices: kv::Store,
    /// KV `ledger`.
    pub ledger: kv::Store,
    origin: String,
    clock: std::sync::Arc<HlcClock>,
}

/// KV key of a subscriber.
pub fn subscriber_key(page: &str, subscriber: &str) -> String {
    format!("{page}.{subscriber}")
}

impl Store {
    /// Opens the buckets (retrying until they exist); `None` at shutdown.
    pub async fn open(
        daemon: &beacon_runtime::daemon::Daemon,
        publisher: Publisher,
    ) -> Option<Store> {
        let shutdown = &daemon.process.shutdown;
        let open = |name| beacon_runtime::buckets::open(&daemon.js, name, shutdown);
        Some(Store {
            js: daemon.js.clone(),
            publisher,
            subscribers: open(KV_SUBSCRIBERS).await?,
            suppressions: open(KV_SUPPRESSIONS).await?,
            notices: open(KV_NOTICES).await?,
            ledger: open(KV_LEDGER).await?,
            origin: daemon.origin.clone(),
            clock: daemon.clock.clone(),
        })
    }

    fn encode(&self, subscriber: &Subscriber) -> Result<bytes::Bytes, StoreError> {
        Envelope::new(&self.clock, &self.origin, subscriber.clone())
            .encode()
            .map(Into::into)
            .map_err(|e| unavailable("a subscriber", e))
    }

    /// Creates a subscriber; its revision.
    pub async fn create_subscriber(&self, subscriber: &Subscriber) -> Result<u64, StoreError> {
        let key = subscriber_key(&subscriber.page, &subscriber.subscriber);
        let value = self.encode(subscriber)?;
        self.subscribers.create(&key, value).await.map_err(|e| {
            if e.kind() == kv::CreateErrorKind::AlreadyExists {
                StoreError::Exists(key.clone())
            } else {
                unavailable(&key, e)
            }
        })
    }

    /// Creates many subscribers, pipelined; each one's revision or error,
    /// in order.
    pub async fn create_many(&self, subscribers: &[Subscriber]) -> Vec<Result<u64, StoreError>> {
        let mut results = Vec::with_capacity(subscribers.len());
        for chunk in subscribers.chunks(IMPORT_IN_FLIGHT) {
            let mut pending = Vec::with_capacity(chunk.len());
            for subscriber in chunk {
                let key = subscriber_key(&subscriber.page, &subscriber.subscriber);
                let sent = async {
                    let value = self.encode(subscriber)?;
                    let mut headers = HeaderMap::new();
                    headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
                    self.publisher
                        .send_bytes(
                            &format!("{}{key}", self.subscribers.prefix),
                            &EventId::new().to_string(),
                            value,
                            Some(headers),
                        )
                        .await
                        .map_err(|e| unavailable(&key, e))
                }
                .await;
                pending.push((key, sent));
            }
            for (key, sent) in pending {
                results.push(match sent {
                    Ok(pending) => pending
                        .durable()
                        .await
                        .map(|stored| stored.sequence)
                        .map_err(|e| match e.to_string() {
                            text if text.contains("wrong last sequence") => StoreError::Exists(key),
                            _ => unavailable(&key, e),
                        }),
                    Err(e) => Err(e),
                });
            }
        }
        results
    }

    /// The stored record and its revision.
    pub async fn read_subscriber(
        &self,
        page: &str,
        subscriber: &str,
    ) -> Result<Option<(Subscriber, u64)>, StoreError> {
        let key = subscriber_key(page, subscriber);
        let entry = self
            .subscribers
            .entry(&key)
            .await
            .map_err(|e| unavailable(&key, e))?;
        Ok(match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                match Envelope::<Subscriber>::decode(&entry.value) {
                    Ok(envelope) => Some((envelope.data, entry.revision)),
                    Err(e) => {
                        tracing::warn!(key, error = %e, "Stored subscriber cannot be read; treated as absent.");
                        None
                    }
                }
            }
            _ => None,
        })
    }

    /// Reads a subscriber, lets `change` decide, and writes by
    /// compare-and-set, again from the start when someone else wrote in
    /// between. `change` gets `None` when there is no such subscriber.
    pub async fn modify<T>(
        &self,
        page: &str,
        subscriber: &str,
        mut change: impl FnMut(Option<&mut Subscriber>) -> Change<T>,
    ) -> Result<(T, Option<(Subscriber, u64)>), StoreError> {
        let key = subscriber_key(page, subscriber);
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut record, revision)) = self.read_subscriber(page, subscriber).await? else {
                let answer = match change(None) {
                    Change::Write(t) | Change::Erase(t) | Change::Keep(t) => t,
                };
                return Ok((answer, None));
            };
            match change(Some(&mut record)) {
                Change::Keep(answer) => return Ok((answer, Some((record, revision)))),
                Change::Erase(answer) => {
                    self.erase_subscriber(page, subscriber).await?;
                    return Ok((answer, None));
                }
                Change::Write(answer) => {
                    let value = self.encode(&record)?;
                    match self.subscribers.update(&key, value, revision).await {
                        Ok(new_revision) => {
                            self.erase_revision(revision).await;
                            return Ok((answer, Some((record, new_revision))));
                        }
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(unavailable(&key, e)),
                    }
                }
            }
        }
        Err(StoreError::Conflict(key))
    }

    /// Securely erases one stored message of KV `subscribers`.
    async fn erase_revision(&self, revision: u64) {
        let stream = match self
            .js
            .get_stream_no_info(format!("KV_{KV_SUBSCRIBERS}"))
            .await
        {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot open the subscribers stream to erase an old revision.");
                return;
            }
        };
        if let Err(e) = stream.delete_message(revision).await {
            tracing::debug!(revision, error = %e, "Old subscriber revision not erased (already gone?).");
        }
    }

    /// Erases every stored revision of a subscriber (overwritten on disk by
    /// the server), then purges its key so followers forget it.
    pub async fn erase_subscriber(&self, page: &str, subscriber: &str) -> Result<(), StoreError> {
        let key = subscriber_key(page, subscriber);
        let mut revisions = Vec::new();
        let mut history = self
            .subscribers
            .history(&key)
            .await
            .map_err(|e| unavailable(&key, e))?;
        while let Some(entry) = history.next().await {
            match entry {
                Ok(entry) => revisions.push(entry.revision),
                Err(e) => return Err(unavailable(&key, e)),
            }
        }
        let stream = self
            .js
            .get_stream_no_info(format!("KV_{KV_SUBSCRIBERS}"))
            .await
            .map_err(|e| unavailable(&key, e))?;
        for revision in revisions {
            if let Err(e) = stream.delete_message(revision).await {
                tracing::debug!(key, revision, error = %e, "Revision not erased (already gone?).");
            }
        }
        self.subscribers
            .purge(&key)
            .await
            .map_err(|e| unavailable(&key, e))
    }

    /// Records `{page}.{hash}` as suppressed.
    pub async fn suppress(&self, key: &str, suppression: Suppression) -> Result<(), StoreError> {
        let value = Envelope::new(&self.clock, &self.origin, suppression)
            .encode()
            .map_err(|e| unavailable(key, e))?;
        self.suppressions
            .put(key, value.into())
            .await
            .map(|_| ())
            .map_err(|e| unavailable(key, e))
    }

    /// Lifts a suppression (its owner subscribed again themselves).
    pub async fn unsuppress(&self, key: &str) -> Result<(), StoreError> {
        self.suppressions
            .purge(key)
            .await
            .map_err(|e| unavailable(key, e))
    }

    /// The bus publisher (pipelined, awaited acks).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}

/// How long one KV operation may take before it counts as failed.
pub const KV_TIMEOUT: Duration = Duration::from_secs(5);
