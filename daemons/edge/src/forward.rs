//! Forwarding public sign-up to the HTTP API (`--api-url`): only
//! `POST /api/v2/subscribers.json` and `GET|POST
//! /api/v2/subscribers/confirm|unsubscribe`, under a page's prefix or at
//! the root of the default or host-routed page, exactly as files are
//! routed. The edge names the page in `X-Beacon-Page` and the client in
//! `X-Forwarded-For` (both overwriting what the client sent), reads at most
//! [`BODY_LIMIT`] bytes, and gives the API [`TIMEOUT`]. When the API is
//! down, refuses, is slow or fails (5xx), the user gets 503 with
//! `Retry-After` and a clear "try again later", JSON or HTML as they asked;
//! pages keep serving, since nothing else waits on this.
//!
//! The client is hyper's own connection API (one HTTP/1.1 connection per
//! forwarded request, plain `http://`): the edge already runs on hyper,
//! sign-ups are rare, and the API sits beside the edge on a private
//! network, so a pooled, TLS-capable client such as reqwest would only add
//! code to the binary that serves every page.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use prometheus::IntCounterVec;

use crate::files::Forward;
use crate::serve::Body;

/// Largest request body forwarded; more is answered 413 at the edge.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Largest answer read from the API.
pub const RESPONSE_LIMIT: usize = 64 * 1024;

/// How long the API may take, from connecting to the end of its answer.
pub const TIMEOUT: Duration = Duration::from_secs(8);

/// How long a client may take to send its (small) body.
pub const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds a user is asked to wait when the API cannot answer.
pub const RETRY_AFTER_SECONDS: &str = "30";

/// Request headers passed on to the API; everything else stays here.
const REQUEST_HEADERS: &[HeaderName] = &[
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::USER_AGENT,
];

/// Response headers passed back to the user.
const RESPONSE_HEADERS: &[HeaderName] = &[
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    header::CACHE_CONTROL,
    header::CONTENT_SECURITY_POLICY,
    header::REFERRER_POLICY,
];

/// Why `--api-url` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadApiUrl {
    /// Not a URL.
    #[error("not a URL: {0}")]
    Unreadable(String),
    /// Not plain http.
    #[error("give an http:// URL of the api daemon (it is reached on a private network)")]
    NotHttp,
    /// A path after the host.
    #[error("give only the scheme, host and port (http://api.internal:8090)")]
    HasPath,
}

/// Checks `--api-url` and returns its `host:port`.
pub fn api_authority(url: &str) -> Result<String, BadApiUrl> {
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| BadApiUrl::Unreadable(e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(BadApiUrl::NotHttp);
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(BadApiUrl::HasPath);
    }
    let authority = uri.authority().ok_or(BadApiUrl::NotHttp)?;
    let port = authority.port_u16().unwrap_or(80);
    Ok(format!("{}:{port}", authority.host()))
}

/// What forwarding needs.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// `host:port` of the api daemon.
    pub authority: String,
    /// `beacon_edge_forwarded_total{outcome}`.
    pub outcomes: IntCounterVec,
}

/// How a forwarded request ended (the metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The API answered (2xx to 4xx).
    Answered,
    /// The API answered 5xx.
    ApiFailed,
    /// No connection, or it broke.
    Unreachable,
    /// The API took longer than [`TIMEOUT`].
    Timeout,
    /// The client's body was over [`BODY_LIMIT`] or never came.
    BadBody,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::ApiFailed => "api_failed",
            Outcome::Unreachable => "unreachable",
            Outcome::Timeout => "timeout",
            Outcome::BadBody => "bad_body",
        }
    }
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(body.into())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether the user wants JSON back (they sent JSON, or accept it).
fn wants_json(headers: &HeaderMap) -> bool {
    let has = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
    };
    has(header::CONTENT_TYPE) || has(header::ACCEPT)
}

/// 503 "try again later", in the user's format.
pub fn unavailable(json: bool) -> Response<Body> {
    let mut response = if json {
        full(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            Bytes::from_static(
                br#"{"error":{"code":"unavailable","message":"Sign-up is not available right now; please try again later."}}"#,
            ),
        )
    } else {
        let mut response = full(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/html; charset=utf-8",
            Bytes::from_static(
                b"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Please try again later</title></head>\
<body><h1>Please try again later</h1><p>This cannot be done right now. The status page itself is unaffected; please try again in a minute.</p></body></html>",
            ),
        );
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        response
    };
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

impl Forwarder {
    fn count(&self, outcome: Outcome) {
        self.outcomes.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Forwards `request` (already routed: `kind` of `page`) for the client
    /// at `peer`.
    pub async fn forward(
        &self,
        request: Request<Incoming>,
        kind: Forward,
        page: Option<&str>,
        peer: IpAddr,
    ) -> Response<Body> {
        let json = wants_json(request.headers());
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT) {
            self.count(Outcome::BadBody);
            return full(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain; charset=utf-8",
                "request body too large\n",
            );
        }
        let body = match tokio::time::timeout(
            CLIENT_BODY_TIMEOUT,
            Limited::new(body, BODY_LIMIT).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) => {
                self.count(Outcome::BadBody);
                let status = if e.is::<http_body_util::LengthLimitError>() {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return full(
                    status,
                    "text/plain; charset=utf-8",
                    "unreadable request body\n",
                );
            }
            Err(_) => {
                self.count(Outcome::BadBody);
                return full(
                    StatusCode::REQUEST_TIMEOUT,
                    "text/plain; charset=utf-8",
                    "request body too slow\n",
                );
            }
        };
        let path = match parts.uri.query() {
            Some(query) => format!("{}?{query}", kind.api_path()),
            None => kind.api_path().to_owned(),
        };
        let mut upstream = Request::new(Full::new(body));
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = match path.parse() {
            Ok(uri) => uri,
            Err(_) => {
                self.count(Outcome::BadBody);
                return full(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    "bad request\n",
                );
            }
        };
        let headers = upstream.headers_mut();
        for name in REQUEST_HEADERS {
            if let Some(value) = parts.headers.get(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if let Ok(host) = HeaderValue::from_str(&self.authority) {
            headers.insert(header::HOST, host);
        }
        // Both overwrite anything the client sent: the API believes them
        // only because they come from the edge.
        if let Ok(value) = HeaderValue::from_str(&peer.to_canonical().to_string()) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), value);
        }
        if let Some(value) = page.and_then(|p| HeaderValue::from_str(p).ok()) {
            headers.insert(HeaderName::from_static("x-beacon-page"), value);
        }
        let answer = tokio::time::timeout(TIMEOUT, self.exchange(upstream)).await;
        let (status, answer_headers, answer_body) = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                tracing::warn!(api = %self.authority, error = %e, "The HTTP API cannot be reached; sign-up answers 503.");
                self.count(Outcome::Unreachable);
                return unavailable(json);
            }
            Err(_) => {
                tracing::warn!(api = %self.authority, timeout = ?TIMEOUT, "The HTTP API did not answer in time; sign-up answers 503.");
                self.count(Outcome::Timeout);
                return unavailable(json);
            }
        };
        if status.is_server_error() {
            self.count(Outcome::ApiFailed);
            return unavailable(json);
        }
        self.count(Outcome::Answered);
        let mut response = Response::new(Either::Left(Full::new(answer_body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        for name in RESPONSE_HEADERS {
            if let Some(value) = answer_headers.get(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }

    /// One request over a fresh connection, and the whole answer.
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Box<dyn std::error::Error + Send + Sync>> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "Connection to the HTTP API ended with an error.");
            }
        });
        let response = sender.send_request(request).await;
        let result = match response {
            Ok(response) => {
                let status = response.status();
                let (parts, body) = response.into_parts();
                match Limited::new(body, RESPONSE_LIMIT).collect().await {
                    Ok(collected) => Ok((status, parts.headers, collected.to_bytes())),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e.into()),
        };
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_plain_http_hosts() {
        assert_eq!(
            api_authority("http://127.0.0.1:8090").as_deref(),
            Ok("127.0.0.1:8090")
        );
        assert_eq!(
            api_authority("http://api.internal/").as_deref(),
            Ok("api.internal:80")
        );
        assert_eq!(
            api_authority("https://api.example.com"),
            Err(BadApiUrl::NotHttp)
        );
        assert_eq!(api_authority("http://api/x"), Err(BadApiUrl::HasPath));
        assert!(api_authority("not a url").is_err());
    }

    #[test]
    fn try_again_later_speaks_the_users_format() {
        let json = unavailable(true);
        assert_eq!(json.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(json.headers()[header::RETRY_AFTER], RETRY_AFTER_SECONDS);
        let html = unavailable(false);
        assert!(html.headers()[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/html")));
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json(&headers));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
