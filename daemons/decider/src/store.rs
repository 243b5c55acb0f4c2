//! Where a component's status is stored, and how a change is stored
//! without being lost or doubled.
//!
//! A change is three writes, in this order:
//!
//! 1. the record in KV `status`, by compare-and-set on the revision the
//!    decider read: the commit point;
//! 2. the STATUS event, on the condition that the component's subject still
//!    ends with the event the decider knows (`Nats-Expected-Last-Subject-
//!    Sequence`), so a deposed leader's late event is refused by the server;
//! 3. the incident proposal, if the change makes one, on the condition that
//!    the incident's subject is empty.
//!
//! A failure after step 1 leaves a record whose event is missing. Loading a
//! component ([`Store::load`]) therefore compares the record's change id
//! with the id of the subject's latest STATUS event and publishes the
//! record's event (and its proposal) when they differ: a retry, a restart
//! or the next leader always finishes steps 2 and 3. A retry whose earlier
//! attempt did land recognises its own id at each step.

use async_nats::jetstream::{self, kv};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{
    AffectedComponent, ComponentStatus, Impact, IncidentAction, IncidentEvent, IncidentLifecycle,
    IncidentState, IncidentUpdate, StatusRecord,
};
use beacon_contract::names::{
    incident_subject, status_key, status_subject, STREAM_INCIDENTS, STREAM_STATUS,
};
use beacon_page::config::Component;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::history;
use beacon_runtime::publish::{publish_expecting, PublishError, PublishFailure};
use beacon_runtime::retry::{Class, Classify};
use ulid::Ulid;

use crate::component::Stored;

/// Who the decider's own events name as their actor.
pub const ACTOR: &str = "decider";

/// A record whose STATUS event is missing is republished only while it is
/// younger than this; an older one's event has aged out of the stream, not
/// gone missing.
const RECONCILE_WITHIN_MS: u64 = 7 * 24 * 3600 * 1000;

/// Why storing failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// KV or the stream did not answer, or refused for a passing reason.
    #[error("{0}")]
    Unavailable(String),
    /// Someone else wrote first (another leader, or a stale base): reload.
    #[error("{0}")]
    Conflict(String),
    /// The record cannot be encoded (a bug).
    #[error("{0}")]
    Encode(String),
}

impl Classify for StoreError {
    fn class(&self) -> Class {
        match self {
            StoreError::Unavailable(_) | StoreError::Conflict(_) => Class::Retryable,
            StoreError::Encode(_) => Class::Permanent,
        }
    }
}

/// What a load found, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The record and the stream agree.
    None,
    /// The record's STATUS event was missing and has been published.
    Republished,
}

/// KV `status` and the STATUS and INCIDENTS streams.
#[derive(Clone)]
pub struct Store {
    daemon: Daemon,
    status: kv::Store,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

impl Store {
    /// A store over the `status` bucket.
    pub fn new(daemon: Daemon, status: kv::Store) -> Self {
        Self { daemon, status }
    }

    fn js(&self) -> &jetstream::Context {
        &self.daemon.js
    }

    /// Moves `key`'s revision by compare-and-set on the revision just read:
    /// a record is written again unchanged, a key without one gets a delete
    /// marker (so a deposed leader's first write, which expects no message
    /// or the marker it saw, fails too). A write that lands in between is
    /// read again.
    async fn claim(&self, key: &str) -> Result<(), StoreError> {
        for _ in 0..5 {
            let entry = self
                .status
                .entry(key)
                .await
                .map_err(|e| unavailable("cannot read KV status to claim it", e))?;
            match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    match self.status.update(key, entry.value, entry.revision).await {
                        Ok(_) => return Ok(()),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(unavailable("cannot claim KV status", e)),
                    }
                }
                // A marker, or nothing yet (revision 0: no message at all).
                other => {
                    let seen = other.map_or(0, |entry| entry.revision);
                    if self
                        .status
                        .delete_expect_revision(key, Some(seen))
                        .await
                        .is_ok()
                    {
                        return Ok(());
                    }
                    // Someone wrote it meanwhile (or the bus failed): read
                    // again and claim what is there now.
                    continue;
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "{key} kept changing while this term claimed it"
        )))
    }

    /// Reads what is stored for a component and finishes a change whose
    /// event or proposal is missing. With `claim` (the first load of a
    /// leadership term), the record is first written again as it is, so
    /// its revision moves: every compare-and-set a deposed leader prepared
    /// against the revision it knew now fails, and nothing it decided after
    /// this term began can be stored or announced.
    pub async fn load(
        &self,
        page: &str,
        component: &Component,
        claim: bool,
    ) -> Result<(Stored, Repair), StoreError> {
        let key = status_key(page, &component.id);
        if claim {
            self.claim(&key).await?;
        }
        let entry = self
            .status
            .entry(&key)
            .await
            .map_err(|e| unavailable("cannot read KV status", e))?;
        let (record, revision) = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                match Envelope::<StatusRecord>::decode(&entry.value) {
                    Ok(envelope) => (Some(envelope.data), Some(entry.revision)),
                    Err(e) => {
                        tracing::warn!(page, component = %component.id, error = %e, "Stored status is unreadable; it will be overwritten.");
                        (None, Some(entry.revision))
                    }
                }
            }
            // A deleted key keeps its marker's revision: the next write is
            // conditional on it, as on a record's.
            Some(entry) => (None, Some(entry.revision)),
            None => (None, None),
        };
        let subject = status_subject(page, &component.id);
        let last = history::last(self.js(), STREAM_STATUS, &subject)
            .await
            .map_err(|e| unavailable("cannot read STATUS", e))?;
        let mut stored = Stored {
            record,
            revision,
            status_sequence: last.as_ref().map_or(0, |l| l.sequence),
        };
        let Some(record) = stored.record.clone() else {
            return Ok((stored, Repair::None));
        };
        if record.since_ms + RECONCILE_WITHIN_MS < wall_clock_ms() {
            return Ok((stored, Repair::None));
        }
        let change = record.change.to_string();
        let published = last
            .as_ref()
            .is_some_and(|l| l.message_id.as_deref() == Some(change.as_str()));
        let mut repair = Repair::None;
        if !published {
            tracing::warn!(page, component = %component.id, change = %record.change,
                "The stored status change has no STATUS event; publishing it now.");
            stored.status_sequence = self.publish_change(&record, stored.status_sequence).await?;
            repair = Repair::Republished;
        }
        // The proposal is the last step of a change, so it may be missing
        // where the STATUS event is not (a crash between the two): make
        // sure of it either way. Proposing is conditional on the incident's
        // subject being empty, so an existing proposal is left as it is.
        if record.proposal.is_some() {
            self.propose(&record, component).await?;
        }
        Ok((stored, repair))
    }

    /// Stores `record` over `stored`: the KV write, then (for a `change`)
    /// the STATUS event and the proposal. Returns what is stored after.
    pub async fn commit(
        &self,
        record: &StatusRecord,
        component: &Component,
        stored: &Stored,
        change: bool,
    ) -> Result<Stored, StoreError> {
        let revision = self.write_record(record, stored.revision).await?;
        let mut after = Stored {
            record: Some(record.clone()),
            revision: Some(revision),
            status_sequence: stored.status_sequence,
        };
        if change {
            after.status_sequence = self.publish_change(record, stored.status_sequence).await?;
            if record.proposal.is_some() {
                self.propose(record, component).await?;
            }
        }
        Ok(after)
    }

    async fn write_record(
        &self,
        record: &StatusRecord,
        revision: Option<u64>,
    ) -> Result<u64, StoreError> {
        let key = status_key(&record.page, &record.component);
        let envelope = Envelope::with_id(
            EventId::new(),
            self.daemon.clock.now(),
            &self.daemon.origin,
            record.clone(),
        );
        let bytes = envelope
            .encode()
            .map_err(|e| StoreError::Encode(format!("cannot encode the status record: {e}")))?;
        // Always conditional: on the revision read, or on there being no
        // message at all (0). An unconditional `create` would also succeed
        // over a delete marker a new term wrote to claim the key.
        let written = self
            .status
            .update(&key, bytes.into(), revision.unwrap_or(0))
            .await
            .map_err(|e| e.to_string());
        match written {
            Ok(revision) => Ok(revision),
            Err(reason) => {
                // The write may have landed and only its answer been lost:
                // then the key holds exactly this record.
                let entry = self.status.entry(&key).await.map_err(|e| {
                    unavailable(&format!("status write failed ({reason}); re-read"), e)
                })?;
                if let Some(entry) = entry {
                    if let Ok(stored) = Envelope::<StatusRecord>::decode(&entry.value) {
                        if &stored.data == record {
                            return Ok(entry.revision);
                        }
                    }
                }
                Err(StoreError::Conflict(format!(
                    "status of {key} changed underneath: {reason}"
                )))
            }
        }
    }

    /// Publishes the record's STATUS event after `last_sequence`; returns
    /// its sequence.
    async fn publish_change(
        &self,
        record: &StatusRecord,
        last_sequence: u64,
    ) -> Result<u64, StoreError> {
        let subject = status_subject(&record.page, &record.component);
        let event = Envelope::with_id(
            record.change,
            self.daemon.clock.now(),
            &self.daemon.origin,
            record.change_event(),
        );
        match publish_expecting(self.js(), &subject, &event, last_sequence).await {
            Ok(stored) => Ok(stored.sequence),
            Err(e) => {
                self.recognise(&subject, STREAM_STATUS, record.change, e)
                    .await
            }
        }
    }

    /// A refused or unanswered conditional publish: fine if the subject's
    /// latest message is the one we meant to publish (an earlier attempt
    /// landed), a conflict if it is someone else's.
    async fn recognise(
        &self,
        subject: &str,
        stream: &str,
        id: EventId,
        error: PublishError,
    ) -> Result<u64, StoreError> {
        let last = history::last(self.js(), stream, subject)
            .await
            .map_err(|e| unavailable(&format!("publish failed ({error}); re-read"), e))?;
        match last {
            Some(last) if last.message_id.as_deref() == Some(id.to_string().as_str()) => {
                Ok(last.sequence)
            }
            _ if error.kind() == PublishFailure::WrongLastSequence => {
                Err(StoreError::Conflict(error.to_string()))
            }
            _ if error.kind() == PublishFailure::Encode => {
                Err(StoreError::Encode(error.to_string()))
            }
            _ => Err(StoreError::Unavailable(error.to_string())),
        }
    }

    /// Publishes the incident the record proposes, unless it exists.
    async fn propose(
        &self,
        record: &StatusRecord,
        component: &Component,
    ) -> Result<(), StoreError> {
        let Some(id) = &record.proposal else {
            return Ok(());
        };
        let event = proposal(record, component, id);
        let envelope = Envelope::with_id(
            proposal_event_id(record.change),
            self.daemon.clock.now(),
            &self.daemon.origin,
            event,
        );
        let subject = incident_subject(&record.page, id);
        match publish_expecting(self.js(), &subject, &envelope, 0).await {
            Ok(_) => Ok(()),
            // The incident's subject is not empty: the proposal is there.
            Err(e) if e.kind() == PublishFailure::WrongLastSequence => Ok(()),
            Err(e) => self
                .recognise(&subject, STREAM_INCIDENTS, envelope.id, e)
                .await
                .map(|_| ()),
        }
    }
}

impl Store {
    /// Brings proposal `id` (still unconfirmed, at `revision`) up to the
    /// change in `record`: the title, impact and component status it would
    /// have been proposed with now. Conditional on the revision, so an
    /// operator's confirmation or edit that came first wins; the same
    /// change revises it once (its event id comes from the change).
    pub async fn revise_proposal(
        &self,
        record: &StatusRecord,
        component: &Component,
        id: &str,
        revision: u64,
    ) -> Result<(), StoreError> {
        let proposed = proposal(record, component, id);
        let mut event = IncidentEvent::new(
            &record.page,
            id,
            IncidentAction::Edited,
            ACTOR,
            record.since_ms,
        );
        event.title = proposed.title;
        event.impact = proposed.impact;
        event.components = proposed.components;
        event.evidence = proposed.evidence;
        let envelope = Envelope::with_id(
            revision_event_id(record.change),
            self.daemon.clock.now(),
            &self.daemon.origin,
            event,
        );
        let subject = incident_subject(&record.page, id);
        match publish_expecting(self.js(), &subject, &envelope, revision).await {
            Ok(_) => Ok(()),
            Err(e) => match self
                .recognise(&subject, STREAM_INCIDENTS, envelope.id, e)
                .await
            {
                Ok(_) => Ok(()),
                // Someone wrote it since: their word stands.
                Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            },
        }
    }
}

/// The event id of the revision of a proposal made by change `change`.
fn revision_event_id(change: EventId) -> EventId {
    EventId(Ulid::from_parts(
        change.0.timestamp_ms(),
        change.0.random().rotate_left(41),
    ))
}

/// The event id of the proposal made by change `change`.
fn proposal_event_id(change: EventId) -> EventId {
    EventId(Ulid::from_parts(
        change.0.timestamp_ms(),
        change.0.random().rotate_left(17),
    ))
}

/// The incident a change proposes: titled after the component and its
/// status, with the change's evidence. Deterministic in its inputs, so a
/// republished proposal is the same incident.
pub fn proposal(record: &StatusRecord, component: &Component, id: &str) -> IncidentEvent {
    let impact = match record.status {
        ComponentStatus::MajorOutage => Impact::Major,
        _ => Impact::Minor,
    };
    let affected = vec![AffectedComponent {
        component: record.component.clone(),
        status: record.status,
    }];
    let mut event = IncidentEvent::new(
        &record.page,
        id,
        IncidentAction::Proposed,
        ACTOR,
        record.since_ms,
    );
    event.lifecycle = Some(IncidentLifecycle::Proposed);
    event.title = Some(format!(
        "{}: {}",
        component.name,
        record.status.label().to_lowercase()
    ));
    event.impact = Some(impact);
    event.state = Some(IncidentState::Investigating);
    event.components = Some(affected.clone());
    event.update = Some(IncidentUpdate {
        id: format!("{id}-0"),
        state: IncidentState::Investigating,
        body: format!("Automated checks: {}.", record.evidence.rule),
        components: affected,
        at_ms: record.since_ms,
        actor: ACTOR.to_owned(),
    });
    event.evidence = Some(record.evidence.clone());
    event
}
