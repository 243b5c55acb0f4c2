//! The changelog for operators' tools, `/api/v1/changelog` (the page is
//! the key's). The publisher owns changelog entries; a publish here is a
//! request to its bus API (`beacon.api.changelog.publish`), which validates
//! the entry, appends the event and re-renders the page and feeds.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use beacon_contract::api;
use beacon_contract::api::{
    ApiScope, ChangelogList, ChangelogView, ListChangelogRequest, PublishChangelogRequest,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::dto::{parse_time, rfc3339};
use super::seed::idempotency_key;
use super::subscribers::query_of;
use super::{AppState, JsonBody};
use crate::bus::call;
use crate::error::ApiError;
use crate::keys::actor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/changelog",
        get(list_changelog).post(publish_changelog),
    )
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(list_changelog, publish_changelog),
    components(schemas(Category, NewEntry, Entry)),
    tags((name = "changelog", description = "Product changelog entries, kept by the publisher"))
)]
pub struct ChangelogDoc;

/// What an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Something new.
    NewFeature,
    /// Something better.
    Improvement,
    /// Something fixed.
    Fix,
    /// Anything else worth saying.
    Announcement,
}

impl Category {
    fn as_str(self) -> &'static str {
        match self {
            Category::NewFeature => "new_feature",
            Category::Improvement => "improvement",
            Category::Fix => "fix",
            Category::Announcement => "announcement",
        }
    }
}

/// `POST /api/v1/changelog`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// Title (text).
    pub title: String,
    /// Body, markdown; the page shows it as sanitized HTML.
    pub body: String,
    /// Category.
    pub category: Category,
    /// Ids of the components it is about.
    #[serde(default)]
    pub components: Vec<String>,
    /// Publication date, RFC 3339; by default now.
    #[serde(default)]
    pub published_at: Option<String>,
}

/// A changelog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// Entry id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Body, markdown.
    pub body: String,
    /// `new_feature`, `improvement`, `fix` or `announcement`.
    pub category: String,
    /// Components it is about.
    pub components: Vec<String>,
    /// Publication date shown with it.
    pub published_at: String,
    /// First published.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Whether it was withdrawn.
    pub withdrawn: bool,
    /// Who wrote this version.
    pub author: String,
    /// The revision an edit names.
    pub revision: u64,
    /// Image files under the page's `assets/`.
    pub images: Vec<String>,
}

impl From<&ChangelogView> for Entry {
    fn from(view: &ChangelogView) -> Self {
        let e = &view.entry;
        let published = if e.published_at_ms == 0 {
            view.created_at_ms
        } else {
            e.published_at_ms
        };
        Entry {
            id: e.entry.clone(),
            title: e.title.clone(),
            body: e.body_markdown.clone(),
            category: e.category.clone(),
            components: e.components.clone(),
            published_at: rfc3339(published),
            created_at: rfc3339(view.created_at_ms),
            updated_at: rfc3339(view.updated_at_ms),
            withdrawn: e.withdrawn,
            author: e.actor.clone(),
            revision: view.revision,
            images: e.images.clone(),
        }
    }
}

/// `?all=true` to include withdrawn entries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Include withdrawn entries.
    #[serde(default)]
    pub all: bool,
}

/// Publishes a changelog entry on the key's page; the page and its feeds
/// show it after the next render.
#[utoipa::path(post, path = "/api/v1/changelog", tag = "changelog", request_body = NewEntry,
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key publishes one entry")),
    responses((status = 201, body = Entry), (status = 401), (status = 403), (status = 422), (status = 429), (status = 503)),
    security(("api_key" = ["changelog:write"])))]
pub async fn publish_changelog(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewEntry>,
) -> Result<(StatusCode, Json<Entry>), ApiError> {
    let record = state.authorize(&headers, None, ApiScope::ChangelogWrite)?;
    let published_at_ms = match &body.published_at {
        Some(text) => Some(parse_time(text).ok_or_else(|| {
            ApiError::invalid(
                "published_at",
                "is not an RFC 3339 time, e.g. 2026-12-01T09:00:00Z",
            )
        })?),
        None => None,
    };
    let request = PublishChangelogRequest {
        page: record.page.clone(),
        title: body.title,
        body_markdown: body.body,
        category: body.category.as_str().to_owned(),
        components: body.components,
        published_at_ms,
        images: Vec::new(),
        actor: actor(&record),
        idempotency_key: idempotency_key(&headers)?,
    };
    let view: ChangelogView = call(
        &state.client,
        api::CHANGELOG_PUBLISH,
        &request,
        state.timeout,
    )
    .await
    .map_err(|e| {
        if e.status != StatusCode::UNPROCESSABLE_ENTITY {
            return e;
        }
        let mut errors = e.errors;
        for error in &mut errors {
            if error.location == "body_markdown" {
                error.location = "body".to_owned();
            }
        }
        ApiError::invalid_all(errors)
    })?;
    tracing::info!(target: "audit", key = %record.id, key_name = %record.name, page = %record.page,
        what = "changelog.publish", target = %view.entry.entry, "API write.");
    Ok((StatusCode::CREATED, Json(Entry::from(&view))))
}

/// The key's page's changelog, newest publication first.
#[utoipa::path(get, path = "/api/v1/changelog", tag = "changelog", params(ListQuery),
    responses((status = 200, body = [Entry]), (status = 401), (status = 403), (status = 503)),
    security(("api_key" = ["changelog:read"])))]
pub async fn list_changelog(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::ChangelogRead)?;
    let query: ListQuery = query_of(&uri)?;
    let request = ListChangelogRequest {
        page: record.page.clone(),
        all: query.all,
    };
    let list: ChangelogList =
        call(&state.client, api::CHANGELOG_LIST, &request, state.timeout).await?;
    Ok(Json(list.iter().map(Entry::from).collect()))
}
