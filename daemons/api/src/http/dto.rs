//! The JSON the HTTP API reads and writes, and how it maps to the owners'
//! types. Beacon's own routes speak [`Incident`], [`Component`] and
//! [`Maintenance`]; Statuspage's routes speak [`SpIncident`] and
//! [`SpComponent`] with Statuspage's field names, enums and nullability.
//! Every type derives `ToSchema`, so the OpenAPI document is generated
//! from these definitions.

use std::time::{Duration, UNIX_EPOCH};

use beacon_contract::api::ComponentView;
use beacon_contract::incident::Incident as CoreIncident;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{
    AffectedComponent, ComponentStatus, Impact as CoreImpact, IncidentLifecycle, IncidentState,
    MaintenancePhase,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(text)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// A component status, in Statuspage's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Working normally.
    Operational,
    /// Working, but slow.
    DegradedPerformance,
    /// Failing for some.
    PartialOutage,
    /// Failing for everyone.
    MajorOutage,
    /// Down on purpose.
    UnderMaintenance,
}

impl From<Status> for ComponentStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Operational => ComponentStatus::Operational,
            Status::DegradedPerformance => ComponentStatus::DegradedPerformance,
            Status::PartialOutage => ComponentStatus::PartialOutage,
            Status::MajorOutage => ComponentStatus::MajorOutage,
            Status::UnderMaintenance => ComponentStatus::UnderMaintenance,
        }
    }
}

impl From<ComponentStatus> for Status {
    fn from(status: ComponentStatus) -> Self {
        match status {
            ComponentStatus::Operational => Status::Operational,
            ComponentStatus::DegradedPerformance => Status::DegradedPerformance,
            ComponentStatus::PartialOutage => Status::PartialOutage,
            ComponentStatus::MajorOutage => Status::MajorOutage,
            ComponentStatus::UnderMaintenance => Status::UnderMaintenance,
        }
    }
}

/// An incident's impact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// None.
    None,
    /// Minor.
    Minor,
    /// Major.
    Major,
    /// Critical.
    Critical,
}

impl From<Impact> for CoreImpact {
    fn from(impact: Impact) -> Self {
        match impact {
            Impact::None => CoreImpact::None,
            Impact::Minor => CoreImpact::Minor,
            Impact::Major => CoreImpact::Major,
            Impact::Critical => CoreImpact::Critical,
        }
    }
}

impl From<CoreImpact> for Impact {
    fn from(impact: CoreImpact) -> Self {
        match impact {
            CoreImpact::None => Impact::None,
            CoreImpact::Minor => Impact::Minor,
            CoreImpact::Major => Impact::Major,
            CoreImpact::Critical => Impact::Critical,
        }
    }
}

/// An incident's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Looking into it.
    Investigating,
    /// Cause known.
    Identified,
    /// Fix applied, watching.
    Monitoring,
    /// Over.
    Resolved,
}

impl From<IncidentStatus> for IncidentState {
    fn from(status: IncidentStatus) -> Self {
        match status {
            IncidentStatus::Investigating => IncidentState::Investigating,
            IncidentStatus::Identified => IncidentState::Identified,
            IncidentStatus::Monitoring => IncidentState::Monitoring,
            IncidentStatus::Resolved => IncidentState::Resolved,
        }
    }
}

impl From<IncidentState> for IncidentStatus {
    fn from(state: IncidentState) -> Self {
        match state {
            IncidentState::Investigating => IncidentStatus::Investigating,
            IncidentState::Identified => IncidentStatus::Identified,
            IncidentState::Monitoring => IncidentStatus::Monitoring,
            IncidentState::Resolved => IncidentStatus::Resolved,
        }
    }
}

/// A component an incident names, and the status it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Affected {
    /// Component id.
    pub id: String,
    /// Its status while the incident is open.
    pub status: Status,
}

impl From<&AffectedComponent> for Affected {
    fn from(a: &AffectedComponent) -> Self {
        Affected {
            id: a.component.clone(),
            status: a.status.into(),
        }
    }
}

impl From<&Affected> for AffectedComponent {
    fn from(a: &Affected) -> Self {
        AffectedComponent {
            component: a.id.clone(),
            status: a.status.into(),
        }
    }
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Update {
    /// Update id.
    pub id: String,
    /// The incident's state from this update on.
    pub status: IncidentStatus,
    /// What users were told (markdown, shown escaped).
    pub message: String,
    /// Component statuses from this update on.
    pub components: Vec<Affected>,
    /// When.
    pub created_at: String,
    /// Who wrote it (an operator, or `apikey:{id} ({name})`).
    pub author: String,
}

/// An incident, as Beacon's routes show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    /// Incident id.
    pub id: String,
    /// Page id.
    pub page: String,
    /// `proposed`, `open` or `dismissed`.
    pub lifecycle: String,
    /// Title.
    pub title: String,
    /// Impact.
    pub impact: Impact,
    /// State.
    pub status: IncidentStatus,
    /// Affected components.
    pub components: Vec<Affected>,
    /// The timeline, oldest first.
    pub updates: Vec<Update>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Resolved, if it is.
    pub resolved_at: Option<String>,
    /// The revision to name in a later change (`If-Match`).
    pub revision: u64,
}

impl From<&CoreIncident> for Incident {
    fn from(i: &CoreIncident) -> Self {
        Incident {
            id: i.id.clone(),
            page: i.page.clone(),
            lifecycle: i.lifecycle.as_str().to_owned(),
            title: i.title.clone(),
            impact: i.impact.into(),
            status: i.state.into(),
            components: i.components.iter().map(Affected::from).collect(),
            updates: i
                .updates
                .iter()
                .map(|u| Update {
                    id: u.id.clone(),
                    status: u.state.into(),
                    message: u.body.clone(),
                    components: u.components.iter().map(Affected::from).collect(),
                    created_at: rfc3339(u.at_ms),
                    author: u.actor.clone(),
                })
                .collect(),
            created_at: rfc3339(i.created_at_ms),
            updated_at: rfc3339(i.updated_at_ms),
            resolved_at: i.resolved_at_ms.map(rfc3339),
            revision: i.revision,
        }
    }
}

/// A component, as Beacon's routes show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Component {
    /// Component id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status; none before the first decision (never shown as operational).
    pub status: Option<Status>,
    /// What set it: `automatic`, `override`, `maintenance` or `incident`.
    pub source: Option<String>,
    /// Since when.
    pub since: Option<String>,
    /// Whether an operator override holds it.
    pub overridden: bool,
}

impl From<&ComponentView> for Component {
    fn from(v: &ComponentView) -> Self {
        Component {
            id: v.component.clone(),
            name: v.name.clone(),
            status: v.record.as_ref().map(|r| r.status.into()),
            source: v.record.as_ref().map(|r| r.source.as_str().to_owned()),
            since: v.record.as_ref().map(|r| rfc3339(r.since_ms)),
            overridden: v.manual_override.is_some(),
        }
    }
}

/// A maintenance window, as Beacon's routes show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Maintenance {
    /// Window id.
    pub id: String,
    /// `scheduled`, `in_progress`, `verifying`, `completed` or `cancelled`.
    pub phase: String,
    /// Title.
    pub title: String,
    /// Text for users.
    pub message: String,
    /// Start.
    pub starts_at: String,
    /// End.
    pub ends_at: String,
    /// Components under maintenance.
    pub components: Vec<String>,
    /// A recurring series' rule.
    pub recurrence: Option<String>,
    /// The revision to name in a later change.
    pub revision: u64,
}

impl From<&Window> for Maintenance {
    fn from(w: &Window) -> Self {
        Maintenance {
            id: w.state.maintenance.clone(),
            phase: w.state.phase.as_str().to_owned(),
            title: w.state.title.clone(),
            message: w.state.body.clone(),
            starts_at: rfc3339(w.state.starts_at_ms),
            ends_at: rfc3339(w.state.ends_at_ms),
            components: w.state.components.clone(),
            recurrence: w.state.recurrence.clone(),
            revision: w.revision,
        }
    }
}

// ---------------------------------------------------------------------------
// Statuspage's management API shapes.
// ---------------------------------------------------------------------------

/// A component as Statuspage's management API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpComponent {
    /// Component id.
    pub id: String,
    /// Page id.
    pub page_id: String,
    /// Group id.
    pub group_id: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Always false: groups are not components here.
    pub group: bool,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Position on the page, from 1.
    pub position: u32,
    /// Status. Statuspage has no "unknown": a component with no decision
    /// yet is left out of lists and answered 409 on its own.
    pub status: Status,
    /// Shown on the page.
    pub showcase: bool,
    /// Hidden unless degraded.
    pub only_show_if_degraded: bool,
    /// Statuspage's email automation; not used.
    pub automation_email: String,
    /// Start date.
    pub start_date: Option<String>,
    /// What set the status (Beacon's own field).
    pub beacon_source: String,
}

/// An affected component in a Statuspage incident update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpAffectedComponent {
    /// Component id.
    pub code: String,
    /// Component name.
    pub name: String,
    /// Status before the update.
    pub old_status: Status,
    /// Status from the update on.
    pub new_status: Status,
}

/// A Statuspage incident update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpIncidentUpdate {
    /// Update id.
    pub id: String,
    /// Incident id.
    pub incident_id: String,
    /// State (for maintenance: scheduled, in_progress, verifying, completed).
    pub status: String,
    /// Text.
    pub body: String,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
    /// Displayed from.
    pub display_at: String,
    /// Components it changed.
    pub affected_components: Option<Vec<SpAffectedComponent>>,
    /// Whether subscribers were told.
    pub deliver_notifications: bool,
    /// Not used.
    pub custom_tweet: Option<String>,
    /// Not used.
    pub tweet_id: Option<String>,
}

/// An incident (or a scheduled maintenance) as Statuspage's management
/// API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpIncident {
    /// Incident or maintenance id.
    pub id: String,
    /// Page id.
    pub page_id: String,
    /// Title.
    pub name: String,
    /// investigating, identified, monitoring, resolved; for maintenance
    /// scheduled, in_progress, verifying, completed.
    pub status: String,
    /// none, minor, major, critical (maintenance: maintenance).
    pub impact: String,
    /// The impact an operator set.
    pub impact_override: Option<String>,
    /// Created.
    pub created_at: String,
    /// Updated.
    pub updated_at: String,
    /// When it went to monitoring.
    pub monitoring_at: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<String>,
    /// Link to it.
    pub shortlink: String,
    /// Postmortem.
    pub postmortem_body: Option<String>,
    /// Postmortem published.
    pub postmortem_published_at: Option<String>,
    /// Maintenance start.
    pub scheduled_for: Option<String>,
    /// Maintenance end.
    pub scheduled_until: Option<String>,
    /// Reminder lead, minutes.
    pub scheduled_remind_prior: bool,
    /// Maintenance starts by itself.
    pub scheduled_auto_in_progress: bool,
    /// Maintenance completes by itself.
    pub scheduled_auto_completed: bool,
    /// The timeline, newest first as Statuspage lists it.
    pub incident_updates: Vec<SpIncidentUpdate>,
    /// Affected components.
    pub components: Vec<SpComponent>,
    /// Free-form metadata; empty.
    pub metadata: serde_json::Value,
    /// `proposed`, `open` or `dismissed` (Beacon's own field).
    pub beacon_lifecycle: String,
    /// The revision a change should name (Beacon's own field).
    pub beacon_revision: u64,
}

/// The page's components by id, for Statuspage shapes.
pub struct Components<'a>(pub &'a [ComponentView]);

impl Components<'_> {
    fn find(&self, id: &str) -> Option<&ComponentView> {
        self.0.iter().find(|c| c.component == id)
    }

    fn name(&self, id: &str) -> String {
        self.find(id)
            .map_or_else(|| id.to_owned(), |c| c.name.clone())
    }

    /// A component in Statuspage's shape; `None` before its first decision.
    pub fn sp(&self, view: &ComponentView, position: usize) -> Option<SpComponent> {
        let record = view.record.as_ref()?;
        Some(SpComponent {
            id: view.component.clone(),
            page_id: view.page.clone(),
            group_id: None,
            created_at: rfc3339(0),
            updated_at: rfc3339(record.since_ms),
            group: false,
            name: view.name.clone(),
            description: None,
            position: position as u32 + 1,
            status: record.status.into(),
            showcase: true,
            only_show_if_degraded: false,
            automation_email: String::new(),
            start_date: None,
            beacon_source: record.source.as_str().to_owned(),
        })
    }

    fn by_ids(&self, ids: impl Iterator<Item = String>) -> Vec<SpComponent> {
        ids.filter_map(|id| {
            let (position, view) = self.0.iter().enumerate().find(|(_, c)| c.component == id)?;
            self.sp(view, position)
        })
        .collect()
    }

    /// An incident in Statuspage's shape.
    pub fn incident(&self, i: &CoreIncident, shortlink_base: &str) -> SpIncident {
        let mut previous: std::collections::HashMap<String, Status> =
            std::collections::HashMap::new();
        let mut updates: Vec<SpIncidentUpdate> = i
            .updates
            .iter()
            .map(|u| {
                let affected = u
                    .components
                    .iter()
                    .map(|a| {
                        let new_status: Status = a.status.into();
                        let old_status = previous
                            .insert(a.component.clone(), new_status)
                            .unwrap_or(Status::Operational);
                        SpAffectedComponent {
                            code: a.component.clone(),
                            name: self.name(&a.component),
                            old_status,
                            new_status,
                        }
                    })
                    .collect::<Vec<_>>();
                SpIncidentUpdate {
                    id: u.id.clone(),
                    incident_id: i.id.clone(),
                    status: u.state.as_str().to_owned(),
                    body: u.body.clone(),
                    created_at: rfc3339(u.at_ms),
                    updated_at: rfc3339(u.at_ms),
                    display_at: rfc3339(u.at_ms),
                    affected_components: (!affected.is_empty()).then_some(affected),
                    deliver_notifications: i.lifecycle == IncidentLifecycle::Open,
                    custom_tweet: None,
                    tweet_id: None,
                }
            })
            .collect();
        updates.reverse();
        let monitoring_at = i
            .updates
            .iter()
            .find(|u| u.state == IncidentState::Monitoring)
            .map(|u| rfc3339(u.at_ms));
        SpIncident {
            id: i.id.clone(),
            page_id: i.page.clone(),
            name: i.title.clone(),
            status: i.state.as_str().to_owned(),
            impact: i.impact.as_str().to_owned(),
            impact_override: Some(i.impact.as_str().to_owned()),
            created_at: rfc3339(i.created_at_ms),
            updated_at: rfc3339(i.updated_at_ms),
            monitoring_at,
            resolved_at: i.resolved_at_ms.map(rfc3339),
            shortlink: format!("{shortlink_base}/incidents/{}", i.id),
            postmortem_body: i.postmortem.clone(),
            postmortem_published_at: i.postmortem.as_ref().map(|_| rfc3339(i.updated_at_ms)),
            scheduled_for: None,
            scheduled_until: None,
            scheduled_remind_prior: false,
            scheduled_auto_in_progress: false,
            scheduled_auto_completed: false,
            incident_updates: updates,
            components: self.by_ids(i.components.iter().map(|c| c.component.clone())),
            metadata: serde_json::json!({}),
            beacon_lifecycle: i.lifecycle.as_str().to_owned(),
            beacon_revision: i.revision,
        }
    }

    /// A maintenance window as Statuspage shows a scheduled incident.
    pub fn maintenance(&self, w: &Window, shortlink_base: &str) -> SpIncident {
        let s = &w.state;
        let status = match s.phase {
            MaintenancePhase::Cancelled => "completed",
            other => other.as_str(),
        };
        SpIncident {
            id: s.maintenance.clone(),
            page_id: s.page.clone(),
            name: s.title.clone(),
            status: status.to_owned(),
            impact: "maintenance".to_owned(),
            impact_override: None,
            created_at: rfc3339(w.created_at_ms),
            updated_at: rfc3339(s.at_ms),
            monitoring_at: None,
            resolved_at: s.phase.is_final().then(|| rfc3339(s.at_ms)),
            shortlink: format!("{shortlink_base}/maintenance/{}", s.maintenance),
            postmortem_body: None,
            postmortem_published_at: None,
            scheduled_for: Some(rfc3339(s.starts_at_ms)),
            scheduled_until: Some(rfc3339(s.ends_at_ms)),
            scheduled_remind_prior: s.remind_before_ms > 0,
            scheduled_auto_in_progress: true,
            scheduled_auto_completed: true,
            incident_updates: vec![SpIncidentUpdate {
                id: format!("{}-{}", s.maintenance, s.action.as_str()),
                incident_id: s.maintenance.clone(),
                status: status.to_owned(),
                body: s.body.clone(),
                created_at: rfc3339(s.at_ms),
                updated_at: rfc3339(s.at_ms),
                display_at: rfc3339(s.at_ms),
                affected_components: None,
                deliver_notifications: true,
                custom_tweet: None,
                tweet_id: None,
            }],
            components: self.by_ids(s.components.iter().cloned()),
            metadata: serde_json::json!({}),
            beacon_lifecycle: s.phase.as_str().to_owned(),
            beacon_revision: w.revision,
        }
    }
}
