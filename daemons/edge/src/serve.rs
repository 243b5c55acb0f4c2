//! The HTTP side of the edge, on hyper directly: an accept loop with a
//! connection limit, HTTP/1.1 connections with small header buffers and a
//! header timeout (a slow or oversized client is cut off alone), and one
//! handler that serves every page from memory. It reads no file, so it keeps
//! answering when NATS, ClickHouse and every other daemon are down. With
//! `--api-url`, public sign-up and its links go to the HTTP API
//! ([`crate::forward`]); nothing else does.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{Either, Full, StreamBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::IntCounter;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::files::{
    etag_matches, forwarded, host_name, negotiate, relative_file, route, status_v1_page, Forward,
    Route, STATUS_V1_FILE,
};
use crate::forward::Forwarder;
use crate::live::{FrameStream, Hub};
use crate::site::Sites;

/// A response body: bytes, or an event stream.
pub type Body = Either<Full<Bytes>, StreamBody<FrameStream>>;

/// Largest request head (request line and headers) accepted; anything
/// bigger is answered 431 and the connection closed.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Socket send buffer asked for on every connection.
pub const SEND_BUFFER_BYTES: usize = 512 * 1024;

/// How long a client may take to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses by status class, resolved once so counting costs an add.
#[derive(Clone)]
pub struct Counters {
    /// 2xx.
    pub ok: IntCounter,
    /// 3xx (304 and redirects).
    pub redirect: IntCounter,
    /// 4xx.
    pub client_error: IntCounter,
    /// 5xx.
    pub server_error: IntCounter,
}

impl Counters {
    fn count(&self, status: StatusCode) {
        match status.as_u16() {
            200..=299 => self.ok.inc(),
            300..=399 => self.redirect.inc(),
            400..=499 => self.client_error.inc(),
            _ => self.server_error.inc(),
        }
    }
}

/// What every request reads.
pub struct Edge {
    /// Every page, swapped whole by the loader.
    pub sites: Arc<ArcSwap<Sites>>,
    /// The page served at `/` when no host or path names another.
    pub default_page: Option<String>,
    /// Custom domains given on the command line (they win over manifests).
    pub hosts: Vec<(String, String)>,
    /// Live updates.
    pub hub: Arc<Hub>,
    /// Most event-stream clients at once; more are refused with 503 and
    /// fall back to polling.
    pub max_sse_clients: i64,
    /// Responses by class.
    pub counters: Counters,
    /// Where public sign-up goes (`--api-url`), if anywhere.
    pub forward: Option<Forwarder>,
}

/// Cache policy of `/api/v1/status/{page}`: pollers may reuse it for 30 s.
pub const STATUS_V1_CACHE_CONTROL: &str = "public, max-age=30";

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// What the HTTP API answers for this request, and for which page: only
/// with `--api-url`, and only sign-up and its links, routed like files.
/// The links carry a signed token that names the page, so they also work
/// where no page is routed.
pub fn forward_target(
    edge: &Edge,
    request: &Request<Incoming>,
) -> Option<(Forward, Option<String>)> {
    edge.forward.as_ref()?;
    // Most requests are for files: skip routing twice for them.
    if !request.uri().path().contains("/api/v2/subscribers") {
        return None;
    }
    let sites = edge.sites.load();
    match page_route(edge, &sites, request) {
        Route::Page { page, path } => forwarded(&path).map(|kind| (kind, Some(page))),
        Route::AddSlash(_) => None,
        Route::NotFound => forwarded(request.uri().path())
            .filter(|kind| *kind != Forward::SignUp)
            .map(|kind| (kind, None)),
    }
}

/// Serves one request, handing sign-up to the HTTP API.
pub async fn handle_any(edge: &Edge, request: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let (Some(forwarder), Some((kind, page))) = (&edge.forward, forward_target(edge, &request))
    else {
        return handle(edge, &request);
    };
    let response = if kind.takes(request.method().as_str()) {
        forwarder
            .forward(request, kind, page.as_deref(), peer)
            .await
    } else {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        if let Ok(allow) = HeaderValue::from_str(kind.allow()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    };
    edge.counters.count(response.status());
    response
}

/// Serves one request.
pub fn handle(edge: &Edge, request: &Request<Incoming>) -> Response<Body> {
    let response = respond(edge, request);
    edge.counters.count(response.status());
    response
}

fn respond(edge: &Edge, request: &Request<Incoming>) -> Response<Body> {
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let sites = edge.sites.load();
    let headers = request.headers();
    if let Some(page_id) = status_v1_page(request.uri().path()) {
        let Some(file) = sites
            .pages
            .get(page_id)
            .and_then(|p| p.file(STATUS_V1_FILE))
        else {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        };
        let mut response = file_response(file, headers, head);
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(STATUS_V1_CACHE_CONTROL),
        );
        return response;
    }
    let (page_id, path) = match page_route(edge, &sites, request) {
        Route::Page { page, path } => (page, path),
        Route::AddSlash(location) => {
            let mut response = plain(StatusCode::MOVED_PERMANENTLY, "moved\n");
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return response;
        }
        Route::NotFound => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let Some(page) = sites.pages.get(&page_id) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    if path.trim_start_matches('/') == "events" {
        return events(edge, &page_id);
    }
    let Ok(file_path) = relative_file(&path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let Some(file) = page.file(&file_path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    file_response(file, headers, head)
}

/// Which page and path a request means: by host, then default page, then
/// path prefix (see [`route`]).
fn page_route(edge: &Edge, sites: &Sites, request: &Request<Incoming>) -> Route {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_name);
    let host_page = host.as_deref().and_then(|h| {
        edge.hosts
            .iter()
            .find(|(name, _)| name == h)
            .map(|(_, page)| page.as_str())
            .or_else(|| sites.hosts.get(h).map(String::as_str))
    });
    let default = edge
        .default_page
        .as_deref()
        .filter(|p| sites.pages.contains_key(*p));
    let default_has = |path: &str| {
        default.is_some_and(|page| {
            path.trim_start_matches('/') == "events"
                || relative_file(path)
                    .is_ok_and(|file| sites.pages.get(page).is_some_and(|p| p.has(&file)))
        })
    };
    route(host_page, default, request.uri().path(), default_has, |p| {
        sites.pages.contains_key(p)
    })
}

/// A file's response: the negotiated variant, 304 for a matching
/// `If-None-Match`, no body for HEAD.
fn file_response(
    file: &crate::site::File,
    headers: &hyper::HeaderMap,
    head: bool,
) -> Response<Body> {
    let encoding = negotiate(
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok()),
        file.br.is_some(),
        file.gzip.is_some(),
    );
    let variant = file.variant(encoding);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| variant.etag.to_str().ok().map(|etag| etag_matches(v, etag)))
        .unwrap_or(false);
    let body = if not_modified || head {
        Bytes::new()
    } else {
        variant.body.clone()
    };
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.headers_mut() = variant.headers.clone();
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response.headers_mut().remove(header::CONTENT_TYPE);
    } else if head {
        response.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(variant.body.len()),
        );
    }
    response
}

fn events(edge: &Edge, page: &str) -> Response<Body> {
    if edge.hub.clients() >= edge.max_sse_clients {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live clients; poll live.json\n",
        );
    }
    let Some(stream) = edge.hub.subscribe(page) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let mut response = Response::new(Either::Right(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Tells nginx-style proxies in front not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Accepts connections until `shutdown`, at most `max_connections` at once;
/// one more is closed at once so it cannot take memory from the others.
pub async fn accept_loop(
    listener: TcpListener,
    edge: Arc<Edge>,
    max_connections: usize,
    refused: IntCounter,
    shutdown: beacon_core::shutdown::Shutdown,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, usually: wait a little, go on.
                tracing::warn!(error = %e, "Cannot accept a connection.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // A whole page fits the socket at once, so a response is one write
        // instead of waiting for the kernel's buffer to grow; the kernel
        // only uses this memory while a response is in flight.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
        let edge = edge.clone();
        // Connections are not tracked by shutdown: an event stream never
        // ends by itself, and the process ending closes them.
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let edge = edge.clone();
                async move { Ok::<_, Infallible>(handle_any(&edge, request, peer.ip()).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(64)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "Connection ended with an error.");
            }
            drop(permit);
        });
    }
}
