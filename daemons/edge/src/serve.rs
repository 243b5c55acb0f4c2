//! The HTTP side of the edge: serves the live version of a page from an
//! origin directory, reading only local files, so it keeps answering when
//! NATS, ClickHouse and every other daemon are down.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use beacon_core::origin;
use prometheus::IntCounterVec;

use crate::files::{content_type, etag_matches, relative_file};

/// Cache policy: browsers and CDNs may reuse a copy briefly, and keep
/// serving it for a day if we ever fail.
pub const CACHE_CONTROL: &str =
    "public, max-age=5, stale-while-revalidate=30, stale-if-error=86400";

/// No scripts, no external requests: the page is self-contained.
pub const HTML_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the handler needs.
#[derive(Debug, Clone)]
pub struct Site {
    /// The page's directory in the origin (`<origin>/<page>`).
    pub page_dir: PathBuf,
    /// Responses by status class.
    pub responses: IntCounterVec,
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves one request.
pub async fn handle(
    State(site): State<Arc<Site>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = respond(&site, &method, &uri, &headers).await;
    let class = match response.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    site.responses.with_label_values(&[class]).inc();
    response
}

async fn respond(site: &Site, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    let Ok(relative) = relative_file(uri.path()) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    // Resolve `current` once, then read from that version only, so a publish
    // during this request cannot mix two versions.
    let version = match tokio::fs::read_link(site.page_dir.join(origin::CURRENT)).await {
        Ok(target) => match target.file_name().and_then(|n| n.to_str()) {
            Some(name) => name.to_owned(),
            None => return plain(StatusCode::SERVICE_UNAVAILABLE, "no published version\n"),
        },
        Err(_) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "no published version yet\n",
            )
        }
    };
    let path = origin::version_dir(&site.page_dir, &version).join(&relative);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return plain(StatusCode::NOT_FOUND, "not found\n")
        }
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            return plain(StatusCode::NOT_FOUND, "not found\n")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Cannot read published file.");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n");
        }
    };
    // Files in a version directory never change, so the version is a strong
    // validator for every file in it.
    let etag = format!("\"{version}\"");
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag));

    let mut response = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(bytes))
    };
    let out = response.headers_mut();
    let content_type = content_type(&relative);
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if content_type.starts_with("text/html") {
        out.insert(
            "content-security-policy",
            HeaderValue::from_static(HTML_CSP),
        );
    } else {
        // The JSON API and feeds are public and meant for other origins' widgets.
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}
