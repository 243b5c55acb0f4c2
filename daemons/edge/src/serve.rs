//! The HTTP side of the edge: an accept loop with a connection limit,
//! HTTP/1.1 connections with small header buffers and a header timeout (a
//! slow or oversized client is cut off alone), and one handler that serves
//! every page from memory. [`decide`] is the handler's core, shared by the
//! static path ([`crate::direct`], which answers GET and HEAD of files
//! itself) and by hyper, which takes every connection over at the first
//! request the static path leaves to it. It reads no file, so it keeps
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
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
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
use crate::site::{Sendable, Sites};

/// A response body: bytes, or an event stream.
pub type Body = Either<Full<Bytes>, StreamBody<FrameStream>>;

/// Largest request head (request line and headers) accepted; anything
/// bigger is answered 431 and the connection closed.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Socket send buffer asked for on every connection.
pub const SEND_BUFFER_BYTES: usize = 512 * 1024;

/// How long a client may take to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Most header lines in a request head; more are answered 431.
pub const MAX_HEADERS: usize = 64;

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
    pub(crate) fn count(&self, status: StatusCode) {
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
    /// The pace every client must take its responses at.
    pub pace: crate::pace::Pace,
}

/// Cache policy of `/api/v1/status/{page}`: pollers may reuse it for 30 s.
pub const STATUS_V1_CACHE_CONTROL: &str = "public, max-age=30";

/// A request as the handler reads it: the method, the path (without the
/// query) and the three headers that decide a file's response, each as
/// [`HeaderValue::to_str`] gives the first value. Both the hyper path and
/// [`crate::direct`] build one, so both decide alike.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// `GET`, `HEAD`, …
    pub method: &'a str,
    /// The URI's path.
    pub path: &'a str,
    /// `Host`.
    pub host: Option<&'a str>,
    /// `Accept-Encoding`.
    pub accept_encoding: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
}

impl<'a> Ask<'a> {
    /// What the handler reads of a hyper request.
    pub fn of<B>(request: &'a Request<B>) -> Self {
        let headers = request.headers();
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        Ask {
            method: request.method().as_str(),
            path: request.uri().path(),
            host: text(header::HOST),
            accept_encoding: text(header::ACCEPT_ENCODING),
            if_none_match: text(header::IF_NONE_MATCH),
        }
    }
}

/// A response decided from the request head alone: its status, its
/// headers (as hyper would be given them) and which body.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers; hyper adds `content-length` (unless present), `date` and
    /// `connection` as it does for any response.
    pub headers: HeaderMap,
    /// Body.
    pub body: ReplyBody,
}

/// The body of a [`Reply`].
#[derive(Debug)]
pub enum ReplyBody {
    /// A fixed text.
    Text(&'static str),
    /// A file variant's bytes, and where they sit in its version's memfd.
    File(Bytes, Option<Sendable>),
    /// None (a 304, or HEAD of a file, whose length is in the headers).
    Empty,
}

impl ReplyBody {
    /// The bytes, whichever path sends them.
    pub fn bytes(&self) -> Bytes {
        match self {
            ReplyBody::Text(text) => Bytes::from_static(text.as_bytes()),
            ReplyBody::File(bytes, _) => bytes.clone(),
            ReplyBody::Empty => Bytes::new(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            ReplyBody::Text(text) => text.len(),
            ReplyBody::File(bytes, _) => bytes.len(),
            ReplyBody::Empty => 0,
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Reply {
    /// The hyper response.
    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Either::Left(Full::new(self.body.bytes())));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// What to do with a request, decided from its head.
#[derive(Debug)]
pub enum Decision {
    /// Answer this.
    Reply(Reply),
    /// Open the event stream of this page.
    Events(String),
}

fn plain(status: StatusCode, text: &'static str) -> Reply {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Reply {
        status,
        headers,
        body: ReplyBody::Text(text),
    }
}

/// What the HTTP API answers for this request, and for which page: only
/// with `--api-url`, and only sign-up and its links, routed like files.
/// The links carry a signed token that names the page, so they also work
/// where no page is routed.
pub fn forward_target(edge: &Edge, ask: &Ask<'_>) -> Option<(Forward, Option<String>)> {
    edge.forward.as_ref()?;
    // Most requests are for files: skip routing twice for them.
    if !ask.path.contains("/api/v2/subscribers") {
        return None;
    }
    let sites = edge.sites.load();
    match page_route(edge, &sites, ask) {
        Route::Page { page, path } => forwarded(&path).map(|kind| (kind, Some(page))),
        Route::AddSlash(_) => None,
        Route::NotFound => forwarded(ask.path)
            .filter(|kind| *kind != Forward::SignUp)
            .map(|kind| (kind, None)),
    }
}

/// Serves one request, handing sign-up to the HTTP API.
pub async fn handle_any(edge: &Edge, request: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let target = forward_target(edge, &Ask::of(&request));
    let (Some(forwarder), Some((kind, page))) = (&edge.forward, target) else {
        return handle(edge, &request);
    };
    let response = if kind.takes(request.method().as_str()) {
        forwarder
            .forward(request, kind, page.as_deref(), peer)
            .await
    } else {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        if let Ok(allow) = HeaderValue::from_str(kind.allow()) {
            reply.headers.insert(header::ALLOW, allow);
        }
        reply.into_response()
    };
    edge.counters.count(response.status());
    response
}

/// Serves one request.
pub fn handle<B>(edge: &Edge, request: &Request<B>) -> Response<Body> {
    let response = match decide(edge, &Ask::of(request)) {
        Decision::Reply(reply) => reply.into_response(),
        Decision::Events(page) => events(edge, &page),
    };
    edge.counters.count(response.status());
    response
}

/// The one place that decides a request's status, headers and body, for
/// the hyper path and [`crate::direct`] alike.
pub fn decide(edge: &Edge, ask: &Ask<'_>) -> Decision {
    Decision::Reply(match respond(edge, ask) {
        Ok(reply) => reply,
        Err(page) => return Decision::Events(page),
    })
}

/// A reply, or `Err(page)` for that page's event stream.
fn respond(edge: &Edge, ask: &Ask<'_>) -> Result<Reply, String> {
    let head = ask.method == "HEAD";
    if ask.method != "GET" && !head {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        reply
            .headers
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(reply);
    }
    let sites = edge.sites.load();
    if let Some(page_id) = status_v1_page(ask.path) {
        let Some(file) = sites
            .pages
            .get(page_id)
            .and_then(|p| p.file(STATUS_V1_FILE))
        else {
            return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
        };
        let mut reply = file_response(file, ask, head);
        reply.headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(STATUS_V1_CACHE_CONTROL),
        );
        return Ok(reply);
    }
    let (page_id, path) = match page_route(edge, &sites, ask) {
        Route::Page { page, path } => (page, path),
        Route::AddSlash(location) => {
            let mut reply = plain(StatusCode::MOVED_PERMANENTLY, "moved\n");
            if let Ok(value) = HeaderValue::from_str(&location) {
                reply.headers.insert(header::LOCATION, value);
            }
            return Ok(reply);
        }
        Route::NotFound => return Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
    };
    let Some(page) = sites.pages.get(&page_id) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    if path.trim_start_matches('/') == "events" {
        return Err(page_id);
    }
    let Ok(file_path) = relative_file(&path) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let Some(file) = page.file(&file_path) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    Ok(file_response(file, ask, head))
}

/// Which page and path a request means: by host, then default page, then
/// path prefix (see [`route`]).
fn page_route(edge: &Edge, sites: &Sites, ask: &Ask<'_>) -> Route {
    let host = ask.host.map(host_name);
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
    route(host_page, default, ask.path, default_has, |p| {
        sites.pages.contains_key(p)
    })
}

/// A file's response: the negotiated variant, 304 for a matching
/// `If-None-Match`, no body for HEAD.
fn file_response(file: &crate::site::File, ask: &Ask<'_>, head: bool) -> Reply {
    let encoding = negotiate(ask.accept_encoding, file.br.is_some(), file.gzip.is_some());
    let variant = file.variant(encoding);
    let not_modified = ask
        .if_none_match
        .and_then(|v| variant.etag.to_str().ok().map(|etag| etag_matches(v, etag)))
        .unwrap_or(false);
    let body = if not_modified || head || variant.body.is_empty() {
        ReplyBody::Empty
    } else {
        ReplyBody::File(variant.body.clone(), variant.sendable.clone())
    };
    let mut reply = Reply {
        status: StatusCode::OK,
        headers: variant.headers.clone(),
        body,
    };
    if not_modified {
        reply.status = StatusCode::NOT_MODIFIED;
        reply.headers.remove(header::CONTENT_TYPE);
    } else if head {
        reply.headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(variant.body.len()),
        );
    }
    reply
}

fn events(edge: &Edge, page: &str) -> Response<Body> {
    if edge.hub.clients() >= edge.max_sse_clients {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live clients; poll live.json\n",
        )
        .into_response();
    }
    let Some(stream) = edge.hub.subscribe(page) else {
        return plain(StatusCode::NOT_FOUND, "not found\n").into_response();
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

/// Serves a connection with hyper until it ends: every request the static
/// path ([`crate::direct`]) does not answer itself, and all after it.
pub async fn serve_with_hyper<I>(io: I, edge: Arc<Edge>, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let edge = edge.clone();
        async move { Ok::<_, Infallible>(handle_any(&edge, request, peer.ip()).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "Connection ended with an error.");
    }
}

/// Accepts connections until `shutdown`, at most `max_connections` at once;
/// one more is closed at once so it cannot take memory from the others.
pub async fn accept_loop(
    listener: TcpListener,
    edge: Arc<Edge>,
    max_connections: usize,
    refused: IntCounter,
    shutdown: beacon_runtime::shutdown::Shutdown,
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
        // A whole page fits the socket at once, so a response goes in one
        // write (or one sendfile) instead of waiting for the kernel's
        // buffer to grow; the kernel only uses this memory while a
        // response is in flight.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
        let edge = edge.clone();
        // Connections are not tracked by shutdown: an event stream never
        // ends by itself, and the process ending closes them.
        tokio::spawn(async move {
            crate::direct::serve(stream, edge, peer).await;
            drop(permit);
        });
    }
}
