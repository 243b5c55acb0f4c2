//! Statuspage's management routes, `/v1/pages/{page_id}/…`, with its field
//! names and `Authorization: OAuth <key>`, so automation written for
//! Statuspage works against Beacon. Scheduled maintenance is an incident
//! with `scheduled_for`/`scheduled_until`, as Statuspage models it.
//!
//! Covered: incidents (list, unresolved, scheduled, create, show, update,
//! delete of a scheduled one) and components (list, show, update status).
//! Fields Statuspage accepts that Beacon has no use for (tweets, auto
//! transitions, reminder details, metadata) are accepted and ignored; any
//! other field is refused with its name.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use beacon_contract::api;
use beacon_contract::api::{
    ApiScope, ChangeIncidentRequest, ChangeMaintenanceRequest, ComponentView,
    CreateIncidentRequest, ListIncidentsRequest, ListMaintenanceRequest,
    ScheduleMaintenanceRequest, SetComponentRequest, ShowIncidentRequest,
};
use beacon_contract::incident::Incident as CoreIncident;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{AffectedComponent, ComponentStatus, IncidentLifecycle};
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::dto::{parse_time, Components, Impact, SpComponent, SpIncident, Status};
use super::seed::{components, idempotency_key, show};
use super::{AppState, JsonBody};
use crate::bus::call;
use crate::error::ApiError;
use crate::keys::actor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/pages/{page_id}/incidents", get(list).post(create))
        .route("/v1/pages/{page_id}/incidents/unresolved", get(unresolved))
        .route("/v1/pages/{page_id}/incidents/scheduled", get(scheduled))
        .route(
            "/v1/pages/{page_id}/incidents/{incident_id}",
            get(show_one).patch(update).put(update).delete(delete),
        )
        .route("/v1/pages/{page_id}/components", get(list_components))
        .route(
            "/v1/pages/{page_id}/components/{component_id}",
            get(show_component)
                .patch(update_component)
                .put(update_component),
        )
}

async fn incidents(state: &AppState, page: &str) -> Result<Vec<CoreIncident>, ApiError> {
    let request = ListIncidentsRequest {
        page: page.to_owned(),
        all: true,
    };
    call(&state.client, api::INCIDENT_LIST, &request, state.timeout).await
}

async fn windows(state: &AppState, page: &str, all: bool) -> Result<Vec<Window>, ApiError> {
    let request = ListMaintenanceRequest {
        page: page.to_owned(),
        all,
    };
    call(
        &state.client,
        api::MAINTENANCE_LIST,
        &request,
        state.timeout,
    )
    .await
}

/// Every incident and scheduled maintenance of the page, newest first.
#[utoipa::path(get, path = "/v1/pages/{page_id}/incidents", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id")),
    responses((status = 200, body = [SpIncident]), (status = 401), (status = 403)),
    security(("oauth_key" = ["incidents:read"])))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(page): Path<String>,
) -> Result<Json<Vec<SpIncident>>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::IncidentsRead)?;
    let views = components(&state, &page).await?;
    let shapes = Components(&views);
    let mut out: Vec<(String, SpIncident)> = incidents(&state, &page)
        .await?
        .iter()
        .filter(|i| i.lifecycle == IncidentLifecycle::Open)
        .map(|i| (i.created_at_ms.to_string(), shapes.incident(i, "")))
        .collect();
    for window in windows(&state, &page, true)
        .await?
        .iter()
        .filter(|w| !w.is_series())
    {
        out.push((
            window.created_at_ms.to_string(),
            shapes.maintenance(window, ""),
        ));
    }
    out.sort_by(|a, b| b.1.created_at.cmp(&a.1.created_at));
    Ok(Json(out.into_iter().map(|(_, i)| i).collect()))
}

/// Open incidents not yet resolved.
#[utoipa::path(get, path = "/v1/pages/{page_id}/incidents/unresolved", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id")),
    responses((status = 200, body = [SpIncident]), (status = 401), (status = 403)),
    security(("oauth_key" = ["incidents:read"])))]
pub async fn unresolved(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(page): Path<String>,
) -> Result<Json<Vec<SpIncident>>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::IncidentsRead)?;
    let views = components(&state, &page).await?;
    let shapes = Components(&views);
    Ok(Json(
        incidents(&state, &page)
            .await?
            .iter()
            .filter(|i| i.is_active())
            .map(|i| shapes.incident(i, ""))
            .collect(),
    ))
}

/// Scheduled maintenance not yet over.
#[utoipa::path(get, path = "/v1/pages/{page_id}/incidents/scheduled", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id")),
    responses((status = 200, body = [SpIncident]), (status = 401), (status = 403)),
    security(("oauth_key" = ["maintenance:read"])))]
pub async fn scheduled(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(page): Path<String>,
) -> Result<Json<Vec<SpIncident>>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::MaintenanceRead)?;
    let views = components(&state, &page).await?;
    let shapes = Components(&views);
    Ok(Json(
        windows(&state, &page, false)
            .await?
            .iter()
            .filter(|w| !w.is_series())
            .map(|w| shapes.maintenance(w, ""))
            .collect(),
    ))
}

/// `{"incident": {…}}`, as Statuspage's clients send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentBody {
    /// The incident.
    pub incident: IncidentFields,
}

/// The fields of an incident write. Those marked "ignored" are accepted
/// for compatibility and have no effect.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentFields {
    /// Title.
    #[serde(default)]
    pub name: Option<String>,
    /// investigating, identified, monitoring, resolved; for maintenance
    /// scheduled, in_progress, verifying, completed.
    #[serde(default)]
    pub status: Option<String>,
    /// Impact.
    #[serde(default)]
    pub impact_override: Option<Impact>,
    /// The update's text.
    #[serde(default)]
    pub body: Option<String>,
    /// Affected component ids.
    #[serde(default)]
    pub component_ids: Option<Vec<String>>,
    /// Affected components and the status each shows.
    #[serde(default)]
    pub components: Option<BTreeMap<String, Status>>,
    /// Maintenance start, RFC 3339.
    #[serde(default)]
    pub scheduled_for: Option<String>,
    /// Maintenance end, RFC 3339.
    #[serde(default)]
    pub scheduled_until: Option<String>,
    /// Whether to remind subscribers before the start (an hour before).
    #[serde(default)]
    pub scheduled_remind_prior: Option<bool>,
    /// Ignored: subscribers are always told.
    #[serde(default)]
    pub deliver_notifications: Option<bool>,
    /// Ignored: maintenance always starts and completes at its times.
    #[serde(default)]
    pub scheduled_auto_in_progress: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub scheduled_auto_completed: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_transition_to_maintenance_state: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_transition_to_operational_state: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_transition_deliver_notifications_at_start: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_transition_deliver_notifications_at_end: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_tweet_at_beginning: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_tweet_on_completion: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_tweet_on_creation: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub auto_tweet_one_hour_before: Option<bool>,
    /// Ignored.
    #[serde(default)]
    pub reminder_intervals: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

impl IncidentFields {
    /// Affected components with statuses: the map, else the ids with the
    /// status the impact implies.
    fn affected(&self) -> Option<Vec<AffectedComponent>> {
        if let Some(map) = &self.components {
            return Some(
                map.iter()
                    .map(|(id, status)| AffectedComponent {
                        component: id.clone(),
                        status: (*status).into(),
                    })
                    .collect(),
            );
        }
        let status = match self.impact_override {
            Some(Impact::Critical | Impact::Major) => ComponentStatus::MajorOutage,
            Some(Impact::None) => ComponentStatus::DegradedPerformance,
            Some(Impact::Minor) | None => ComponentStatus::PartialOutage,
        };
        self.component_ids.as_ref().map(|ids| {
            ids.iter()
                .map(|id| AffectedComponent {
                    component: id.clone(),
                    status,
                })
                .collect()
        })
    }
}

fn incident_state(text: &str) -> Result<beacon_contract::messages::IncidentState, ApiError> {
    use beacon_contract::messages::IncidentState as S;
    match text {
        "investigating" => Ok(S::Investigating),
        "identified" => Ok(S::Identified),
        "monitoring" => Ok(S::Monitoring),
        "resolved" => Ok(S::Resolved),
        other => Err(ApiError::invalid(
            "incident.status",
            format!("{other:?} is not an incident status: investigating, identified, monitoring or resolved"),
        )),
    }
}

/// Opens an incident, or schedules maintenance when `scheduled_for` is set.
#[utoipa::path(post, path = "/v1/pages/{page_id}/incidents", tag = "statuspage", request_body = IncidentBody,
    params(("page_id" = String, Path, description = "Page id")),
    responses((status = 201, body = SpIncident), (status = 401), (status = 403), (status = 422)),
    security(("oauth_key" = ["incidents:write"])))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(page): Path<String>,
    JsonBody(body): JsonBody<IncidentBody>,
) -> Result<(StatusCode, Json<SpIncident>), ApiError> {
    let fields = body.incident;
    let name = fields
        .name
        .clone()
        .ok_or_else(|| ApiError::invalid("incident.name", "an incident needs a name"))?;
    if let Some(starts) = &fields.scheduled_for {
        let record = state.authorize(&headers, Some(&page), ApiScope::MaintenanceWrite)?;
        let starts_at_ms = parse_time(starts).ok_or_else(|| {
            ApiError::invalid("incident.scheduled_for", "is not an RFC 3339 time")
        })?;
        let ends = fields.scheduled_until.as_deref().ok_or_else(|| {
            ApiError::invalid(
                "incident.scheduled_until",
                "scheduled maintenance needs an end",
            )
        })?;
        let ends_at_ms = parse_time(ends).ok_or_else(|| {
            ApiError::invalid("incident.scheduled_until", "is not an RFC 3339 time")
        })?;
        let request = ScheduleMaintenanceRequest {
            page: page.clone(),
            title: name,
            body: fields.body.clone().unwrap_or_default(),
            starts_at_ms,
            ends_at_ms,
            components: fields
                .affected()
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.component)
                .collect(),
            recurrence: None,
            remind_before_ms: fields
                .scheduled_remind_prior
                .map(|remind| if remind { 3_600_000 } else { 0 }),
            verify_ms: None,
            actor: actor(&record),
            idempotency_key: idempotency_key(&headers)?,
        };
        let window: Window = call(
            &state.client,
            api::MAINTENANCE_SCHEDULE,
            &request,
            state.timeout,
        )
        .await?;
        let views = components(&state, &page).await?;
        return Ok((
            StatusCode::CREATED,
            Json(Components(&views).maintenance(&window, "")),
        ));
    }
    let record = state.authorize(&headers, Some(&page), ApiScope::IncidentsWrite)?;
    let request = CreateIncidentRequest {
        page: page.clone(),
        title: name,
        impact: fields.impact_override.unwrap_or(Impact::Minor).into(),
        state: fields.status.as_deref().map(incident_state).transpose()?,
        body: fields.body.clone().unwrap_or_default(),
        components: fields.affected().unwrap_or_default(),
        actor: actor(&record),
        idempotency_key: idempotency_key(&headers)?,
    };
    let incident: CoreIncident =
        call(&state.client, api::INCIDENT_CREATE, &request, state.timeout).await?;
    let views = components(&state, &page).await?;
    Ok((
        StatusCode::CREATED,
        Json(Components(&views).incident(&incident, "")),
    ))
}

/// One incident or scheduled maintenance; `None` when neither exists.
async fn find(
    state: &AppState,
    page: &str,
    id: &str,
) -> Result<Option<Result<CoreIncident, Window>>, ApiError> {
    let request = ShowIncidentRequest {
        page: page.to_owned(),
        incident: id.to_owned(),
    };
    match show(state, &request).await {
        Ok(incident) => return Ok(Some(Ok(incident))),
        Err(e) if e.status == StatusCode::NOT_FOUND => {}
        Err(e) => return Err(e),
    }
    Ok(windows(state, page, true)
        .await?
        .into_iter()
        .find(|w| w.state.maintenance == id)
        .map(Err))
}

/// One incident or scheduled maintenance.
#[utoipa::path(get, path = "/v1/pages/{page_id}/incidents/{incident_id}", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id"), ("incident_id" = String, Path, description = "Incident id")),
    responses((status = 200, body = SpIncident), (status = 401), (status = 403), (status = 404)),
    security(("oauth_key" = ["incidents:read"])))]
pub async fn show_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((page, id)): Path<(String, String)>,
) -> Result<Json<SpIncident>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::IncidentsRead)?;
    let found = find(&state, &page, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("page {page} has no incident {id:?}")))?;
    let views = components(&state, &page).await?;
    let shapes = Components(&views);
    Ok(Json(match found {
        Ok(incident) => shapes.incident(&incident, ""),
        Err(window) => shapes.maintenance(&window, ""),
    }))
}

/// Updates an incident (a timeline entry, or an edit of name and impact)
/// or moves a scheduled maintenance on.
#[utoipa::path(patch, path = "/v1/pages/{page_id}/incidents/{incident_id}", tag = "statuspage", request_body = IncidentBody,
    params(("page_id" = String, Path, description = "Page id"), ("incident_id" = String, Path, description = "Incident id")),
    responses((status = 200, body = SpIncident), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("oauth_key" = ["incidents:write"])))]
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((page, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<IncidentBody>,
) -> Result<Json<SpIncident>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::IncidentsRead)?;
    let fields = body.incident;
    let found = find(&state, &page, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("page {page} has no incident {id:?}")))?;
    match found {
        Err(window) => {
            let record = state.authorize(&headers, Some(&page), ApiScope::MaintenanceWrite)?;
            let subject = match fields.status.as_deref() {
                Some("in_progress") => api::MAINTENANCE_START,
                Some("verifying") => api::MAINTENANCE_VERIFY,
                Some("completed") => api::MAINTENANCE_COMPLETE,
                Some(other) => {
                    return Err(ApiError::invalid(
                        "incident.status",
                        format!("{other:?}: a scheduled maintenance moves to in_progress, verifying or completed"),
                    ))
                }
                None => return Err(ApiError::invalid("incident.status", "give the maintenance's new status")),
            };
            let request = ChangeMaintenanceRequest {
                page: page.clone(),
                maintenance: window.state.maintenance.clone(),
                expected_revision: None,
                body: fields.body.clone().unwrap_or_default(),
                actor: actor(&record),
            };
            let window: Window = call(&state.client, subject, &request, state.timeout).await?;
            let views = components(&state, &page).await?;
            Ok(Json(Components(&views).maintenance(&window, "")))
        }
        Ok(incident) => {
            let record = state.authorize(&headers, Some(&page), ApiScope::IncidentsWrite)?;
            let timeline = fields.status.is_some() || fields.body.is_some();
            let state_given = fields.status.as_deref().map(incident_state).transpose()?;
            let request = ChangeIncidentRequest {
                page: page.clone(),
                incident: incident.id.clone(),
                expected_revision: None,
                state: state_given,
                body: fields.body.clone().unwrap_or_default(),
                title: fields.name.clone(),
                impact: fields.impact_override.map(Into::into),
                components: fields.affected(),
                actor: actor(&record),
                idempotency_key: idempotency_key(&headers)?,
            };
            let subject = if timeline {
                if request.body.trim().is_empty() {
                    return Err(ApiError::invalid("incident.body", "an update needs a body"));
                }
                api::INCIDENT_UPDATE
            } else {
                api::INCIDENT_EDIT
            };
            let incident: CoreIncident =
                call(&state.client, subject, &request, state.timeout).await?;
            let views = components(&state, &page).await?;
            Ok(Json(Components(&views).incident(&incident, "")))
        }
    }
}

/// Cancels a scheduled maintenance. Incidents are resolved, not deleted.
#[utoipa::path(delete, path = "/v1/pages/{page_id}/incidents/{incident_id}", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id"), ("incident_id" = String, Path, description = "Incident id")),
    responses((status = 200, body = SpIncident), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("oauth_key" = ["maintenance:write"])))]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((page, id)): Path<(String, String)>,
) -> Result<Json<SpIncident>, ApiError> {
    let record = state.authorize(&headers, Some(&page), ApiScope::MaintenanceWrite)?;
    match find(&state, &page, &id).await? {
        None => Err(ApiError::not_found(format!(
            "page {page} has no incident {id:?}"
        ))),
        Some(Ok(_)) => Err(ApiError::invalid(
            "incident_id",
            "incidents are kept as a record; resolve it instead of deleting it",
        )),
        Some(Err(window)) => {
            let request = ChangeMaintenanceRequest {
                page: page.clone(),
                maintenance: window.state.maintenance.clone(),
                expected_revision: None,
                body: String::new(),
                actor: actor(&record),
            };
            let window: Window = call(
                &state.client,
                api::MAINTENANCE_CANCEL,
                &request,
                state.timeout,
            )
            .await?;
            let views = components(&state, &page).await?;
            Ok(Json(Components(&views).maintenance(&window, "")))
        }
    }
}

/// Every component with a status (a component with no decision yet is
/// left out: Statuspage has no "unknown").
#[utoipa::path(get, path = "/v1/pages/{page_id}/components", tag = "statuspage",
    operation_id = "statuspage_list_components",
    params(("page_id" = String, Path, description = "Page id")),
    responses((status = 200, body = [SpComponent]), (status = 401), (status = 403)),
    security(("oauth_key" = ["components:read"])))]
pub async fn list_components(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(page): Path<String>,
) -> Result<Json<Vec<SpComponent>>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::ComponentsRead)?;
    let views = components(&state, &page).await?;
    let shapes = Components(&views);
    Ok(Json(
        views
            .iter()
            .enumerate()
            .filter_map(|(position, view)| shapes.sp(view, position))
            .collect(),
    ))
}

fn one_component(views: &[ComponentView], page: &str, id: &str) -> Result<SpComponent, ApiError> {
    let (position, view) = views
        .iter()
        .enumerate()
        .find(|(_, v)| v.component == id)
        .ok_or_else(|| ApiError::not_found(format!("page {page} has no component {id:?}")))?;
    Components(views)
        .sp(view, position)
        .ok_or_else(|| ApiError::conflict(format!("component {id} has no status yet"), None))
}

/// One component.
#[utoipa::path(get, path = "/v1/pages/{page_id}/components/{component_id}", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id"), ("component_id" = String, Path, description = "Component id")),
    responses((status = 200, body = SpComponent), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("oauth_key" = ["components:read"])))]
pub async fn show_component(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((page, id)): Path<(String, String)>,
) -> Result<Json<SpComponent>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::ComponentsRead)?;
    let views = components(&state, &page).await?;
    one_component(&views, &page, &id).map(Json)
}

/// `{"component": {"status": …}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentBody {
    /// The component.
    pub component: ComponentFields,
}

/// What a component write may set: only its status (names and groups come
/// from the page config).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentFields {
    /// The status to show; it holds until cleared (`DELETE
    /// /api/v1/components/{id}/status`).
    pub status: Status,
}

/// Sets a component's status (an override).
#[utoipa::path(patch, path = "/v1/pages/{page_id}/components/{component_id}", tag = "statuspage", request_body = ComponentBody,
    params(("page_id" = String, Path, description = "Page id"), ("component_id" = String, Path, description = "Component id")),
    responses((status = 200, body = SpComponent), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("oauth_key" = ["components:write"])))]
pub async fn update_component(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((page, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ComponentBody>,
) -> Result<Json<SpComponent>, ApiError> {
    let record = state.authorize(&headers, Some(&page), ApiScope::ComponentsWrite)?;
    let request = SetComponentRequest {
        page: page.clone(),
        component: id.clone(),
        status: body.component.status.into(),
        reason: String::new(),
        expires_in_ms: None,
        actor: actor(&record),
    };
    let view: ComponentView =
        call(&state.client, api::COMPONENT_SET, &request, state.timeout).await?;
    let mut views = components(&state, &page).await?;
    // The decider applies an override a moment after storing it; answer
    // with what was asked for.
    for v in &mut views {
        if v.component == view.component {
            if let Some(record) = &mut v.record {
                record.status = body.component.status.into();
                record.source = beacon_contract::messages::StatusSource::Override;
            }
        }
    }
    one_component(&views, &page, &id).map(Json)
}
