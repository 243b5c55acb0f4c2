//! An incident as a deterministic fold over its events.
//!
//! Every field an event may set (lifecycle, title, impact, state, affected
//! components, postmortem) is a last-writer-wins register ordered by the
//! event's HLC, ties broken by event id; timeline updates form a set keyed by
//! update id (the same id written twice keeps the later write). The fold is
//! therefore commutative and idempotent: the same events, in any order and
//! with duplicates, give the same [`Incident`]. That is what lets two
//! regions accept writes during a partition and converge afterwards.
//!
//! The rules for which change may follow which ([`Incident::check`]) are
//! here too, so the decider's API and any other writer refuse the same
//! things with the same words.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{Envelope, EventId};
use crate::hlc::Hlc;
use crate::messages::{
    AffectedComponent, ComponentStatus, Evidence, Impact, IncidentAction, IncidentEvent,
    IncidentLifecycle, IncidentState, IncidentUpdate,
};

/// A register's write: its value and the order key of the event that wrote it.
#[derive(Debug, Clone, PartialEq)]
struct Register<T> {
    value: T,
    at: (Hlc, EventId),
}

impl<T: Clone> Register<T> {
    fn offer(slot: &mut Option<Register<T>>, value: Option<&T>, at: (Hlc, EventId)) {
        let Some(value) = value else { return };
        if slot.as_ref().is_none_or(|current| at > current.at) {
            *slot = Some(Register {
                value: value.clone(),
                at,
            });
        }
    }
}

/// The folded registers, before they are read out as an [`Incident`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Registers {
    lifecycle: Option<Register<IncidentLifecycle>>,
    title: Option<Register<String>>,
    impact: Option<Register<Impact>>,
    state: Option<Register<IncidentState>>,
    components: Option<Register<Vec<AffectedComponent>>>,
    postmortem: Option<Register<String>>,
    evidence: Option<Register<Evidence>>,
    reason: Option<Register<String>>,
    updates: BTreeMap<String, Register<IncidentUpdate>>,
    created: Option<(Hlc, EventId, u64, String)>,
    last: Option<(Hlc, EventId, u64)>,
}

/// An incident: what its events say, folded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Page id.
    pub page: String,
    /// Incident id.
    pub id: String,
    /// Draft, open or dismissed.
    pub lifecycle: IncidentLifecycle,
    /// Title.
    pub title: String,
    /// Impact.
    pub impact: Impact,
    /// State.
    pub state: IncidentState,
    /// Affected components and the status each shows.
    pub components: Vec<AffectedComponent>,
    /// The timeline, oldest first.
    pub updates: Vec<IncidentUpdate>,
    /// Postmortem, once published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<String>,
    /// For a proposed incident: the evidence behind the proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// For a dismissed incident: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dismissal_reason: Option<String>,
    /// Who opened or proposed it.
    pub created_by: String,
    /// When its first event was written (Unix milliseconds).
    pub created_at_ms: u64,
    /// When its latest event was written.
    pub updated_at_ms: u64,
    /// When it was resolved, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<u64>,
    /// Stream sequence of its latest event on its subject: the revision an
    /// update names so a stale one is refused. 0 when folded without
    /// sequences.
    pub revision: u64,
    /// Timestamp of its newest event: a change of it is stamped after this
    /// ([`crate::hlc::HlcClock::after`]). Not part of what is shown.
    #[serde(skip)]
    #[schemars(skip)]
    pub latest: Option<Hlc>,
}

impl Incident {
    /// Folds events into an incident; `None` when there are none. Order and
    /// duplicates do not matter. `revision` is the highest stream sequence
    /// seen, which the caller knows and the events do not.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = &'a Envelope<IncidentEvent>>,
        revision: u64,
    ) -> Option<Incident> {
        let mut registers = Registers::default();
        let mut ids: Option<(String, String)> = None;
        for envelope in events {
            let event = &envelope.data;
            ids.get_or_insert_with(|| (event.page.clone(), event.incident.clone()));
            let at = (envelope.hlc, envelope.id);
            Register::offer(&mut registers.lifecycle, event.lifecycle.as_ref(), at);
            Register::offer(&mut registers.title, event.title.as_ref(), at);
            Register::offer(&mut registers.impact, event.impact.as_ref(), at);
            Register::offer(&mut registers.state, event.state.as_ref(), at);
            Register::offer(&mut registers.components, event.components.as_ref(), at);
            Register::offer(&mut registers.postmortem, event.postmortem.as_ref(), at);
            Register::offer(&mut registers.evidence, event.evidence.as_ref(), at);
            Register::offer(&mut registers.reason, event.reason.as_ref(), at);
            if let Some(update) = &event.update {
                let mut slot = registers.updates.remove(&update.id);
                Register::offer(&mut slot, Some(update), at);
                if let Some(slot) = slot {
                    registers.updates.insert(update.id.clone(), slot);
                }
            }
            if registers.created.as_ref().is_none_or(|c| (c.0, c.1) > at) {
                registers.created = Some((at.0, at.1, event.at_ms, event.actor.clone()));
            }
            if registers.last.as_ref().is_none_or(|l| (l.0, l.1) < at) {
                registers.last = Some((at.0, at.1, event.at_ms));
            }
        }
        let (page, id) = ids?;
        let mut updates: Vec<IncidentUpdate> =
            registers.updates.into_values().map(|r| r.value).collect();
        updates.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        let state = registers
            .state
            .map_or(IncidentState::Investigating, |r| r.value);
        let resolved_at_ms = (state == IncidentState::Resolved).then(|| {
            updates
                .iter()
                .rev()
                .find(|u| u.state == IncidentState::Resolved)
                .map_or(registers.last.as_ref().map_or(0, |l| l.2), |u| u.at_ms)
        });
        let (created_at_ms, created_by) = registers.created.map(|c| (c.2, c.3)).unwrap_or_default();
        Some(Incident {
            page,
            id,
            lifecycle: registers
                .lifecycle
                .map_or(IncidentLifecycle::Open, |r| r.value),
            title: registers.title.map(|r| r.value).unwrap_or_default(),
            impact: registers.impact.map_or(Impact::None, |r| r.value),
            state,
            components: registers.components.map(|r| r.value).unwrap_or_default(),
            updates,
            postmortem: registers.postmortem.map(|r| r.value),
            evidence: registers.evidence.map(|r| r.value),
            dismissal_reason: registers.reason.map(|r| r.value),
            created_by,
            created_at_ms,
            updated_at_ms: registers.last.map_or(0, |l| l.2),
            resolved_at_ms,
            revision,
            latest: registers.last.as_ref().map(|l| l.0),
        })
    }

    /// Whether it is confirmed or created and not yet resolved: it shows on
    /// pages and sets its components' status.
    pub fn is_active(&self) -> bool {
        self.lifecycle == IncidentLifecycle::Open && self.state != IncidentState::Resolved
    }

    /// Whether it is proposed or active: a new proposal for one of its
    /// components would be a duplicate.
    pub fn is_pending_or_active(&self) -> bool {
        match self.lifecycle {
            IncidentLifecycle::Proposed => true,
            IncidentLifecycle::Open => self.state != IncidentState::Resolved,
            IncidentLifecycle::Dismissed => false,
        }
    }

    /// The status it sets for `component` while active.
    pub fn status_of(&self, component: &str) -> Option<ComponentStatus> {
        if !self.is_active() {
            return None;
        }
        self.components
            .iter()
            .find(|c| c.component == component)
            .map(|c| c.status)
    }

    /// Whether `action` may follow now; the reason when it may not.
    pub fn check(&self, action: IncidentAction) -> Result<(), Refusal> {
        use IncidentAction as A;
        use IncidentLifecycle as L;
        let resolved = self.state == IncidentState::Resolved;
        let refuse = |why: &str| Err(Refusal(format!("incident {} {why}", self.id)));
        match (action, self.lifecycle) {
            (A::Proposed | A::Created, _) => refuse("already exists"),
            (_, L::Dismissed) => refuse("was dismissed; nothing more can happen to it"),
            (A::Confirmed, L::Open) => refuse("is already confirmed"),
            (A::Dismissed, L::Open) => refuse("is confirmed; resolve it instead of dismissing it"),
            (A::Confirmed | A::Dismissed, L::Proposed) => Ok(()),
            (A::Updated | A::Edited | A::Resolved, L::Proposed) => {
                refuse("is only proposed; confirm it first")
            }
            (A::Postmortem, L::Proposed) => refuse("is only proposed; it has no postmortem"),
            (A::Updated | A::Resolved, L::Open) if resolved => {
                refuse("is resolved; it takes no more updates")
            }
            (A::Edited, L::Open) => Ok(()),
            (A::Updated | A::Resolved, L::Open) => Ok(()),
            (A::Postmortem, L::Open) if !resolved => {
                refuse("is not resolved yet; a postmortem follows the resolution")
            }
            (A::Postmortem, L::Open) => Ok(()),
        }
    }
}

/// Why a change to an incident was refused, for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope(wall: u64, event: IncidentEvent) -> Envelope<IncidentEvent> {
        Envelope::with_id(EventId::new(), Hlc::new(wall, 0), "eu", event)
    }

    fn update(id: &str, state: IncidentState, at: u64) -> IncidentUpdate {
        IncidentUpdate {
            id: id.into(),
            state,
            body: format!("update {id}"),
            components: vec![AffectedComponent {
                component: "api".into(),
                status: ComponentStatus::MajorOutage,
            }],
            at_ms: at,
            actor: "op".into(),
        }
    }

    fn history() -> Vec<Envelope<IncidentEvent>> {
        let mut proposed = IncidentEvent::new("p", "i1", IncidentAction::Proposed, "decider", 1);
        proposed.lifecycle = Some(IncidentLifecycle::Proposed);
        proposed.title = Some("API is down".into());
        proposed.impact = Some(Impact::Major);
        proposed.state = Some(IncidentState::Investigating);
        proposed.update = Some(update("u1", IncidentState::Investigating, 1));
        let mut confirmed = IncidentEvent::new("p", "i1", IncidentAction::Confirmed, "op", 2);
        confirmed.lifecycle = Some(IncidentLifecycle::Open);
        confirmed.title = Some("API errors".into());
        let mut identified = IncidentEvent::new("p", "i1", IncidentAction::Updated, "op", 3);
        identified.state = Some(IncidentState::Identified);
        identified.update = Some(update("u2", IncidentState::Identified, 3));
        let mut resolved = IncidentEvent::new("p", "i1", IncidentAction::Resolved, "op", 4);
        resolved.state = Some(IncidentState::Resolved);
        resolved.update = Some(update("u3", IncidentState::Resolved, 4));
        vec![
            envelope(1, proposed),
            envelope(2, confirmed),
            envelope(3, identified),
            envelope(4, resolved),
        ]
    }

    #[test]
    fn a_history_folds_into_its_latest_registers_and_a_timeline() {
        let incident = Incident::fold(&history(), 9).expect("events");
        assert_eq!(incident.lifecycle, IncidentLifecycle::Open);
        assert_eq!(incident.title, "API errors");
        assert_eq!(incident.impact, Impact::Major);
        assert_eq!(incident.state, IncidentState::Resolved);
        assert_eq!(
            incident
                .updates
                .iter()
                .map(|u| u.id.as_str())
                .collect::<Vec<_>>(),
            ["u1", "u2", "u3"]
        );
        assert_eq!(incident.created_by, "decider");
        assert_eq!(
            (incident.created_at_ms, incident.resolved_at_ms),
            (1, Some(4))
        );
        assert_eq!(incident.revision, 9);
        assert!(!incident.is_active());
    }

    #[test]
    fn transitions_that_cannot_follow_are_refused_with_the_reason() {
        use IncidentAction as A;
        let events = history();
        let proposed = Incident::fold(&events[..1], 1).expect("events");
        let open = Incident::fold(&events[..3], 3).expect("events");
        let resolved = Incident::fold(&events, 4).expect("events");
        let mut dismissed = proposed.clone();
        dismissed.lifecycle = IncidentLifecycle::Dismissed;
        let table: &[(&Incident, A, bool)] = &[
            (&proposed, A::Confirmed, true),
            (&proposed, A::Dismissed, true),
            (&proposed, A::Updated, false),
            (&proposed, A::Resolved, false),
            (&open, A::Updated, true),
            (&open, A::Resolved, true),
            (&open, A::Confirmed, false),
            (&open, A::Dismissed, false),
            (&open, A::Postmortem, false),
            (&resolved, A::Updated, false),
            (&resolved, A::Resolved, false),
            (&resolved, A::Postmortem, true),
            (&resolved, A::Edited, true),
            (&dismissed, A::Confirmed, false),
            (&open, A::Created, false),
        ];
        for (incident, action, allowed) in table {
            let got = incident.check(*action);
            assert_eq!(
                got.is_ok(),
                *allowed,
                "{action:?} on {:?}/{:?}: {got:?}",
                incident.lifecycle,
                incident.state
            );
            if let Err(refusal) = got {
                assert!(refusal.0.contains("incident i1"), "{refusal}");
            }
        }
    }

    proptest! {
        /// The fold does not depend on arrival order, and duplicates change
        /// nothing.
        #[test]
        fn the_fold_does_not_depend_on_arrival_order(
            order in Just((0..4usize).collect::<Vec<_>>()).prop_shuffle(),
            duplicate in 0..4usize,
        ) {
            let events = history();
            let reference = Incident::fold(&events, 7);
            let mut shuffled: Vec<&Envelope<IncidentEvent>> = order.iter().map(|&i| &events[i]).collect();
            shuffled.push(&events[duplicate]);
            prop_assert_eq!(Incident::fold(shuffled, 7), reference);
        }

        /// Concurrent writes to one register converge on the one with the
        /// highest HLC, whichever arrives last.
        #[test]
        fn concurrent_titles_converge_on_the_latest_hlc(
            walls in proptest::collection::vec(1u64..50, 2..6),
            order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let events: Vec<Envelope<IncidentEvent>> = walls.iter().enumerate().map(|(i, wall)| {
                let mut edit = IncidentEvent::new("p", "i1", IncidentAction::Edited, "op", *wall);
                edit.title = Some(format!("title {i}"));
                envelope(*wall, edit)
            }).collect();
            let forward = Incident::fold(&events, 0).expect("events");
            let shuffled: Vec<&Envelope<IncidentEvent>> = order.iter().filter(|&&i| i < events.len()).map(|&i| &events[i]).collect();
            let backward = Incident::fold(shuffled, 0).expect("events");
            prop_assert_eq!(&forward.title, &backward.title);
            let latest = events.iter().max_by_key(|e| (e.hlc, e.id)).expect("events");
            prop_assert_eq!(Some(&forward.title), latest.data.title.as_ref());
        }
    }
}
