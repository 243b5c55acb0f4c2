//! The decider's endpoints: components (status, overrides, explanations), incidents and maintenance windows. The page config's own endpoints (`config.apply`, `config.get`) are declared with the config, in `beacon-page`, because their bodies are the page config.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;

// ---------------------------------------------------------------------------
// Components.
// ---------------------------------------------------------------------------

/// `beacon.api.component.set`: override a component's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetComponentRequest {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// The status to show.
    pub status: ComponentStatus,
    /// Why, for people.
    #[serde(default)]
    pub reason: String,
    /// How long it applies, in milliseconds; none: until cleared.
    #[serde(default)]
    pub expires_in_ms: Option<u64>,
    /// Who asks (an operator's name, an API key id).
    pub actor: String,
}

/// `beacon.api.component.clear`: hand a component back to automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearComponentRequest {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.component.explain` and `.list` name a page, and a component
/// for `explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentRequest {
    /// Page id.
    pub page: String,
    /// Component id (`explain`); ignored by `list`.
    #[serde(default)]
    pub component: Option<String>,
}

/// One component as `list` and `explain` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentView {
    /// Page id.
    pub page: String,
    /// Component id.
    pub component: String,
    /// Name.
    pub name: String,
    /// Whether it has checks (automation decides it).
    pub automated: bool,
    /// The stored status record; none before the first decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<StatusRecord>,
    /// The operator override, if one is set (active or expired).
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub manual_override: Option<ComponentOverride>,
    /// Maintenance windows in progress that cover it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<String>,
    /// Active incidents that name it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<String>,
    /// Components it depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

// ---------------------------------------------------------------------------
// Incidents.
// ---------------------------------------------------------------------------

/// `beacon.api.incident.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIncidentsRequest {
    /// Page id.
    pub page: String,
    /// Include resolved and dismissed incidents.
    #[serde(default)]
    pub all: bool,
}

/// `beacon.api.incident.show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowIncidentRequest {
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
}

/// `beacon.api.incident.create`: open an incident directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncidentRequest {
    /// Page id.
    pub page: String,
    /// Title.
    pub title: String,
    /// Impact.
    pub impact: Impact,
    /// State of the first update (default investigating).
    #[serde(default)]
    pub state: Option<IncidentState>,
    /// The first update's text.
    #[serde(default)]
    pub body: String,
    /// Affected components and the status each should show.
    #[serde(default)]
    pub components: Vec<AffectedComponent>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: the same key creates one incident, however
    /// often the request is retried within the bus's dedup window.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `beacon.api.incident.update`, `.resolve`, `.confirm`, `.dismiss` and
/// `.postmortem`: a change to one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeIncidentRequest {
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
    /// The revision the client saw; refused with a conflict when the
    /// incident changed since. None: the revision the server reads.
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// New state (`update`; `resolve` sets resolved).
    #[serde(default)]
    pub state: Option<IncidentState>,
    /// Update text, dismissal reason or postmortem.
    #[serde(default)]
    pub body: String,
    /// New title (`confirm`, `update`).
    #[serde(default)]
    pub title: Option<String>,
    /// New impact (`confirm`, `update`).
    #[serde(default)]
    pub impact: Option<Impact>,
    /// Affected components with their status from now on; none keeps them
    /// (`resolve` sets them all operational).
    #[serde(default)]
    pub components: Option<Vec<AffectedComponent>>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: a change repeated with the same key makes
    /// one timeline entry, however often it is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Result of `incident.list`.
pub type IncidentList = Vec<Incident>;

// ---------------------------------------------------------------------------
// Maintenance.
// ---------------------------------------------------------------------------

/// `beacon.api.maintenance.schedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleMaintenanceRequest {
    /// Page id.
    pub page: String,
    /// Title.
    pub title: String,
    /// Text for users.
    #[serde(default)]
    pub body: String,
    /// Start (Unix milliseconds); for a series, its first occurrence's.
    pub starts_at_ms: u64,
    /// End; for a series, the first occurrence's (every occurrence lasts as long).
    pub ends_at_ms: u64,
    /// Components under maintenance.
    pub components: Vec<String>,
    /// `RRULE:FREQ=WEEKLY;BYDAY=TU` (RFC 5545) or a five-field cron
    /// expression in UTC, for a recurring series.
    #[serde(default)]
    pub recurrence: Option<String>,
    /// How long before the start the reminder goes out; default one hour, 0: none.
    #[serde(default)]
    pub remind_before_ms: Option<u64>,
    /// How long it stays verifying after its end; default 0 (completes at the end).
    #[serde(default)]
    pub verify_ms: Option<u64>,
    /// Who asks.
    pub actor: String,
    /// A key the client chose: the same key schedules one window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// `beacon.api.maintenance.start`, `.verify`, `.complete`, `.cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeMaintenanceRequest {
    /// Page id.
    pub page: String,
    /// Maintenance id.
    pub maintenance: String,
    /// The revision the client saw (optional, as for incidents).
    #[serde(default)]
    pub expected_revision: Option<u64>,
    /// Text for users.
    #[serde(default)]
    pub body: String,
    /// Who asks.
    pub actor: String,
}

/// `beacon.api.maintenance.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListMaintenanceRequest {
    /// Page id.
    pub page: String,
    /// Include completed and cancelled windows.
    #[serde(default)]
    pub all: bool,
}

/// Result of `maintenance.list`.
pub type MaintenanceList = Vec<Window>;

// ---------------------------------------------------------------------------
// Endpoints.
// ---------------------------------------------------------------------------

/// The daemon that serves the endpoints below.
const OWNER: &str = "decider";

/// Override a component's status.
pub const COMPONENT_SET: Endpoint<SetComponentRequest, ComponentView> =
    Endpoint::new("beacon.api.component.set", OWNER);

/// Clear a component's override.
pub const COMPONENT_CLEAR: Endpoint<ClearComponentRequest, ComponentView> =
    Endpoint::new("beacon.api.component.clear", OWNER);

/// A component's status, evidence and what holds it.
pub const COMPONENT_EXPLAIN: Endpoint<ComponentRequest, ComponentView> =
    Endpoint::new("beacon.api.component.explain", OWNER);

/// Every component of a page with its status.
pub const COMPONENT_LIST: Endpoint<ComponentRequest, Vec<ComponentView>> =
    Endpoint::new("beacon.api.component.list", OWNER);

/// Incidents of a page.
pub const INCIDENT_LIST: Endpoint<ListIncidentsRequest, IncidentList> =
    Endpoint::new("beacon.api.incident.list", OWNER);

/// One incident with its timeline.
pub const INCIDENT_SHOW: Endpoint<ShowIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.show", OWNER);

/// Open an incident.
pub const INCIDENT_CREATE: Endpoint<CreateIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.create", OWNER);

/// Add an update to an incident's timeline.
pub const INCIDENT_UPDATE: Endpoint<ChangeIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.update", OWNER);

/// Correct an incident's title, impact or components (no timeline entry).
pub const INCIDENT_EDIT: Endpoint<ChangeIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.edit", OWNER);

/// Resolve an incident.
pub const INCIDENT_RESOLVE: Endpoint<ChangeIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.resolve", OWNER);

/// Confirm a proposed incident.
pub const INCIDENT_CONFIRM: Endpoint<ChangeIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.confirm", OWNER);

/// Dismiss a proposed incident.
pub const INCIDENT_DISMISS: Endpoint<ChangeIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.dismiss", OWNER);

/// Publish a resolved incident's postmortem.
pub const INCIDENT_POSTMORTEM: Endpoint<ChangeIncidentRequest, Incident> =
    Endpoint::new("beacon.api.incident.postmortem", OWNER);

/// Schedule a maintenance window or series.
pub const MAINTENANCE_SCHEDULE: Endpoint<ScheduleMaintenanceRequest, Window> =
    Endpoint::new("beacon.api.maintenance.schedule", OWNER);

/// Start a scheduled window now.
pub const MAINTENANCE_START: Endpoint<ChangeMaintenanceRequest, Window> =
    Endpoint::new("beacon.api.maintenance.start", OWNER);

/// Move a running window to verifying.
pub const MAINTENANCE_VERIFY: Endpoint<ChangeMaintenanceRequest, Window> =
    Endpoint::new("beacon.api.maintenance.verify", OWNER);

/// Complete a window now.
pub const MAINTENANCE_COMPLETE: Endpoint<ChangeMaintenanceRequest, Window> =
    Endpoint::new("beacon.api.maintenance.complete", OWNER);

/// Cancel a window or series.
pub const MAINTENANCE_CANCEL: Endpoint<ChangeMaintenanceRequest, Window> =
    Endpoint::new("beacon.api.maintenance.cancel", OWNER);

/// Maintenance windows of a page.
pub const MAINTENANCE_LIST: Endpoint<ListMaintenanceRequest, MaintenanceList> =
    Endpoint::new("beacon.api.maintenance.list", OWNER);
