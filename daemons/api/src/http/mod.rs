//! The HTTP side: shared state, authentication and rate limits, the JSON
//! body reader, metrics, and the router.
//!
//! - [`dto`]: the JSON shapes of Beacon's own routes and of Statuspage's.
//! - [`seed`]: `/api/v1/…`, Beacon's operator routes (the page is the key's).
//! - [`statuspage`]: `/v1/pages/{page_id}/…`, Statuspage's management routes.
//! - [`public`]: `/api/v2/subscribers…`, public sign-up without a key.
//! - [`subscribers`]: subscribers, Beacon's and Statuspage's routes (notifier).
//! - [`changelog`]: `/api/v1/changelog` (publisher).

pub mod changelog;
pub mod dto;
pub mod public;
pub mod seed;
pub mod statuspage;
pub mod subscribers;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::keys::ApiKeyRecord;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use beacon_contract::api::ApiScope;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::keys::{authorize, Keys, Refused};
use crate::limits::Limits;
use crate::metrics::Metrics;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The bus.
    pub client: async_nats::Client,
    /// Every API key.
    pub keys: Keys,
    /// KV `apikeys`, read when a request names a key `keys` has not seen.
    pub key_store: async_nats::jetstream::kv::Store,
    /// Rate limiters.
    pub limits: Limits,
    /// Metrics.
    pub metrics: Metrics,
    /// How long an owner may take to answer.
    pub timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed (the edge, a proxy).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl AppState {
    /// The key of the request, checked for `scope` on `page` (the key's own
    /// page when `None`) and counted against its rate limit.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        page: Option<&str>,
        scope: ApiScope,
    ) -> Result<ApiKeyRecord, ApiError> {
        let record = self.authenticate(headers)?;
        authorize(&record, page.unwrap_or(&record.page), scope)
            .map_err(|refused| self.refuse(refused))?;
        if let Err(wait) = self.limits.key(&record.id, record.rate_per_minute) {
            self.metrics.rate_limited.with_label_values(&["key"]).inc();
            return Err(ApiError::rate_limited(wait));
        }
        Ok(record)
    }

    /// The key of a request, if it is a live one; a refusal otherwise.
    /// Scopes and limits are checked by [`AppState::authorize`].
    fn authenticate(&self, headers: &HeaderMap) -> Result<ApiKeyRecord, ApiError> {
        let text = bearer(headers).map_err(|refused| self.refuse(refused))?;
        self.keys
            .authenticate(text)
            .map_err(|refused| self.refuse(refused))
    }

    /// Like [`AppState::authenticate`], but a key whose id the follower has
    /// not delivered yet is first read from the bucket: a key is accepted
    /// as soon as its creation was acknowledged, never refused while a
    /// cache catches up.
    async fn authenticate_reading_through(
        &self,
        headers: &HeaderMap,
    ) -> Result<ApiKeyRecord, ApiError> {
        let text = bearer(headers).map_err(|refused| self.refuse(refused))?;
        if let Some((id, _)) = crate::keys::parse(text) {
            if !self.keys.has_seen(id) {
                if let Err(e) = crate::admin::read_through(&self.key_store, &self.keys, id).await {
                    tracing::warn!(error = %e, "Cannot read an API key from the bus.");
                    return Err(ApiError::unavailable(
                        "the API key cannot be checked right now; try again",
                    ));
                }
            }
        }
        self.authenticate(headers)
    }

    /// A refused key, counted by reason.
    fn refuse(&self, refused: Refused) -> ApiError {
        self.metrics
            .refused
            .with_label_values(&[refused.as_str()])
            .inc();
        ApiError::refused(refused)
    }

    /// Counts a public request from the client against its address's limit.
    pub fn limit_address(&self, client: IpAddr) -> Result<(), ApiError> {
        self.limits.address(client).map_err(|wait| {
            self.metrics
                .rate_limited
                .with_label_values(&["address"])
                .inc();
            ApiError::rate_limited(wait)
        })
    }

    /// The client's address: the peer, or when the peer is a trusted proxy
    /// the first `X-Forwarded-For` address (the edge writes only its own
    /// peer there, so nothing a client sends gets this far).
    pub fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = peer.ip().to_canonical();
        if self
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer_ip))
        {
            let forwarded = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if let Some(address) = forwarded {
                return address;
            }
        }
        peer.ip()
    }
}

/// The key in `Authorization: Bearer …` or Statuspage's `OAuth …`.
fn bearer(headers: &HeaderMap) -> Result<&str, Refused> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(Refused::Missing)?
        .to_str()
        .map_err(|_| Refused::Malformed)?;
    let (scheme, key) = value.split_once(' ').ok_or(Refused::Malformed)?;
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth")) {
        return Err(Refused::Malformed);
    }
    Ok(key.trim())
}

/// A JSON body read strictly: unknown fields and bad values are a 422
/// naming the field (`incident.impact`), unreadable JSON a 400, an
/// oversized body a 413.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(BODY_LIMIT)
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(JsonBody(value)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    Err(ApiError::bad_request(format!(
                        "the body is not JSON: {inner}"
                    )))
                } else {
                    let field = if path.is_empty() || path == "." {
                        "body".to_owned()
                    } else {
                        path
                    };
                    Err(ApiError::invalid(&field, inner.to_string()))
                }
            }
        }
    }
}

/// A body of at most the API's limit, read as bytes; an oversized one is
/// the API's JSON 413 rather than the framework's plain-text one.
pub struct LimitedBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(LimitedBody)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(BODY_LIMIT)
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })
    }
}

/// Counts and times every request by its route template.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    state
        .metrics
        .request_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Refuses a request without a live key before anything reads its body,
/// so an unauthenticated caller learns nothing from validation errors.
async fn key_first(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.authenticate_reading_through(request.headers()).await {
        Ok(_) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let keyed = Router::new()
        .merge(seed::routes())
        .merge(statuspage::routes())
        .merge(subscribers::routes())
        .merge(changelog::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            key_first,
        ));
    Router::new()
        .merge(keyed)
        .merge(public::routes())
        .route(
            "/openapi.json",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    crate::openapi::document(),
                )
                    .into_response()
            }),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The peer address of a request (set by the server).
pub type Peer = ConnectInfo<SocketAddr>;
