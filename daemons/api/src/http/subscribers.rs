//! Subscribers for operators' tools: Beacon's `/api/v1/subscribers` (the
//! page is the key's) and Statuspage's `/v1/pages/{page_id}/subscribers`
//! with its field names. The notifier owns subscribers; every request here
//! becomes a request to its bus API (`beacon.api.subscriber.…`), which
//! validates addresses, refuses duplicates and sends the double opt-in.
//!
//! Statuspage gives a subscriber one channel; Beacon gives it endpoints,
//! at most one per kind. A Statuspage write maps `endpoint` to a webhook,
//! `email` to email and `phone_number` to SMS; with more than one, the
//! subscriber gets each update once, on the first of them that is active.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use beacon_contract::api;
use beacon_contract::api::{
    AddSubscriberRequest, ApiScope, EraseRequest, Erased, ListSubscribersRequest, NewSubscriber,
    RemovedSubscriber, SubscriberList, SubscriberRequest, SubscriberView, SUBSCRIBER_LIST_MAX,
};
use beacon_contract::messages::{
    ChannelKind, DedupMode, EndpointState, Subscriber as CoreSubscriber, SubscriberChannel,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::dto::rfc3339;
use super::seed::idempotency_key;
use super::{AppState, JsonBody};
use crate::bus::call;
use crate::error::ApiError;
use crate::keys::actor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/subscribers",
            get(list_subscribers).post(create_subscriber),
        )
        .route(
            "/api/v1/subscribers/{id}",
            get(show_subscriber).delete(remove_subscriber),
        )
        .route(
            "/v1/pages/{page_id}/subscribers",
            get(sp_list_subscribers).post(sp_create_subscriber),
        )
        .route(
            "/v1/pages/{page_id}/subscribers/{subscriber_id}",
            get(sp_show_subscriber).delete(sp_remove_subscriber),
        )
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_subscribers, create_subscriber, show_subscriber, remove_subscriber,
        sp_list_subscribers, sp_create_subscriber, sp_show_subscriber, sp_remove_subscriber,
    ),
    components(schemas(
        Endpoint, EndpointOut, EndpointStateOut, Dedup, NewSubscriberBody, Subscriber,
        SubscriberPage, SpSubscriberBody, SpSubscriberFields, SpSubscriber, SpState, SpMode,
    )),
    tags((name = "subscribers", description = "Who is told, kept by the notifier"))
)]
pub struct SubscribersDoc;

fn audit(record: &crate::keys::ApiKeyRecord, what: &str, target: &str) {
    tracing::info!(target: "audit", key = %record.id, key_name = %record.name, page = %record.page, what, target, "API write.");
}

/// Where to deliver: one address of one channel kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Endpoint {
    /// Email (double opt-in unless `confirmed`).
    Email {
        /// Address.
        address: String,
    },
    /// SMS.
    Sms {
        /// E.164 phone number, e.g. `+14155550100`.
        phone: String,
    },
    /// A signed HTTP POST (Standard Webhooks).
    Webhook {
        /// Target URL.
        url: String,
    },
    /// A Slack incoming webhook.
    Slack {
        /// Incoming-webhook URL.
        url: String,
    },
    /// A Microsoft Teams incoming webhook.
    Teams {
        /// Incoming-webhook URL.
        url: String,
    },
}

impl From<Endpoint> for SubscriberChannel {
    fn from(endpoint: Endpoint) -> Self {
        match endpoint {
            Endpoint::Email { address } => SubscriberChannel::Email { address },
            Endpoint::Sms { phone } => SubscriberChannel::Sms { phone },
            Endpoint::Webhook { url } => SubscriberChannel::Webhook { url },
            Endpoint::Slack { url } => SubscriberChannel::Slack { url },
            Endpoint::Teams { url } => SubscriberChannel::Teams { url },
        }
    }
}

/// Whether an endpoint gets messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStateOut {
    /// Waiting for its double opt-in: gets only the confirmation.
    Pending,
    /// Gets messages.
    Active,
    /// Stopped by its owner (SMS STOP).
    Stopped,
    /// Refused for good (a webhook answered 410 Gone).
    Disabled,
}

impl From<EndpointState> for EndpointStateOut {
    fn from(state: EndpointState) -> Self {
        match state {
            EndpointState::Pending => EndpointStateOut::Pending,
            EndpointState::Active => EndpointStateOut::Active,
            EndpointState::Stopped => EndpointStateOut::Stopped,
            EndpointState::Disabled => EndpointStateOut::Disabled,
        }
    }
}

/// Every endpoint, or only the first active one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dedup {
    /// Each update on every active endpoint.
    #[default]
    Every,
    /// Each update once, on the first active endpoint in order.
    First,
}

impl From<Dedup> for DedupMode {
    fn from(dedup: Dedup) -> Self {
        match dedup {
            Dedup::Every => DedupMode::Every,
            Dedup::First => DedupMode::First,
        }
    }
}

impl From<DedupMode> for Dedup {
    fn from(dedup: DedupMode) -> Self {
        match dedup {
            DedupMode::Every => Dedup::Every,
            DedupMode::First => Dedup::First,
        }
    }
}

/// `POST /api/v1/subscribers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscriberBody {
    /// Where to deliver, in order of preference; at most one per kind.
    pub endpoints: Vec<Endpoint>,
    /// Components of interest; none means the whole page.
    #[serde(default)]
    pub components: Vec<String>,
    /// Components whose updates go at once, never held in a batching window.
    #[serde(default)]
    pub instant: Vec<String>,
    /// Every endpoint (default) or the first active one.
    #[serde(default)]
    pub dedup: Dedup,
    /// Get the changelog digest by email.
    #[serde(default)]
    pub digest: bool,
    /// The people agreed elsewhere: skip the email double opt-in.
    #[serde(default)]
    pub confirmed: bool,
}

/// An endpoint as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointOut {
    /// Kind and address.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Whether it gets messages.
    pub state: EndpointStateOut,
    /// When it entered its state, RFC 3339.
    pub since: String,
}

/// A subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subscriber {
    /// Subscriber id.
    pub id: String,
    /// Where it is told, in order of preference.
    pub endpoints: Vec<EndpointOut>,
    /// Components of interest; empty: the whole page.
    pub components: Vec<String>,
    /// Components whose updates go at once.
    pub instant: Vec<String>,
    /// Every endpoint or the first active one.
    pub dedup: Dedup,
    /// Gets the changelog digest.
    pub digest: bool,
    /// Created, RFC 3339.
    pub created_at: String,
    /// `whsec_…`: the secret its webhook deliveries are signed with (shown
    /// when it has a webhook endpoint, on create and show).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

fn endpoint_of(channel: &SubscriberChannel) -> Endpoint {
    match channel.clone() {
        SubscriberChannel::Email { address } => Endpoint::Email { address },
        SubscriberChannel::Sms { phone } => Endpoint::Sms { phone },
        SubscriberChannel::Webhook { url } => Endpoint::Webhook { url },
        SubscriberChannel::Slack { url } => Endpoint::Slack { url },
        SubscriberChannel::Teams { url } => Endpoint::Teams { url },
    }
}

impl Subscriber {
    fn from_core(s: &CoreSubscriber, webhook_secret: Option<String>) -> Self {
        Subscriber {
            id: s.subscriber.clone(),
            endpoints: s
                .endpoints
                .iter()
                .map(|e| EndpointOut {
                    endpoint: endpoint_of(&e.channel),
                    state: e.state.into(),
                    since: rfc3339(e.since_ms),
                })
                .collect(),
            components: s.components.clone(),
            instant: s.instant.clone(),
            dedup: s.dedup.into(),
            digest: s.digest,
            created_at: rfc3339(s.created_at_ms),
            webhook_secret,
        }
    }
}

impl From<&SubscriberView> for Subscriber {
    fn from(view: &SubscriberView) -> Self {
        Subscriber::from_core(&view.subscriber, view.webhook_secret.clone())
    }
}

/// One slice of a page's subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriberPage {
    /// This slice, in id order.
    pub subscribers: Vec<Subscriber>,
    /// Subscribers the page has in all.
    pub total: u64,
    /// Ask again with `after` set to this; absent at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `?after=…&limit=…`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only subscribers after this id (the previous reply's `next`).
    #[serde(default)]
    pub after: Option<String>,
    /// Most subscribers in the reply (default and at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

async fn slice(
    state: &AppState,
    page: &str,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<SubscriberList, ApiError> {
    let request = ListSubscribersRequest {
        page: page.to_owned(),
        after,
        limit,
    };
    call(&state.client, api::SUBSCRIBER_LIST, &request, state.timeout).await
}

/// A query string read strictly: an unknown parameter or a bad value is a
/// 422 naming it (`state`, or `query` with the unknown name in the message).
pub fn query_of<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    let text = uri.query().unwrap_or_default();
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(text.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = if path.is_empty() || path == "." {
            "query".to_owned()
        } else {
            path
        };
        ApiError::invalid(&field, e.into_inner().to_string())
    })
}

/// Turns the notifier's "no such subscriber" into a 404.
fn missing_is_404(e: ApiError) -> ApiError {
    if e.status == StatusCode::UNPROCESSABLE_ENTITY
        && e.errors.iter().any(|x| x.location == "subscriber")
    {
        ApiError::not_found(e.message)
    } else {
        e
    }
}

async fn fetch(state: &AppState, page: &str, id: String) -> Result<SubscriberView, ApiError> {
    let request = SubscriberRequest {
        page: page.to_owned(),
        subscriber: id,
        actor: String::new(),
    };
    call(&state.client, api::SUBSCRIBER_SHOW, &request, state.timeout)
        .await
        .map_err(missing_is_404)
}

async fn delete(
    state: &AppState,
    record: &crate::keys::ApiKeyRecord,
    page: &str,
    id: String,
) -> Result<RemovedSubscriber, ApiError> {
    let request = SubscriberRequest {
        page: page.to_owned(),
        subscriber: id,
        actor: actor(record),
    };
    let removed: RemovedSubscriber = call(
        &state.client,
        api::SUBSCRIBER_REMOVE,
        &request,
        state.timeout,
    )
    .await
    .map_err(missing_is_404)?;
    audit(record, "subscriber.remove", &removed.subscriber);
    Ok(removed)
}

/// A conflict's current subscriber in the route's own shape.
fn reshape_current<T: Serialize>(
    mut e: ApiError,
    shape: impl Fn(&SubscriberView) -> T,
) -> ApiError {
    if e.status == StatusCode::CONFLICT {
        e.current = e
            .current
            .take()
            .and_then(|c| serde_json::from_value::<SubscriberView>(c).ok())
            .and_then(|view| serde_json::to_value(shape(&view)).ok());
    }
    e
}

/// Whether `existing` has exactly the endpoints `new` asks for.
fn same_endpoints(existing: &CoreSubscriber, new: &NewSubscriber) -> bool {
    existing.endpoints.len() == new.endpoints.len()
        && existing.endpoints.iter().zip(&new.endpoints).all(|(e, n)| {
            e.channel.kind() == n.kind()
                && e.channel.address().trim().to_lowercase() == n.address().trim().to_lowercase()
        })
}

/// Adds a subscriber; `StatusCode::CREATED` with it, or, for a retry
/// (`Idempotency-Key` sent) that finds the subscriber it made before with
/// the same endpoints, `StatusCode::OK` with that one.
async fn add(
    state: &AppState,
    record: &crate::keys::ApiKeyRecord,
    page: &str,
    subscriber: NewSubscriber,
    confirmed: bool,
    retry: bool,
) -> Result<(StatusCode, SubscriberView), ApiError> {
    let request = AddSubscriberRequest {
        page: page.to_owned(),
        subscriber,
        confirmed,
        actor: actor(record),
    };
    match call::<_, SubscriberView>(&state.client, api::SUBSCRIBER_ADD, &request, state.timeout)
        .await
    {
        Ok(view) => {
            audit(record, "subscriber.add", &view.subscriber.subscriber);
            Ok((StatusCode::CREATED, view))
        }
        Err(e) if retry && e.status == StatusCode::CONFLICT => {
            let found = e
                .current
                .clone()
                .and_then(|c| serde_json::from_value::<SubscriberView>(c).ok())
                .filter(|view| same_endpoints(&view.subscriber, &request.subscriber));
            match found {
                Some(view) => Ok((StatusCode::OK, view)),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The key's page's subscribers, a slice at a time in id order.
#[utoipa::path(get, path = "/api/v1/subscribers", tag = "subscribers", params(ListQuery),
    responses((status = 200, body = SubscriberPage), (status = 401), (status = 403), (status = 422), (status = 503)),
    security(("api_key" = ["subscribers:read"])))]
pub async fn list_subscribers(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<SubscriberPage>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::SubscribersRead)?;
    let query: ListQuery = query_of(&uri)?;
    let list = slice(&state, &record.page, query.after, query.limit).await?;
    Ok(Json(SubscriberPage {
        subscribers: list
            .subscribers
            .iter()
            .map(|s| Subscriber::from_core(s, None))
            .collect(),
        total: list.total,
        next: list.next,
    }))
}

/// Subscribes someone. Email endpoints wait for their double opt-in
/// unless `confirmed`; an address the page already has is a 409 with that
/// subscriber, except for a retry with an `Idempotency-Key` that finds the
/// same endpoints: 200 with the subscriber.
#[utoipa::path(post, path = "/api/v1/subscribers", tag = "subscribers", request_body = NewSubscriberBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry that finds the same subscriber answers 200 with it")),
    responses((status = 201, body = Subscriber), (status = 200, body = Subscriber), (status = 401), (status = 403), (status = 409), (status = 422), (status = 429), (status = 503)),
    security(("api_key" = ["subscribers:write"])))]
pub async fn create_subscriber(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewSubscriberBody>,
) -> Result<(StatusCode, Json<Subscriber>), ApiError> {
    let record = state.authorize(&headers, None, ApiScope::SubscribersWrite)?;
    let new = NewSubscriber {
        endpoints: body.endpoints.into_iter().map(Into::into).collect(),
        components: body.components,
        instant: body.instant,
        dedup: body.dedup.into(),
        digest: body.digest,
    };
    let retry = idempotency_key(&headers)?.is_some();
    let (status, view) = add(&state, &record, &record.page, new, body.confirmed, retry)
        .await
        .map_err(|e| reshape_current(relocate(e, beacon_field), |v| Subscriber::from(v)))?;
    Ok((status, Json(Subscriber::from(&view))))
}

/// One subscriber.
#[utoipa::path(get, path = "/api/v1/subscribers/{id}", tag = "subscribers",
    params(("id" = String, Path, description = "Subscriber id")),
    responses((status = 200, body = Subscriber), (status = 401), (status = 403), (status = 404), (status = 503)),
    security(("api_key" = ["subscribers:read"])))]
pub async fn show_subscriber(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Subscriber>, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::SubscribersRead)?;
    let view = fetch(&state, &record.page, id).await?;
    Ok(Json(Subscriber::from(&view)))
}

/// `?erase=true` to erase rather than remove.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Also erase every plaintext trace of its addresses and keep a keyed
    /// hash of them, so an import or an operator cannot add them again
    /// (only their owner, by signing up with confirmation).
    #[serde(default)]
    pub erase: bool,
}

/// Removes a subscriber and everything it asked for; with `erase`, at its
/// owner's request, as the right to erasure needs.
#[utoipa::path(delete, path = "/api/v1/subscribers/{id}", tag = "subscribers",
    params(("id" = String, Path, description = "Subscriber id"), RemoveQuery),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 422), (status = 503)),
    security(("api_key" = ["subscribers:write"])))]
pub async fn remove_subscriber(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let record = state.authorize(&headers, None, ApiScope::SubscribersWrite)?;
    let query: RemoveQuery = query_of(&uri)?;
    let page = record.page.clone();
    if !query.erase {
        delete(&state, &record, &page, id).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    fetch(&state, &page, id.clone()).await?;
    let request = EraseRequest {
        page,
        address: None,
        subscriber: Some(id.clone()),
        actor: actor(&record),
    };
    let _: Erased = call(
        &state.client,
        api::SUBSCRIBER_ERASE,
        &request,
        state.timeout,
    )
    .await
    .map_err(missing_is_404)?;
    audit(&record, "subscriber.erase", &id);
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// Statuspage's shapes.
// ---------------------------------------------------------------------------

/// `{"subscriber": {…}}`, as Statuspage's clients send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpSubscriberBody {
    /// The subscriber.
    pub subscriber: SpSubscriberFields,
}

/// A Statuspage subscriber write: at least one of `email`, `phone_number`
/// and `endpoint`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpSubscriberFields {
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number for SMS, E.164 (`+14155550100`).
    #[serde(default)]
    pub phone_number: Option<String>,
    /// Accepted when `phone_number` is already E.164; Beacon does not
    /// complete national numbers.
    #[serde(default)]
    pub phone_country: Option<String>,
    /// Webhook URL.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Components of interest; none: the whole page.
    #[serde(default)]
    pub component_ids: Option<Vec<String>>,
    /// Skip the email double opt-in.
    #[serde(default)]
    pub skip_confirmation_notification: Option<bool>,
    /// Ignored: Beacon has no audience-specific pages.
    #[serde(default)]
    pub page_access_user: Option<serde_json::Value>,
}

/// A subscriber as Statuspage's management API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpSubscriber {
    /// Subscriber id.
    pub id: String,
    /// `email`, `sms`, `webhook`, `slack` or `teams`: its first endpoint's kind.
    pub mode: String,
    /// Email address.
    pub email: Option<String>,
    /// Webhook (or Slack, Teams) URL.
    pub endpoint: Option<String>,
    /// Phone number, E.164.
    pub phone_number: Option<String>,
    /// Not kept: numbers are E.164.
    pub phone_country: Option<String>,
    /// The phone number as shown.
    pub display_phone_number: Option<String>,
    /// Not used.
    pub obfuscated_channel_name: Option<String>,
    /// Not used.
    pub workspace_name: Option<String>,
    /// When its endpoints were stopped or disabled, if every one is.
    pub quarantined_at: Option<String>,
    /// Not used.
    pub purge_at: Option<String>,
    /// Component ids of interest; empty: the whole page.
    pub components: Vec<String>,
    /// Not used.
    pub page_access_user_id: Option<String>,
    /// False while an email endpoint waits for its confirmation.
    pub skip_confirmation_notification: bool,
    /// Created.
    pub created_at: String,
    /// Each endpoint's state (Beacon's own field).
    pub beacon_endpoints: Vec<EndpointOut>,
}

impl From<&CoreSubscriber> for SpSubscriber {
    fn from(s: &CoreSubscriber) -> Self {
        let address = |kind: ChannelKind| s.endpoint(kind).map(|e| e.channel.address().to_owned());
        let url = address(ChannelKind::Webhook)
            .or_else(|| address(ChannelKind::Slack))
            .or_else(|| address(ChannelKind::Teams));
        let phone = address(ChannelKind::Sms);
        let quarantined = !s.endpoints.is_empty()
            && s.endpoints
                .iter()
                .all(|e| matches!(e.state, EndpointState::Stopped | EndpointState::Disabled));
        SpSubscriber {
            id: s.subscriber.clone(),
            mode: s
                .endpoints
                .first()
                .map_or("email", |e| e.channel.kind().as_str())
                .to_owned(),
            email: address(ChannelKind::Email),
            endpoint: url,
            display_phone_number: phone.clone(),
            phone_number: phone,
            phone_country: None,
            obfuscated_channel_name: None,
            workspace_name: None,
            quarantined_at: quarantined
                .then(|| s.endpoints.iter().map(|e| e.since_ms).max().map(rfc3339))
                .flatten(),
            purge_at: None,
            components: s.components.clone(),
            page_access_user_id: None,
            skip_confirmation_notification: !s
                .endpoints
                .iter()
                .any(|e| e.state == EndpointState::Pending),
            created_at: rfc3339(s.created_at_ms),
            beacon_endpoints: Subscriber::from_core(s, None).endpoints,
        }
    }
}

/// Statuspage's subscriber states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpState {
    /// An endpoint gets messages (the default).
    #[default]
    Active,
    /// Waiting for the email confirmation, nothing active yet.
    Unconfirmed,
    /// Every endpoint stopped or disabled.
    Quarantined,
    /// Every subscriber.
    All,
}

/// Statuspage's subscriber kinds (`integration_partner` matches none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpMode {
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// Webhook.
    Webhook,
    /// Slack.
    Slack,
    /// Teams.
    Teams,
    /// Statuspage's partner integrations; Beacon has none.
    IntegrationPartner,
}

fn sp_state(s: &CoreSubscriber) -> SpState {
    if s.endpoints.iter().any(|e| e.state == EndpointState::Active) {
        SpState::Active
    } else if s
        .endpoints
        .iter()
        .any(|e| e.state == EndpointState::Pending)
    {
        SpState::Unconfirmed
    } else {
        SpState::Quarantined
    }
}

fn sp_matches(s: &CoreSubscriber, state: SpState, mode: Option<SpMode>) -> bool {
    let kind = match mode {
        None => None,
        Some(SpMode::Email) => Some(ChannelKind::Email),
        Some(SpMode::Sms) => Some(ChannelKind::Sms),
        Some(SpMode::Webhook) => Some(ChannelKind::Webhook),
        Some(SpMode::Slack) => Some(ChannelKind::Slack),
        Some(SpMode::Teams) => Some(ChannelKind::Teams),
        Some(SpMode::IntegrationPartner) => return false,
    };
    (state == SpState::All || sp_state(s) == state) && kind.is_none_or(|k| s.endpoint(k).is_some())
}

/// Statuspage's paging and filters: `?page=2&per_page=100` (or `limit`),
/// `type`, `state`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpListQuery {
    /// Page number, from 1.
    #[serde(default)]
    pub page: Option<u32>,
    /// Subscribers per page (default 100, at most 1000).
    #[serde(default)]
    pub per_page: Option<u32>,
    /// Same as `per_page`.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only subscribers with an endpoint of this kind.
    #[serde(default, rename = "type")]
    #[param(rename = "type", value_type = Option<SpMode>)]
    pub mode: Option<SpMode>,
    /// Only subscribers in this state (default `active`).
    #[serde(default)]
    #[param(value_type = Option<SpState>)]
    pub state: Option<SpState>,
}

/// The page's subscribers, Statuspage's way: those in `state` (active by
/// default) and of `type`, in id order, a page of them at a time.
#[utoipa::path(get, path = "/v1/pages/{page_id}/subscribers", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id"), SpListQuery),
    responses((status = 200, body = [SpSubscriber]), (status = 401), (status = 403), (status = 422), (status = 503)),
    security(("oauth_key" = ["subscribers:read"])))]
pub async fn sp_list_subscribers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(page): Path<String>,
    uri: Uri,
) -> Result<Json<Vec<SpSubscriber>>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::SubscribersRead)?;
    let query: SpListQuery = query_of(&uri)?;
    let per_page = query.per_page.or(query.limit).unwrap_or(100);
    if per_page == 0 || per_page > SUBSCRIBER_LIST_MAX {
        return Err(ApiError::invalid(
            "per_page",
            format!("must be 1 to {SUBSCRIBER_LIST_MAX}"),
        ));
    }
    let number = query.page.unwrap_or(1);
    if number == 0 {
        return Err(ApiError::invalid("page", "pages are numbered from 1"));
    }
    let wanted = query.state.unwrap_or_default();
    let mut skip = u64::from(number - 1) * u64::from(per_page);
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let list = slice(&state, &page, after, Some(SUBSCRIBER_LIST_MAX)).await?;
        for subscriber in list
            .subscribers
            .iter()
            .filter(|s| sp_matches(s, wanted, query.mode))
        {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(SpSubscriber::from(subscriber));
            if out.len() == per_page as usize {
                return Ok(Json(out));
            }
        }
        match list.next {
            Some(next) => after = Some(next),
            None => return Ok(Json(out)),
        }
    }
}

fn sp_new(fields: SpSubscriberFields) -> Result<(NewSubscriber, bool), ApiError> {
    let mut endpoints = Vec::new();
    if let Some(url) = fields.endpoint {
        endpoints.push(SubscriberChannel::Webhook { url });
    }
    if let Some(address) = fields.email {
        endpoints.push(SubscriberChannel::Email { address });
    }
    if let Some(phone) = fields.phone_number {
        if !phone.starts_with('+') {
            return Err(ApiError::invalid(
                "subscriber.phone_number",
                "give the number in E.164 form with its country code, e.g. +14155550100",
            ));
        }
        endpoints.push(SubscriberChannel::Sms { phone });
    }
    if endpoints.is_empty() {
        return Err(ApiError::invalid(
            "subscriber",
            "give an email, a phone_number or an endpoint",
        ));
    }
    let dedup = if endpoints.len() > 1 {
        DedupMode::First
    } else {
        DedupMode::Every
    };
    Ok((
        NewSubscriber {
            endpoints,
            components: fields.component_ids.unwrap_or_default(),
            instant: Vec::new(),
            dedup,
            digest: false,
        },
        fields.skip_confirmation_notification.unwrap_or(false),
    ))
}

/// The owner's invalid-input reply with each field renamed by `rename`
/// (to the names of the body the client sent); other errors as they are.
fn relocate(e: ApiError, rename: impl Fn(&str) -> Option<String>) -> ApiError {
    if e.status != StatusCode::UNPROCESSABLE_ENTITY || e.errors.is_empty() {
        return e;
    }
    let mut errors = e.errors;
    for error in &mut errors {
        if let Some(renamed) = rename(&error.location) {
            error.location = renamed;
        }
    }
    ApiError::invalid_all(errors)
}

/// The notifier's `subscriber.endpoints[0].address` is the body's
/// `endpoints[0].address`.
fn beacon_field(location: &str) -> Option<String> {
    location.strip_prefix("subscriber.").map(str::to_owned)
}

/// The notifier's field paths in Statuspage's names.
fn sp_field(location: &str, new: &NewSubscriber) -> Option<String> {
    if let Some(rest) = location.strip_prefix("subscriber.endpoints[") {
        let index: Option<usize> = rest.split(']').next().and_then(|i| i.parse().ok());
        return match index.and_then(|i| new.endpoints.get(i)).map(|c| c.kind()) {
            Some(ChannelKind::Email) => Some("subscriber.email".to_owned()),
            Some(ChannelKind::Sms) => Some("subscriber.phone_number".to_owned()),
            Some(_) => Some("subscriber.endpoint".to_owned()),
            None => None,
        };
    }
    location
        .strip_prefix("subscriber.components")
        .map(|rest| format!("subscriber.component_ids{rest}"))
}

/// Subscribes someone, Statuspage's way.
#[utoipa::path(post, path = "/v1/pages/{page_id}/subscribers", tag = "statuspage", request_body = SpSubscriberBody,
    params(("page_id" = String, Path, description = "Page id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry that finds the same subscriber answers 200 with it")),
    responses((status = 201, body = SpSubscriber), (status = 200, body = SpSubscriber), (status = 401), (status = 403), (status = 409), (status = 422), (status = 503)),
    security(("oauth_key" = ["subscribers:write"])))]
pub async fn sp_create_subscriber(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(page): Path<String>,
    JsonBody(body): JsonBody<SpSubscriberBody>,
) -> Result<(StatusCode, Json<SpSubscriber>), ApiError> {
    let record = state.authorize(&headers, Some(&page), ApiScope::SubscribersWrite)?;
    let (new, confirmed) = sp_new(body.subscriber)?;
    let retry = idempotency_key(&headers)?.is_some();
    let (status, view) = add(&state, &record, &page, new.clone(), confirmed, retry)
        .await
        .map_err(|e| {
            reshape_current(relocate(e, |l| sp_field(l, &new)), |view| {
                SpSubscriber::from(&view.subscriber)
            })
        })?;
    Ok((status, Json(SpSubscriber::from(&view.subscriber))))
}

/// One subscriber, Statuspage's way.
#[utoipa::path(get, path = "/v1/pages/{page_id}/subscribers/{subscriber_id}", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id"),
        ("subscriber_id" = String, Path, description = "Subscriber id")),
    responses((status = 200, body = SpSubscriber), (status = 401), (status = 403), (status = 404), (status = 503)),
    security(("oauth_key" = ["subscribers:read"])))]
pub async fn sp_show_subscriber(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((page, id)): Path<(String, String)>,
) -> Result<Json<SpSubscriber>, ApiError> {
    state.authorize(&headers, Some(&page), ApiScope::SubscribersRead)?;
    let view = fetch(&state, &page, id).await?;
    Ok(Json(SpSubscriber::from(&view.subscriber)))
}

/// Unsubscribes someone; answers with the subscriber as it was.
#[utoipa::path(delete, path = "/v1/pages/{page_id}/subscribers/{subscriber_id}", tag = "statuspage",
    params(("page_id" = String, Path, description = "Page id"),
        ("subscriber_id" = String, Path, description = "Subscriber id")),
    responses((status = 200, body = SpSubscriber), (status = 401), (status = 403), (status = 404), (status = 503)),
    security(("oauth_key" = ["subscribers:write"])))]
pub async fn sp_remove_subscriber(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((page, id)): Path<(String, String)>,
) -> Result<Json<SpSubscriber>, ApiError> {
    let record = state.authorize(&headers, Some(&page), ApiScope::SubscribersWrite)?;
    let view = fetch(&state, &page, id.clone()).await?;
    delete(&state, &record, &page, id).await?;
    Ok(Json(SpSubscriber::from(&view.subscriber)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::messages::SubscriberEndpoint;

    fn fields(email: Option<&str>, phone: Option<&str>, url: Option<&str>) -> SpSubscriberFields {
        SpSubscriberFields {
            email: email.map(str::to_owned),
            phone_number: phone.map(str::to_owned),
            endpoint: url.map(str::to_owned),
            ..SpSubscriberFields::default()
        }
    }

    #[test]
    fn a_statuspage_subscriber_becomes_endpoints_told_once() {
        let (new, confirmed) = sp_new(fields(
            Some("a@example.com"),
            Some("+14155550100"),
            Some("https://hooks.example.com/x"),
        ))
        .expect("valid");
        assert!(!confirmed);
        let kinds: Vec<ChannelKind> = new.endpoints.iter().map(SubscriberChannel::kind).collect();
        assert_eq!(
            kinds,
            [ChannelKind::Webhook, ChannelKind::Email, ChannelKind::Sms]
        );
        assert_eq!(new.dedup, DedupMode::First);
        let (one, _) = sp_new(fields(Some("a@example.com"), None, None)).expect("valid");
        assert_eq!(one.dedup, DedupMode::Every);
        let none = sp_new(fields(None, None, None)).expect_err("nothing to deliver to");
        assert_eq!(none.errors[0].location, "subscriber");
        let national = sp_new(fields(None, Some("4155550100"), None)).expect_err("not E.164");
        assert_eq!(national.errors[0].location, "subscriber.phone_number");
    }

    #[test]
    fn owner_fields_are_renamed_to_the_request_names() {
        let (new, _) =
            sp_new(fields(Some("a@example.com"), Some("+14155550100"), None)).expect("valid");
        let e = ApiError::invalid_all(vec![
            beacon_page::config::ConfigError {
                location: "subscriber.endpoints[1].phone".into(),
                message: "bad".into(),
            },
            beacon_page::config::ConfigError {
                location: "subscriber.components[2]".into(),
                message: "no such component".into(),
            },
        ]);
        let renamed = relocate(e, |l| sp_field(l, &new));
        let locations: Vec<&str> = renamed.errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            ["subscriber.phone_number", "subscriber.component_ids[2]"]
        );
        let one = relocate(
            ApiError::invalid("subscriber.endpoints[0].address", "bad"),
            beacon_field,
        );
        assert_eq!(one.errors[0].location, "endpoints[0].address");
        assert!(
            one.message.starts_with("endpoints[0].address:"),
            "{}",
            one.message
        );
        let other = relocate(ApiError::not_found("x"), beacon_field);
        assert_eq!(other.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_retry_matches_only_the_same_endpoints() {
        let endpoint = |channel: SubscriberChannel, state| SubscriberEndpoint {
            channel,
            state,
            since_ms: 5,
            confirmation: None,
        };
        let existing = CoreSubscriber {
            page: "p".into(),
            subscriber: "01".into(),
            endpoints: vec![endpoint(
                SubscriberChannel::Email {
                    address: "Ada@Example.com".into(),
                },
                EndpointState::Pending,
            )],
            components: vec![],
            instant: vec![],
            dedup: DedupMode::Every,
            digest: false,
            created_at_ms: 1,
        };
        let (same, _) = sp_new(fields(Some("ada@example.com"), None, None)).expect("valid");
        assert!(same_endpoints(&existing, &same));
        let (more, _) =
            sp_new(fields(Some("ada@example.com"), Some("+14155550100"), None)).expect("valid");
        assert!(!same_endpoints(&existing, &more));
        let shown = SpSubscriber::from(&existing);
        assert_eq!(shown.mode, "email");
        assert!(!shown.skip_confirmation_notification);
        assert_eq!(shown.quarantined_at, None);
    }
}
