//! Public sign-up, without an API key: Statuspage's
//! `POST /api/v2/subscribers.json` (JSON, or the form a plain HTML page
//! posts), and the confirmation and unsubscribe links the notifier mails
//! (`/api/v2/subscribers/confirm|unsubscribe?token=…`), which mirror the
//! notifier's own `/confirm` and `/unsubscribe` so a notifier deployed with
//! `--public-url https://status.example.com/api/v2/subscribers` sends its
//! readers here.
//!
//! - The page is `X-Beacon-Page` (the edge sets it, overwriting any
//!   client's) or `?page=`.
//! - Email always waits for its double opt-in: the request to the notifier
//!   never says `confirmed`.
//! - A new address, one already subscribed, one erased before and one
//!   over its own limit all get the same answer (202 `pending`), so the
//!   route tells nobody who subscribes; only malformed input is refused,
//!   naming the field.
//! - Limits: per client address (429 with `Retry-After`), and per address
//!   being subscribed, so one inbox cannot be flooded with confirmations
//!   (quietly: the answer stays the same, nothing is sent).
//! - A GET of a link never changes anything (link scanners follow links);
//!   it shows a button that POSTs. The unsubscribe POST also takes RFC
//!   8058's `List-Unsubscribe=One-Click` body from mail clients.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use beacon_contract::api;
use beacon_contract::api::{AddSubscriberRequest, LinkRequest, NewSubscriber};
use beacon_contract::messages::{DedupMode, SubscriberChannel};
use beacon_page::config::ConfigError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, LimitedBody, Peer};
use crate::bus;
use crate::error::ApiError;

/// The header the edge names the page in.
pub const PAGE_HEADER: &str = "x-beacon-page";

/// What every accepted sign-up is answered, whoever the address belongs to.
pub const PENDING_MESSAGE: &str =
    "If this address can be subscribed, a confirmation is on its way.";

/// Most components one sign-up may name.
const MAX_COMPONENTS: usize = 100;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/subscribers.json", post(sign_up))
        .route(
            "/api/v2/subscribers/confirm",
            get(confirm_page).post(confirm),
        )
        .route(
            "/api/v2/subscribers/unsubscribe",
            get(unsubscribe_page).post(unsubscribe),
        )
}

/// A sign-up in Statuspage's shape: exactly one of `email`,
/// `phone_number` (E.164) or `endpoint` (a webhook URL).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPublicSubscriber {
    /// An email address (confirmed by a link before anything is sent).
    #[serde(default)]
    pub email: Option<String>,
    /// A phone number in E.164 form, for SMS.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// An https URL for webhooks.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Components of interest; none means the whole page.
    #[serde(default)]
    pub component_ids: Vec<String>,
}

/// The body of `POST /api/v2/subscribers.json`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// The subscriber.
    pub subscriber: NewPublicSubscriber,
}

/// The one answer to an accepted sign-up.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SignUpAccepted {
    /// Always `pending`.
    pub status: &'static str,
    /// For people.
    pub message: &'static str,
}

/// `?page=` of a sign-up.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The page, when no `X-Beacon-Page` header names it.
    pub page: Option<String>,
}

/// `?token=` of a link.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The signed token from the email.
    pub token: Option<String>,
}

fn count(state: &AppState, outcome: &str) {
    state.metrics.signups.with_label_values(&[outcome]).inc();
}

/// The page a sign-up is for.
fn page_of(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<String, ApiError> {
    let page = headers
        .get(PAGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("page").cloned())
        .ok_or_else(|| ApiError::invalid("page", "name the page: ?page= or X-Beacon-Page"))?;
    beacon_contract::names::check_token(&page)
        .map_err(|e| ApiError::invalid("page", e.to_string()))?;
    Ok(page)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Reads a form as a plain HTML page posts it: `subscriber[email]`,
/// `subscriber[phone_number]`, `subscriber[endpoint]`,
/// `subscriber[component_ids][]` (repeated).
pub fn parse_form(body: &[u8]) -> Result<SignUp, ApiError> {
    let mut subscriber = NewPublicSubscriber::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let value = value.into_owned();
        let single = |slot: &mut Option<String>, field: &str| {
            if slot.replace(value.clone()).is_some() {
                Err(ApiError::invalid(field, "given twice"))
            } else {
                Ok(())
            }
        };
        match key.as_ref() {
            "subscriber[email]" => single(&mut subscriber.email, "subscriber.email")?,
            "subscriber[phone_number]" => {
                single(&mut subscriber.phone_number, "subscriber.phone_number")?;
            }
            "subscriber[endpoint]" => single(&mut subscriber.endpoint, "subscriber.endpoint")?,
            "subscriber[component_ids][]" | "subscriber[component_ids]" => {
                subscriber.component_ids.push(value);
            }
            other => {
                return Err(ApiError::invalid(other, "unknown field"));
            }
        }
    }
    Ok(SignUp { subscriber })
}

/// Reads a JSON body strictly, naming the field of a bad value.
fn parse_json(body: &[u8]) -> Result<SignUp, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("the body is not JSON: {inner}"))
        } else {
            let field = if path.is_empty() || path == "." {
                "body".to_owned()
            } else {
                path
            };
            ApiError::invalid(&field, inner.to_string())
        }
    })
}

/// The notifier's subscriber for a sign-up, or what is wrong with it.
pub fn to_new_subscriber(body: SignUp) -> Result<NewSubscriber, ApiError> {
    let s = body.subscriber;
    let given: Vec<SubscriberChannel> = [
        s.email.map(|address| SubscriberChannel::Email {
            address: address.trim().to_owned(),
        }),
        s.phone_number.map(|phone| SubscriberChannel::Sms {
            phone: phone.trim().to_owned(),
        }),
        s.endpoint.map(|url| SubscriberChannel::Webhook {
            url: url.trim().to_owned(),
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let channel = match <[SubscriberChannel; 1]>::try_from(given) {
        Ok([channel]) => channel,
        Err(_) => {
            return Err(ApiError::invalid(
                "subscriber",
                "give exactly one of email, phone_number or endpoint",
            ))
        }
    };
    if s.component_ids.len() > MAX_COMPONENTS {
        return Err(ApiError::invalid(
            "subscriber.component_ids",
            format!("at most {MAX_COMPONENTS} components"),
        ));
    }
    Ok(NewSubscriber {
        endpoints: vec![channel],
        components: s.component_ids,
        instant: Vec::new(),
        dedup: DedupMode::default(),
        digest: false,
    })
}

/// The Statuspage field a notifier error location means.
fn field_name(channel: &SubscriberChannel, location: &str) -> String {
    if location.starts_with("subscriber.endpoints") {
        let field = match channel {
            SubscriberChannel::Email { .. } => "email",
            SubscriberChannel::Sms { .. } => "phone_number",
            _ => "endpoint",
        };
        return format!("subscriber.{field}");
    }
    if let Some(rest) = location.strip_prefix("subscriber.components") {
        return format!("subscriber.component_ids{rest}");
    }
    location.to_owned()
}

/// The limiter key of the address being subscribed: the page and the
/// address, case-folded so `A@x` and `a@x` are one inbox.
fn recipient_key(page: &str, channel: &SubscriberChannel) -> String {
    format!(
        "{page} {} {}",
        channel.kind().as_str(),
        channel.address().to_lowercase()
    )
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(SignUpAccepted {
            status: "pending",
            message: PENDING_MESSAGE,
        }),
    )
        .into_response()
}

/// Subscribe to a page's updates, as Statuspage's public sign-up does.
/// Every accepted request gets the same answer, whether the address is new,
/// already subscribed or was erased before: a confirmation link goes to an
/// email address before anything else does.
#[utoipa::path(post, path = "/api/v2/subscribers.json", tag = "sign-up",
    params(PageQuery, ("X-Beacon-Page" = Option<String>, Header, description = "The page (set by the edge)")),
    request_body(content = SignUp, description = "JSON, or `application/x-www-form-urlencoded` with `subscriber[email]=…`"),
    responses((status = 202, body = SignUpAccepted), (status = 400), (status = 413), (status = 422), (status = 429), (status = 502), (status = 503)))]
pub async fn sign_up(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Result<LimitedBody, ApiError>,
) -> Response {
    let result = match body {
        Ok(LimitedBody(body)) => sign_up_inner(&state, &peer, &headers, &query, &body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(response) => response,
        Err(e) => {
            let outcome = match e.status.as_u16() {
                400 | 413 | 422 => "invalid",
                429 => "rate_limited",
                _ => "unavailable",
            };
            count(&state, outcome);
            e.into_response()
        }
    }
}

async fn sign_up_inner(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let client = state.client_address(peer.0, headers);
    state.limit_address(client)?;
    let page = page_of(headers, query)?;
    let parsed = if is_form(headers) {
        parse_form(body)?
    } else {
        parse_json(body)?
    };
    let new = to_new_subscriber(parsed)?;
    let channel = new.endpoints[0].clone();
    if state
        .limits
        .recipient(&recipient_key(&page, &channel))
        .is_err()
    {
        // Quietly: the same answer, and nothing more is sent to this inbox.
        count(state, "recipient_limited");
        return Ok(accepted());
    }
    let request = AddSubscriberRequest {
        page,
        subscriber: new,
        confirmed: false,
        actor: "public".to_owned(),
    };
    let reply = bus::call(&state.client, api::SUBSCRIBER_ADD, &request, state.timeout).await;
    match reply {
        Ok(_) => {
            count(state, "pending");
            Ok(accepted())
        }
        Err(e) if e.status == StatusCode::CONFLICT => {
            // Already subscribed: the same answer as a new address.
            count(state, "known");
            Ok(accepted())
        }
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let errors: Vec<ConfigError> = e
                .errors
                .into_iter()
                .map(|error| ConfigError {
                    location: field_name(&channel, &error.location),
                    message: error.message,
                })
                .collect();
            Err(ApiError::invalid_all(errors))
        }
        Err(e) => Err(e),
    }
}

/// A small HTML page: escaped title and text, no script, no other origin.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let text = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\">\
         <title>{t}</title></head><body style=\"font-family:sans-serif;max-width:30em;margin:3em auto\">\
         <h1>{t}</h1>{body}</body></html>",
        t = html_escape::encode_text(title)
    );
    let mut response = (status, text).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn paragraph(text: &str) -> String {
    format!("<p>{}</p>", html_escape::encode_text(text))
}

/// A form that POSTs the token back to `action` (relative, so it works at
/// the API's root and under a page's prefix on the edge alike).
fn button(action: &str, token: &str, label: &str) -> String {
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    format!(
        "<form method=\"post\" action=\"{action}?token={}\"><button type=\"submit\">{}</button></form>",
        html_escape::encode_double_quoted_attribute(&token),
        html_escape::encode_text(label)
    )
}

fn token_of(query: &TokenQuery) -> String {
    query.token.clone().unwrap_or_default()
}

/// What a link's POST did.
async fn follow<Res: serde::de::DeserializeOwned>(
    state: &AppState,
    endpoint: api::Endpoint<LinkRequest, Res>,
    token: String,
) -> Result<(), ApiError> {
    bus::call(
        &state.client,
        endpoint,
        &LinkRequest { token },
        state.timeout,
    )
    .await
    .map(|_| ())
}

fn link_failed(state: &AppState, kind: &str, error: &ApiError) -> Response {
    if error.status == StatusCode::UNPROCESSABLE_ENTITY {
        count(state, &format!("{kind}_invalid"));
        let why = error
            .errors
            .first()
            .map_or("This link is not valid.", |e| e.message.as_str());
        return html(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            &paragraph(why),
        );
    }
    count(state, "unavailable");
    let mut response = html(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again later",
        &paragraph("This cannot be done right now. Please try again in a minute."),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

/// The confirmation link's page: a button, nothing changed yet.
#[utoipa::path(get, path = "/api/v2/subscribers/confirm", tag = "sign-up", params(TokenQuery),
    responses((status = 200, description = "An HTML page with a button that confirms", content_type = "text/html")))]
pub async fn confirm_page(Query(query): Query<TokenQuery>) -> Response {
    html(
        StatusCode::OK,
        "Confirm your subscription",
        &format!(
            "{}{}",
            paragraph("Get updates about this status page?"),
            button("confirm", &token_of(&query), "Confirm")
        ),
    )
}

/// Confirms a subscription (the double opt-in).
#[utoipa::path(post, path = "/api/v2/subscribers/confirm", tag = "sign-up", params(TokenQuery),
    responses((status = 200, description = "Confirmed", content_type = "text/html"),
        (status = 400, description = "A forged, used or expired link", content_type = "text/html"),
        (status = 503, description = "Try again later", content_type = "text/html")))]
pub async fn confirm(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Response {
    match follow(&state, api::SUBSCRIBER_CONFIRM, token_of(&query)).await {
        Ok(()) => {
            count(&state, "confirmed");
            html(
                StatusCode::OK,
                "Subscription confirmed",
                &paragraph("You will get updates about this status page."),
            )
        }
        Err(e) => link_failed(&state, "confirm", &e),
    }
}

/// The unsubscribe link's page: a button, nothing changed yet.
#[utoipa::path(get, path = "/api/v2/subscribers/unsubscribe", tag = "sign-up", params(TokenQuery),
    responses((status = 200, description = "An HTML page with a button that unsubscribes", content_type = "text/html")))]
pub async fn unsubscribe_page(Query(query): Query<TokenQuery>) -> Response {
    html(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "{}{}",
            paragraph("Stop getting these updates?"),
            button("unsubscribe", &token_of(&query), "Unsubscribe")
        ),
    )
}

/// Unsubscribes: the button of the page, or a mail client's RFC 8058
/// one-click POST (`List-Unsubscribe=One-Click`).
#[utoipa::path(post, path = "/api/v2/subscribers/unsubscribe", tag = "sign-up", params(TokenQuery),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "Empty, or RFC 8058's `List-Unsubscribe=One-Click`"),
    responses((status = 200, description = "Unsubscribed", content_type = "text/html"),
        (status = 400, description = "A forged or altered link", content_type = "text/html"),
        (status = 503, description = "Try again later", content_type = "text/html")))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Response {
    // The body (RFC 8058's `List-Unsubscribe=One-Click`, or nothing from
    // the button) asks for the same thing: the signed token decides.
    match follow(&state, api::SUBSCRIBER_UNSUBSCRIBE, token_of(&query)).await {
        Ok(()) => {
            count(&state, "unsubscribed");
            html(
                StatusCode::OK,
                "Unsubscribed",
                &paragraph("You will not get these updates any more."),
            )
        }
        Err(e) => link_failed(&state, "unsubscribe", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_reads_like_json() {
        let form = parse_form(
            b"subscriber%5Bemail%5D=ada%40example.com&subscriber%5Bcomponent_ids%5D%5B%5D=api&subscriber%5Bcomponent_ids%5D%5B%5D=db",
        )
        .expect("a form");
        let json = parse_json(
            br#"{"subscriber":{"email":"ada@example.com","component_ids":["api","db"]}}"#,
        )
        .expect("JSON");
        assert_eq!(form, json);
        let new = to_new_subscriber(form).expect("valid");
        assert_eq!(
            new.endpoints,
            vec![SubscriberChannel::Email {
                address: "ada@example.com".into()
            }]
        );
        assert_eq!(new.components, vec!["api", "db"]);
    }

    #[test]
    fn malformed_sign_ups_name_the_field() {
        let cases: &[(&[u8], bool, &str)] = &[
            (
                br#"{"subscriber":{"email":"a@x.io","phone_number":"+15550100"}}"#,
                false,
                "subscriber",
            ),
            (br#"{"subscriber":{}}"#, false, "subscriber"),
            (
                br#"{"subscriber":{"email":"a@x.io","admin":true}}"#,
                false,
                "subscriber.admin",
            ),
            (br#"{"subscriber":{"email":7}}"#, false, "subscriber.email"),
            (
                b"subscriber%5Bemail%5D=a&subscriber%5Bemail%5D=b",
                true,
                "subscriber.email",
            ),
            (b"confirmed=true&subscriber%5Bemail%5D=a", true, "confirmed"),
        ];
        for (body, form, field) in cases {
            let error = if *form {
                parse_form(body)
            } else {
                parse_json(body)
            }
            .and_then(to_new_subscriber)
            .expect_err("refused");
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{error:?}");
            assert_eq!(
                error.errors.first().map(|e| e.location.as_str()),
                Some(*field),
                "{error:?}"
            );
        }
        let error = parse_json(b"{not json").expect_err("refused");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn notifier_fields_become_statuspage_fields() {
        let email = SubscriberChannel::Email {
            address: "x".into(),
        };
        assert_eq!(
            field_name(&email, "subscriber.endpoints[0].address"),
            "subscriber.email"
        );
        assert_eq!(
            field_name(&email, "subscriber.components[1]"),
            "subscriber.component_ids[1]"
        );
        assert_eq!(field_name(&email, "page"), "page");
        assert_eq!(
            recipient_key("demo", &email),
            recipient_key(
                "demo",
                &SubscriberChannel::Email {
                    address: "X".into()
                }
            )
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let form = button("confirm", "a\"b<c>&d", "Go <now>");
        assert!(!form.contains("a\"b"), "{form}");
        assert!(form.contains("Go &lt;now&gt;"), "{form}");
    }
}
