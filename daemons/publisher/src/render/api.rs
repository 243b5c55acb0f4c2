//! The Statuspage v2 public API, file by file: the same paths, field
//! names, enums, types and nullability as Atlassian Statuspage, so existing
//! consumers work unchanged. Beacon's own facts are only in fields named
//! `beacon_…` (and `generated_at` at the top level of `summary.json`, which
//! the page has always carried).

use beacon_contract::degradation::PageDegradation;
use beacon_contract::incident::Incident;
use beacon_contract::messages::{
    AffectedComponent, ComponentStatus, IncidentState, MaintenanceAction, MaintenancePhase,
};
use serde::Serialize;

use super::{rfc3339, to_json, MaintenanceItem, PageState, RECENT_INCIDENTS};

/// `page` object.
#[derive(Debug, Serialize)]
pub struct ApiPage<'a> {
    id: &'a str,
    name: &'a str,
    url: &'a str,
    time_zone: &'static str,
    updated_at: String,
}

/// `status` object.
#[derive(Debug, Serialize)]
pub struct ApiStatus {
    indicator: &'static str,
    description: &'static str,
}

/// A component (or group).
#[derive(Debug, Clone, Serialize)]
pub struct ApiComponent<'a> {
    id: &'a str,
    name: &'a str,
    status: &'static str,
    created_at: String,
    updated_at: String,
    position: usize,
    description: Option<&'a str>,
    showcase: bool,
    start_date: Option<String>,
    group_id: Option<&'a str>,
    page_id: &'a str,
    group: bool,
    only_show_if_degraded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    components: Option<Vec<&'a str>>,
}

/// One entry of `affected_components`.
#[derive(Debug, Serialize)]
struct ApiAffected<'a> {
    code: &'a str,
    name: &'a str,
    old_status: &'static str,
    new_status: &'static str,
}

/// One entry of `incident_updates`.
#[derive(Debug, Serialize)]
struct ApiUpdate<'a> {
    id: String,
    status: &'static str,
    body: &'a str,
    incident_id: &'a str,
    created_at: String,
    updated_at: String,
    display_at: String,
    affected_components: Option<Vec<ApiAffected<'a>>>,
    deliver_notifications: bool,
    custom_tweet: Option<String>,
    tweet_id: Option<String>,
}

/// An incident or a scheduled maintenance.
#[derive(Debug, Serialize)]
struct ApiIncident<'a> {
    id: &'a str,
    name: &'a str,
    status: &'static str,
    created_at: String,
    updated_at: String,
    monitoring_at: Option<String>,
    resolved_at: Option<String>,
    impact: &'static str,
    shortlink: String,
    started_at: String,
    page_id: &'a str,
    incident_updates: Vec<ApiUpdate<'a>>,
    components: Vec<ApiComponent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_until: Option<String>,
    /// The postmortem, markdown; Statuspage shows it on the incident page only.
    #[serde(skip_serializing_if = "Option::is_none")]
    beacon_postmortem: Option<&'a str>,
}

/// The `page` object.
pub fn page<'a>(state: &'a PageState<'_>) -> ApiPage<'a> {
    ApiPage {
        id: &state.config.id,
        name: &state.config.name,
        url: state.config.url.as_deref().unwrap_or(""),
        time_zone: "Etc/UTC",
        updated_at: rfc3339(state.generated_at_ms),
    }
}

fn status_object(state: &PageState<'_>) -> ApiStatus {
    let (indicator, description) = state.indicator();
    ApiStatus {
        indicator,
        description,
    }
}

fn component_object<'a>(
    state: &'a PageState<'_>,
    position: usize,
    id: &'a str,
) -> Option<ApiComponent<'a>> {
    let config = state.config;
    let component = config.component(id)?;
    let status = state.status_of(id)?;
    Some(ApiComponent {
        id: &component.id,
        name: &component.name,
        status: status.as_str(),
        created_at: rfc3339(state.created_at(id)),
        updated_at: rfc3339(state.updated_at(id)),
        position,
        description: Some(component.description.as_str()).filter(|d| !d.is_empty()),
        showcase: true,
        start_date: None,
        group_id: component.group.as_deref(),
        page_id: &config.id,
        group: false,
        only_show_if_degraded: false,
        components: None,
    })
}

/// Every decided component and every group with a decided member, in page
/// order, groups after their components as Statuspage lists them.
pub fn components<'a>(state: &'a PageState<'_>) -> Vec<ApiComponent<'a>> {
    let config = state.config;
    let mut out = Vec::new();
    for (position, component) in config.components.iter().enumerate() {
        if let Some(object) = component_object(state, position + 1, &component.id) {
            out.push(object);
        }
    }
    for (position, group) in config.groups.iter().enumerate() {
        let ids: Vec<&str> = config
            .components
            .iter()
            .filter(|c| c.group.as_deref() == Some(group.id.as_str()))
            .filter(|c| state.status_of(&c.id).is_some())
            .map(|c| c.id.as_str())
            .collect();
        let Some(worst) = ids
            .iter()
            .filter_map(|id| state.status_of(id))
            .max_by_key(|s| s.severity())
        else {
            continue;
        };
        let created = ids.iter().map(|id| state.created_at(id)).min();
        let updated = ids.iter().map(|id| state.updated_at(id)).max();
        out.push(ApiComponent {
            id: &group.id,
            name: &group.name,
            status: worst.as_str(),
            created_at: rfc3339(created.unwrap_or(state.generated_at_ms)),
            updated_at: rfc3339(updated.unwrap_or(state.generated_at_ms)),
            position: config.components.len() + position + 1,
            description: None,
            showcase: false,
            start_date: None,
            group_id: None,
            page_id: &config.id,
            group: true,
            only_show_if_degraded: false,
            components: Some(ids),
        });
    }
    out
}

fn affected_objects<'a>(
    state: &'a PageState<'_>,
    previous: &[AffectedComponent],
    now: &'a [AffectedComponent],
) -> Option<Vec<ApiAffected<'a>>> {
    if now.is_empty() {
        return None;
    }
    Some(
        now.iter()
            .map(|c| ApiAffected {
                code: &c.component,
                name: state.component_name(&c.component),
                old_status: previous
                    .iter()
                    .find(|p| p.component == c.component)
                    .map_or(ComponentStatus::Operational, |p| p.status)
                    .as_str(),
                new_status: c.status.as_str(),
            })
            .collect(),
    )
}

fn incident_object<'a>(state: &'a PageState<'_>, incident: &'a Incident) -> ApiIncident<'a> {
    let status = if incident.postmortem.is_some() {
        "postmortem"
    } else {
        incident.state.as_str()
    };
    let mut updates = Vec::with_capacity(incident.updates.len());
    let mut previous: &[AffectedComponent] = &[];
    for update in &incident.updates {
        updates.push(ApiUpdate {
            id: update.id.clone(),
            status: update.state.as_str(),
            body: &update.body,
            incident_id: &incident.id,
            created_at: rfc3339(update.at_ms),
            updated_at: rfc3339(update.at_ms),
            display_at: rfc3339(update.at_ms),
            affected_components: affected_objects(state, previous, &update.components),
            deliver_notifications: true,
            custom_tweet: None,
            tweet_id: None,
        });
        if !update.components.is_empty() {
            previous = &update.components;
        }
    }
    // Statuspage lists updates newest first.
    updates.reverse();
    let monitoring_at = incident
        .updates
        .iter()
        .find(|u| u.state == IncidentState::Monitoring)
        .map(|u| rfc3339(u.at_ms));
    ApiIncident {
        id: &incident.id,
        name: &incident.title,
        status,
        created_at: rfc3339(incident.created_at_ms),
        updated_at: rfc3339(incident.updated_at_ms),
        monitoring_at,
        resolved_at: incident.resolved_at_ms.map(rfc3339),
        impact: incident.impact.as_str(),
        shortlink: state.link(&format!("incidents/{}.html", incident.id)),
        started_at: rfc3339(incident.created_at_ms),
        page_id: &state.config.id,
        incident_updates: updates,
        components: incident
            .components
            .iter()
            .enumerate()
            .filter_map(|(i, c)| component_object(state, i + 1, &c.component))
            .collect(),
        scheduled_for: None,
        scheduled_until: None,
        beacon_postmortem: incident.postmortem.as_deref(),
    }
}

fn maintenance_status(phase: MaintenancePhase) -> &'static str {
    match phase {
        MaintenancePhase::Scheduled => "scheduled",
        MaintenancePhase::InProgress => "in_progress",
        MaintenancePhase::Verifying => "verifying",
        // Cancelled windows are never shown; completed is the closest.
        MaintenancePhase::Completed | MaintenancePhase::Cancelled => "completed",
    }
}

fn maintenance_object<'a>(state: &'a PageState<'_>, item: &'a MaintenanceItem) -> ApiIncident<'a> {
    let window = &item.window.state;
    let id = window.maintenance.as_str();
    let mut updates = Vec::new();
    for (n, event) in item.events.iter().enumerate() {
        // A reminder changes nothing users see.
        if event.action == MaintenanceAction::Reminded {
            continue;
        }
        let components = (event.action == MaintenanceAction::Started).then(|| {
            event
                .components
                .iter()
                .map(|c| ApiAffected {
                    code: c,
                    name: state.component_name(c),
                    old_status: "operational",
                    new_status: "under_maintenance",
                })
                .collect()
        });
        updates.push(ApiUpdate {
            // Events carry no update id; the n-th event of a window is stable.
            id: format!("{id}-{n}"),
            status: maintenance_status(event.phase),
            body: &event.body,
            incident_id: id,
            created_at: rfc3339(event.at_ms),
            updated_at: rfc3339(event.at_ms),
            display_at: rfc3339(event.at_ms),
            affected_components: components,
            deliver_notifications: true,
            custom_tweet: None,
            tweet_id: None,
        });
    }
    updates.reverse();
    let started = item
        .events
        .iter()
        .find(|e| e.action == MaintenanceAction::Started)
        .map_or(window.starts_at_ms, |e| e.at_ms);
    let resolved = window.phase.is_final().then(|| {
        item.events
            .iter()
            .rev()
            .find(|e| e.phase.is_final())
            .map_or(window.at_ms, |e| e.at_ms)
    });
    ApiIncident {
        id,
        name: &window.title,
        status: maintenance_status(window.phase),
        created_at: rfc3339(item.window.created_at_ms),
        updated_at: rfc3339(window.at_ms),
        monitoring_at: None,
        resolved_at: resolved.map(rfc3339),
        impact: "maintenance",
        shortlink: state.link(&format!("index.html#maintenance-{id}")),
        started_at: rfc3339(started),
        page_id: &state.config.id,
        incident_updates: updates,
        components: window
            .components
            .iter()
            .enumerate()
            .filter_map(|(i, c)| component_object(state, i + 1, c))
            .collect(),
        scheduled_for: Some(rfc3339(window.starts_at_ms)),
        scheduled_until: Some(rfc3339(window.ends_at_ms)),
        beacon_postmortem: None,
    }
}

/// `api/v2/summary.json`.
pub fn summary_json(state: &PageState<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Summary<'a> {
        page: ApiPage<'a>,
        status: ApiStatus,
        components: Vec<ApiComponent<'a>>,
        incidents: Vec<ApiIncident<'a>>,
        scheduled_maintenances: Vec<ApiIncident<'a>>,
        /// When this file was rendered, so readers can tell how fresh it is.
        generated_at: String,
        /// Components with no status yet, left out of `components`.
        beacon_undecided: Vec<&'a str>,
        /// The degradation level as rendered; an edge that sees worse
        /// serves this file with its own view here.
        beacon_degradation: PageDegradation,
    }
    let mut scheduled: Vec<&MaintenanceItem> = state.active_maintenance();
    scheduled.extend(state.upcoming_maintenance());
    to_json(&Summary {
        page: page(state),
        status: status_object(state),
        components: components(state),
        incidents: state
            .unresolved_incidents()
            .into_iter()
            .map(|i| incident_object(state, i))
            .collect(),
        scheduled_maintenances: scheduled
            .into_iter()
            .map(|m| maintenance_object(state, m))
            .collect(),
        generated_at: rfc3339(state.generated_at_ms),
        beacon_undecided: state.undecided(),
        beacon_degradation: PageDegradation::at(state.degradation),
    })
}

/// `api/v2/status.json`.
pub fn status_json(state: &PageState<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Status<'a> {
        page: ApiPage<'a>,
        status: ApiStatus,
    }
    to_json(&Status {
        page: page(state),
        status: status_object(state),
    })
}

/// `api/v2/components.json`.
pub fn components_json(state: &PageState<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Components<'a> {
        page: ApiPage<'a>,
        components: Vec<ApiComponent<'a>>,
        beacon_undecided: Vec<&'a str>,
    }
    to_json(&Components {
        page: page(state),
        components: components(state),
        beacon_undecided: state.undecided(),
    })
}

#[derive(Serialize)]
struct Incidents<'a> {
    page: ApiPage<'a>,
    incidents: Vec<ApiIncident<'a>>,
}

#[derive(Serialize)]
struct Maintenances<'a> {
    page: ApiPage<'a>,
    scheduled_maintenances: Vec<ApiIncident<'a>>,
}

fn incidents_file<'a>(state: &'a PageState<'_>, list: Vec<&'a Incident>) -> Vec<u8> {
    to_json(&Incidents {
        page: page(state),
        incidents: list
            .into_iter()
            .take(RECENT_INCIDENTS)
            .map(|i| incident_object(state, i))
            .collect(),
    })
}

fn maintenance_file<'a>(state: &'a PageState<'_>, list: Vec<&'a MaintenanceItem>) -> Vec<u8> {
    to_json(&Maintenances {
        page: page(state),
        scheduled_maintenances: list
            .into_iter()
            .take(RECENT_INCIDENTS)
            .map(|m| maintenance_object(state, m))
            .collect(),
    })
}

/// `api/v1/status.json`: Beacon's lightweight status, served by the edge
/// at `/api/v1/status/{page}`: the overall status, every component (with
/// `null` while undecided, never a guess) and the active incidents.
pub fn status_v1_json(state: &PageState<'_>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Page<'a> {
        id: &'a str,
        name: &'a str,
    }
    #[derive(Serialize)]
    struct Component<'a> {
        id: &'a str,
        name: &'a str,
        status: Option<&'static str>,
    }
    #[derive(Serialize)]
    struct ActiveIncident<'a> {
        id: &'a str,
        title: &'a str,
        impact: &'static str,
        status: &'static str,
        updated_at: String,
    }
    #[derive(Serialize)]
    struct Status<'a> {
        page: Page<'a>,
        status: ApiStatus,
        components: Vec<Component<'a>>,
        incidents: Vec<ActiveIncident<'a>>,
        generated_at: String,
    }
    to_json(&Status {
        page: Page {
            id: &state.config.id,
            name: &state.config.name,
        },
        status: status_object(state),
        components: state
            .config
            .components
            .iter()
            .map(|c| Component {
                id: &c.id,
                name: &c.name,
                status: state.status_of(&c.id).map(|s| s.as_str()),
            })
            .collect(),
        incidents: state
            .unresolved_incidents()
            .into_iter()
            .map(|i| ActiveIncident {
                id: &i.id,
                title: &i.title,
                impact: i.impact.as_str(),
                status: i.state.as_str(),
                updated_at: rfc3339(i.updated_at_ms),
            })
            .collect(),
        generated_at: rfc3339(state.generated_at_ms),
    })
}

/// Every API file: (path, bytes).
pub fn files(state: &PageState<'_>) -> Vec<(String, Vec<u8>)> {
    vec![
        ("api/v1/status.json".into(), status_v1_json(state)),
        ("api/v2/summary.json".into(), summary_json(state)),
        ("api/v2/status.json".into(), status_json(state)),
        ("api/v2/components.json".into(), components_json(state)),
        (
            "api/v2/incidents.json".into(),
            incidents_file(state, state.public_incidents()),
        ),
        (
            "api/v2/incidents/unresolved.json".into(),
            incidents_file(state, state.unresolved_incidents()),
        ),
        (
            "api/v2/scheduled-maintenances.json".into(),
            maintenance_file(state, state.public_maintenance()),
        ),
        (
            "api/v2/scheduled-maintenances/upcoming.json".into(),
            maintenance_file(state, state.upcoming_maintenance()),
        ),
        (
            "api/v2/scheduled-maintenances/active.json".into(),
            maintenance_file(state, state.active_maintenance()),
        ),
    ]
}
