//! Beacon's own routes, `/api/v1/…`. A key acts on its own page, so these
//! paths name no page. Each write goes to the decider's bus API with the
//! key as its actor, and is logged on the `audit` target.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use beacon_contract::api;
use beacon_contract::api::{
    ApiScope, ChangeIncidentRequest, ChangeMaintenanceRequest, ClearComponentRequest,
    ComponentRequest, ComponentView, CreateIncidentRequest, ListIncidentsRequest,
    ListMaintenanceRequest, ScheduleMaintenanceRequest, SetComponentRequest, ShowIncidentRequest,
};
use beacon_contract::incident::Incident as CoreIncident;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{AffectedComponent, ComponentStatus};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::dto::{
    parse_time, Affected, Component, Impact, Incident, IncidentStatus, Maintenance, Status,
};
use super::{AppState, JsonBody, LimitedBody};
use crate::bus::call;
use crate::error::ApiError;
use crate::keys::actor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/incidents",
            get(list_incidents).post(create_incident),
        )
        .route("/api/v1/incidents/{id}", get(show_incident))
        .route("/api/v1/incidents/{id}/updates", post(add_update))
        .route("/api/v1/components", get(list_components))
        .route(
            "/api/v1/components/{id}/status",
            put(set_status).delete(clear_status),
        )
        .route(
            "/api/v1/maintenance",
            get(list_maintenance).post(schedule_maintenance),
        )
        .route(
            "/api/v1/maintenance/{id}/{action}",
            post(change_maintenance),
        )
}

/// The `Idempotency-Key` header, checked.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?;
    if text.is_empty() || text.len() > 200 || text.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(Some(text.to_owned()))
}

fn audit(record: &crate::keys::ApiKeyRecord, what: &str, target: &str) {
    tracing::info!(target: "audit", key = %record.id, key_name = %record.name, page = %record.page, what, target, "API write.");
}

/// `?all=true` to include what is over.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Include resolved, dismissed, completed and cancelled.
    #[serde(default)]
    pub all: bool,
}

/// `POST /api/v1/incidents`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// Title.
    pub title: String,
    /// Impact.
    pub impact: Impact,
    /// State of the first update (default investigating).
    #[serde(default)]
    pub status: Option<IncidentStatus>,
    /// The first update's text.
    #[serde(default)]
    pub message: String,
    /// Ids of the affected components.
    #[serde(default)]
    pub components: Vec<String>,
    /// The status they show; by default from the impact (critical and
    /// major: major_outage, minor: partial_outage, none: degraded_performance).
    #[serde(default)]
    pub component_status: Option<Status>,
}

fn status_for(impact: Impact) -> ComponentStatus {
    match impact {
        Impact::Critical | Impact::Major => ComponentStatus::MajorOutage,
        Impact::Minor => ComponentStatus::PartialOutage,
        Impact::None => ComponentStatus::DegradedPerformance,
    }
}

/// Opens an incident; it notifies subscribers.
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents", request_body = NewIncident,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key opens one incident")),
    responses((status = 201, body = Incident), (status = 401), (status = 403), (status = 422), (status = 429), (status = 503)),
    security(("api_key" = ["incidents:write"])))]
pub async fn create_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewIncident>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let record = state.authorize(&headers, None, ApiScope::IncidentsWrite)?;
    let status = body
        .component_status
        .map_or_else(|| status_for(body.impact), Into::into);
    let request = CreateIncidentRequest {
        page: record.page.clone(),
        title: body.title,
        impact: body.impact.into(),
        state: body.status.map(Into::into),
        body: body.message,
        components: body
            .components
            .into_iter()
            .map(|component| AffectedComponent { component, status })
            .collect(),
        actor: actor(&record),
        idempotency_key: idempotency_key(&headers)?,
    };
    let incident: CoreIncident =
        call(&state.client, api::INCIDENT_CREATE, &request, state.timeout).await?;
    audit(&record, "incident.create", &incident.id);
    Ok((StatusCode::CREATED, Json(Incident::from(&incident))))
}

/// `POST /api/v1/incidents/{id}/updates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpdate {
    /// The incident's state from now on (resolved resolves it).
    pub status: IncidentStatus,
    /// What users are told.
    pub message: String,
    /// Component statuses from now on; none keeps them (resolving sets
    /// them operational).
    #[serde(default)]
    pub components: Option<Vec<Affected>>,
    /// The revision you saw; refused with 409 if it changed since.
    #[serde(default)]
    pub revision: Option<u64>,
}

/// Adds an update to an incident's timeline; it notifies subscribers.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/updates", tag = "incidents", request_body = NewUpdate,
    params(("id" = String, Path, description = "Incident id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key adds one update")),
    responses((status = 201, body = Incident), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422), (status = 429), (status = 503)),
    security(("api_key" = ["incidents:write"])))]
pub async fn add_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewUpdate>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let record = state.authorize(&headers, None, ApiScope::IncidentsWrite)?;
    let request = ChangeIncidentRequest {
        page: record.page.clone(),
        incident: id,
        expected_revision: body.revision,
        state: Some(body.status.into()),
        body: body.message,
        title: None,
        impact: None,
        components: body.components.map(|c| c.iter().map(Into::into).collect()),
        actor: actor(&record),
        idempotency_key: idempotency_key(&headers)?,
    };
    let incident: CoreIncident =
        call(&state.client, api::INCIDENT_UPDATE, &request, state.timeout).await?;
    audit(&record, "incident.update", &incident.id);
    Ok((StatusCode::CREATED, Json(Incident::from(&incident))))
}

/// Incidents of the key's page: open and proposed (with `all`, every one).
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(ListQuery),
    responses((status = 200, body = [Incident]), (status = 401), (status = 403)),
    security(("api_key" = ["incidents:read"])))]
pub async fn list_incidents(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::IncidentsRead)?;
    let request = ListIncidentsRequest {
        page: record.page.clone(),
        all: query.all,
    };
    let list: Vec<CoreIncident> =
        call(&state.client, api::INCIDENT_LIST, &request, state.timeout).await?;
    Ok(Json(list.iter().map(Incident::from).collect()))
}

/// One incident with its timeline.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = Incident), (status = 401), (status = 403), (status = 404)),
    security(("api_key" = ["incidents:read"])))]
pub async fn show_incident(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::IncidentsRead)?;
    let request = ShowIncidentRequest {
        page: record.page.clone(),
        incident: id,
    };
    let incident = show(&state, &request).await?;
    Ok(Json(Incident::from(&incident)))
}

/// Reads an incident, turning "no such incident" into a 404.
pub async fn show(
    state: &AppState,
    request: &ShowIncidentRequest,
) -> Result<CoreIncident, ApiError> {
    call(&state.client, api::INCIDENT_SHOW, request, state.timeout)
        .await
        .map_err(|e| {
            if e.status == StatusCode::UNPROCESSABLE_ENTITY
                && e.errors.iter().any(|x| x.location == "incident")
            {
                ApiError::not_found(e.message)
            } else {
                e
            }
        })
}

/// Every component of the key's page with its status.
#[utoipa::path(get, path = "/api/v1/components", tag = "components",
    responses((status = 200, body = [Component]), (status = 401), (status = 403)),
    security(("api_key" = ["components:read"])))]
pub async fn list_components(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Component>>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::ComponentsRead)?;
    let views = components(&state, &record.page).await?;
    Ok(Json(views.iter().map(Component::from).collect()))
}

/// Every component of `page`, as the decider shows them.
pub async fn components(state: &AppState, page: &str) -> Result<Vec<ComponentView>, ApiError> {
    let request = ComponentRequest {
        page: page.to_owned(),
        component: None,
    };
    call(&state.client, api::COMPONENT_LIST, &request, state.timeout).await
}

/// `PUT /api/v1/components/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    /// The status to show; it wins over automation until cleared or expired.
    pub status: Status,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// How long, e.g. `30m`; by default until cleared.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// Overrides a component's status.
#[utoipa::path(put, path = "/api/v1/components/{id}/status", tag = "components", request_body = SetStatus,
    params(("id" = String, Path, description = "Component id")),
    responses((status = 200, body = Component), (status = 401), (status = 403), (status = 422)),
    security(("api_key" = ["components:write"])))]
pub async fn set_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SetStatus>,
) -> Result<Json<Component>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::ComponentsWrite)?;
    let expires_in_ms = match &body.expires_in {
        Some(text) => Some(
            humantime::parse_duration(text)
                .map_err(|e| {
                    ApiError::invalid(
                        "expires_in",
                        format!("{text:?} is not a duration ({e}); write e.g. 30m"),
                    )
                })?
                .as_millis() as u64,
        ),
        None => None,
    };
    let request = SetComponentRequest {
        page: record.page.clone(),
        component: id.clone(),
        status: body.status.into(),
        reason: body.reason,
        expires_in_ms,
        actor: actor(&record),
    };
    let view: ComponentView =
        call(&state.client, api::COMPONENT_SET, &request, state.timeout).await?;
    audit(&record, "component.set", &id);
    Ok(Json(Component::from(&view)))
}

/// Hands a component back to automation.
#[utoipa::path(delete, path = "/api/v1/components/{id}/status", tag = "components",
    params(("id" = String, Path, description = "Component id")),
    responses((status = 200, body = Component), (status = 401), (status = 403), (status = 422)),
    security(("api_key" = ["components:write"])))]
pub async fn clear_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Component>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::ComponentsWrite)?;
    let request = ClearComponentRequest {
        page: record.page.clone(),
        component: id.clone(),
        actor: actor(&record),
    };
    let view: ComponentView =
        call(&state.client, api::COMPONENT_CLEAR, &request, state.timeout).await?;
    audit(&record, "component.clear", &id);
    Ok(Json(Component::from(&view)))
}

/// Maintenance windows of the key's page not yet over (with `all`, every one).
#[utoipa::path(get, path = "/api/v1/maintenance", tag = "maintenance", params(ListQuery),
    responses((status = 200, body = [Maintenance]), (status = 401), (status = 403)),
    security(("api_key" = ["maintenance:read"])))]
pub async fn list_maintenance(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<Maintenance>>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::MaintenanceRead)?;
    let request = ListMaintenanceRequest {
        page: record.page.clone(),
        all: query.all,
    };
    let windows: Vec<Window> = call(
        &state.client,
        api::MAINTENANCE_LIST,
        &request,
        state.timeout,
    )
    .await?;
    Ok(Json(windows.iter().map(Maintenance::from).collect()))
}

/// `POST /api/v1/maintenance`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMaintenance {
    /// Title.
    pub title: String,
    /// Text for users.
    #[serde(default)]
    pub message: String,
    /// Start, RFC 3339.
    pub starts_at: String,
    /// End, RFC 3339.
    pub ends_at: String,
    /// Components under maintenance.
    pub components: Vec<String>,
    /// `RRULE:…` or a cron expression, for a recurring series.
    #[serde(default)]
    pub recurrence: Option<String>,
    /// Reminder before the start, e.g. `1h` (default); `0s` for none.
    #[serde(default)]
    pub remind_before: Option<String>,
    /// How long it stays verifying after its end, e.g. `10m`.
    #[serde(default)]
    pub verify_for: Option<String>,
}

fn duration_ms(field: &str, text: &Option<String>) -> Result<Option<u64>, ApiError> {
    text.as_deref()
        .map(|t| {
            humantime::parse_duration(t)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| ApiError::invalid(field, format!("{t:?} is not a duration ({e})")))
        })
        .transpose()
}

/// Schedules a maintenance window or a recurring series.
#[utoipa::path(post, path = "/api/v1/maintenance", tag = "maintenance", request_body = NewMaintenance,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key schedules one window")),
    responses((status = 201, body = Maintenance), (status = 401), (status = 403), (status = 422)),
    security(("api_key" = ["maintenance:write"])))]
pub async fn schedule_maintenance(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewMaintenance>,
) -> Result<(StatusCode, Json<Maintenance>), ApiError> {
    let record = state.authorize(&headers, None, ApiScope::MaintenanceWrite)?;
    let starts_at_ms = parse_time(&body.starts_at).ok_or_else(|| {
        ApiError::invalid(
            "starts_at",
            "is not an RFC 3339 time, e.g. 2026-12-01T03:00:00Z",
        )
    })?;
    let ends_at_ms = parse_time(&body.ends_at).ok_or_else(|| {
        ApiError::invalid(
            "ends_at",
            "is not an RFC 3339 time, e.g. 2026-12-01T04:00:00Z",
        )
    })?;
    let request = ScheduleMaintenanceRequest {
        page: record.page.clone(),
        title: body.title,
        body: body.message,
        starts_at_ms,
        ends_at_ms,
        components: body.components,
        recurrence: body.recurrence,
        remind_before_ms: duration_ms("remind_before", &body.remind_before)?,
        verify_ms: duration_ms("verify_for", &body.verify_for)?,
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
    audit(&record, "maintenance.schedule", &window.state.maintenance);
    Ok((StatusCode::CREATED, Json(Maintenance::from(&window))))
}

/// The optional body of a maintenance change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceChange {
    /// Text for users.
    #[serde(default)]
    pub message: String,
    /// The revision you saw.
    #[serde(default)]
    pub revision: Option<u64>,
}

/// Starts, verifies, completes or cancels a window now.
#[utoipa::path(post, path = "/api/v1/maintenance/{id}/{action}", tag = "maintenance", request_body = Option<MaintenanceChange>,
    params(("id" = String, Path, description = "Maintenance id"),
        ("action" = String, Path, description = "start, verify, complete or cancel")),
    responses((status = 200, body = Maintenance), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("api_key" = ["maintenance:write"])))]
pub async fn change_maintenance(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Maintenance>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::MaintenanceWrite)?;
    let subject = match action.as_str() {
        "start" => api::MAINTENANCE_START,
        "verify" => api::MAINTENANCE_VERIFY,
        "complete" => api::MAINTENANCE_COMPLETE,
        "cancel" => api::MAINTENANCE_CANCEL,
        _ => {
            return Err(ApiError::not_found(
                "no such route: use start, verify, complete or cancel",
            ))
        }
    };
    let change: MaintenanceChange = if body.is_empty() {
        MaintenanceChange::default()
    } else {
        let mut deserializer = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            ApiError::invalid(
                if path.is_empty() { "body" } else { &path },
                e.into_inner().to_string(),
            )
        })?
    };
    let request = ChangeMaintenanceRequest {
        page: record.page.clone(),
        maintenance: id.clone(),
        expected_revision: change.revision,
        body: change.message,
        actor: actor(&record),
    };
    let window: Window = call(&state.client, subject, &request, state.timeout).await?;
    audit(&record, subject.name(), &id);
    Ok(Json(Maintenance::from(&window)))
}
