//! The notifier's public HTTP endpoints (`--inbound-listen`), each a thin
//! shell over the same handler as its bus endpoint:
//!
//! - `POST /sms/twilio`: the SMS provider's inbound webhook (STOP, START),
//!   signed with `X-Twilio-Signature` over `--public-url` + the path; a
//!   forged one gets 403 and changes nothing.
//! - `GET /unsubscribe?token=…`: a page with a button; `POST` unsubscribes
//!   (RFC 8058 one-click: mail clients POST `List-Unsubscribe=One-Click`).
//!   A GET never changes anything, because link scanners follow links.
//! - `GET /confirm?token=…`: a page with a button; `POST` confirms.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use beacon_contract::api::{ApiReply, LinkRequest};

use crate::api;
use crate::context::Context;
use crate::records::SmsInboundRequest;

/// The router.
pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/sms/twilio", post(sms))
        .route("/unsubscribe", get(unsubscribe_page).post(unsubscribe))
        .route("/confirm", get(confirm_page).post(confirm))
        .with_state(ctx)
}

/// Serves the router on `addr` until shutdown.
pub async fn serve(ctx: Context, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let shutdown = ctx.daemon.process.shutdown.clone();
    let stopping = shutdown.clone();
    let app = router(ctx);
    shutdown.spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopping.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "Inbound HTTP server failed.");
        }
    });
    tracing::info!(addr = %bound, "Serving inbound HTTP (SMS replies, unsubscribe and confirmation links).");
    Ok(bound)
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:30em;margin:3em auto\"><h1>{t}</h1>{body}</body></html>",
        t = html_escape::encode_text(title)
    ))
}

fn button(action: &str, token: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}?token={}\"><button type=\"submit\">{}</button></form>",
        html_escape::encode_double_quoted_attribute(&url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()),
        html_escape::encode_text(label)
    )
}

fn token(query: &HashMap<String, String>) -> String {
    query.get("token").cloned().unwrap_or_default()
}

fn count(ctx: &Context, kind: &str, outcome: &str) {
    ctx.metrics
        .inbound
        .with_label_values(&[kind, outcome])
        .inc();
}

async fn sms(State(ctx): State<Context>, headers: HeaderMap, body: Bytes) -> Response {
    let request = SmsInboundRequest {
        url: format!("{}/sms/twilio", ctx.settings.public_url),
        params: api::form_params(&body),
        signature: headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    match api::sms_inbound(&ctx, request).await {
        ApiReply::Ok { .. } => (
            StatusCode::OK,
            [("content-type", "text/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        )
            .into_response(),
        ApiReply::Invalid { .. } => {
            (StatusCode::FORBIDDEN, "signature does not match").into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response(),
    }
}

async fn unsubscribe_page(Query(query): Query<HashMap<String, String>>) -> Html<String> {
    page(
        "Unsubscribe",
        &format!(
            "<p>Stop getting these updates?</p>{}",
            button("unsubscribe", &token(&query), "Unsubscribe")
        ),
    )
}

async fn unsubscribe(
    State(ctx): State<Context>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let request = LinkRequest {
        token: token(&query),
    };
    match api::unsubscribe(&ctx, request).await {
        ApiReply::Ok { .. } => {
            count(&ctx, "unsubscribe", "ok");
            page(
                "Unsubscribed",
                "<p>You will not get these updates any more.</p>",
            )
            .into_response()
        }
        ApiReply::Invalid { .. } => {
            count(&ctx, "unsubscribe", "invalid");
            (
                StatusCode::BAD_REQUEST,
                page("Not valid", "<p>This link is not valid.</p>"),
            )
                .into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            page("Try again", "<p>Please try again in a minute.</p>"),
        )
            .into_response(),
    }
}

async fn confirm_page(Query(query): Query<HashMap<String, String>>) -> Html<String> {
    page(
        "Confirm your subscription",
        &format!(
            "<p>Get updates by email?</p>{}",
            button("confirm", &token(&query), "Confirm")
        ),
    )
}

async fn confirm(
    State(ctx): State<Context>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let request = LinkRequest {
        token: token(&query),
    };
    match api::confirm(&ctx, request).await {
        ApiReply::Ok { .. } => {
            count(&ctx, "confirm", "ok");
            page("Confirmed", "<p>You will get updates by email.</p>").into_response()
        }
        ApiReply::Invalid { errors } => {
            count(&ctx, "confirm", "invalid");
            let why = errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            (
                StatusCode::BAD_REQUEST,
                page(
                    "Not confirmed",
                    &format!("<p>{}</p>", html_escape::encode_text(&why)),
                ),
            )
                .into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            page("Try again", "<p>Please try again in a minute.</p>"),
        )
            .into_response(),
    }
}
