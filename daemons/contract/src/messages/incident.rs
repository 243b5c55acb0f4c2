//! Incident events (`INCIDENTS`): what an operator or the decider did to an incident.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::event::Message;

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    /// The decider drafted it from a status change; an operator must
    /// confirm or dismiss it.
    Proposed,
    /// An operator opened it.
    Created,
    /// An operator confirmed a proposed incident.
    Confirmed,
    /// An operator dismissed a proposed incident.
    Dismissed,
    /// A progress update on the timeline.
    Updated,
    /// Title, impact or affected components corrected, no timeline entry.
    Edited,
    /// It is over (the resolving update is on the timeline).
    Resolved,
    /// The postmortem was published.
    Postmortem,
}

impl IncidentAction {
    /// The wire name, e.g. `proposed`; also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentAction::Proposed => "proposed",
            IncidentAction::Created => "created",
            IncidentAction::Confirmed => "confirmed",
            IncidentAction::Dismissed => "dismissed",
            IncidentAction::Updated => "updated",
            IncidentAction::Edited => "edited",
            IncidentAction::Resolved => "resolved",
            IncidentAction::Postmortem => "postmortem",
        }
    }
}

/// Statuspage's incident states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Looking into it.
    Investigating,
    /// Cause known.
    Identified,
    /// Fix applied, watching.
    Monitoring,
    /// Over.
    Resolved,
}

impl IncidentState {
    /// The wire name, e.g. `investigating`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Investigating => "investigating",
            IncidentState::Identified => "identified",
            IncidentState::Monitoring => "monitoring",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// Statuspage's incident impact levels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// No impact.
    None,
    /// Minor.
    Minor,
    /// Major.
    Major,
    /// Critical.
    Critical,
}

impl Impact {
    /// The wire name, e.g. `major`.
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Minor => "minor",
            Impact::Major => "major",
            Impact::Critical => "critical",
        }
    }
}

/// Whether an incident is a draft, real, or thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentLifecycle {
    /// Proposed by the decider, waiting for an operator.
    Proposed,
    /// Confirmed or created by an operator: shown on pages, notified.
    Open,
    /// Dismissed by an operator: never shown.
    Dismissed,
}

impl IncidentLifecycle {
    /// The wire name, e.g. `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentLifecycle::Proposed => "proposed",
            IncidentLifecycle::Open => "open",
            IncidentLifecycle::Dismissed => "dismissed",
        }
    }
}

/// A component named by an incident, and the status it shows meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AffectedComponent {
    /// Component id.
    pub component: String,
    /// Status shown for it.
    pub status: ComponentStatus,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentUpdate {
    /// Update id, unique within the incident (a lowercase ULID).
    pub id: String,
    /// The incident's state from this update on.
    pub state: IncidentState,
    /// What operators told users, markdown (escaped where rendered).
    pub body: String,
    /// Status of each affected component from this update on.
    #[serde(default)]
    pub components: Vec<AffectedComponent>,
    /// When it was written (Unix milliseconds).
    pub at_ms: u64,
    /// Who wrote it (`decider`, an operator, an API key id).
    pub actor: String,
}

/// An incident event. Subject: `beacon.incident.{page}.{incident}`.
///
/// An incident is a fold over its events (see
/// [`crate::incident::Incident::fold`]): each optional field is a
/// last-writer-wins register ordered by the envelope's HLC, and timeline
/// updates form a set keyed by id, so the same events in any order give the
/// same incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentEvent {
    /// Page id.
    pub page: String,
    /// Incident id (a lowercase ULID).
    pub incident: String,
    /// What happened.
    pub action: IncidentAction,
    /// Who did it.
    pub actor: String,
    /// When (Unix milliseconds).
    pub at_ms: u64,
    /// Draft, open or dismissed, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<IncidentLifecycle>,
    /// Title, when this event sets it (escaped at render time, never here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Impact, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    /// State, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<IncidentState>,
    /// Affected components, when this event sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<AffectedComponent>>,
    /// A timeline entry, when this event adds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<IncidentUpdate>,
    /// Postmortem, markdown, when this event sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<String>,
    /// For a proposal: the evidence behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// For a dismissal: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl IncidentEvent {
    /// An event of `action` that sets nothing yet.
    pub fn new(
        page: &str,
        incident: &str,
        action: IncidentAction,
        actor: &str,
        at_ms: u64,
    ) -> Self {
        Self {
            page: page.to_owned(),
            incident: incident.to_owned(),
            action,
            actor: actor.to_owned(),
            at_ms,
            lifecycle: None,
            title: None,
            impact: None,
            state: None,
            components: None,
            update: None,
            postmortem: None,
            evidence: None,
            reason: None,
        }
    }
}

impl Message for IncidentEvent {
    const KIND: &'static str = "incident_event";
    const VERSION: u32 = 1;
}
