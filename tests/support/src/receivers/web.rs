//! A loopback HTTP server that keeps every request and answers with what
//! the test's responder says: the receiving end of webhooks, Slack and
//! Teams, and the Twilio Messages API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::task::JoinHandle;

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names in lowercase.
    pub headers: BTreeMap<String, String>,
    /// Body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as form parameters.
    pub fn form(&self) -> BTreeMap<String, String> {
        url_decode_form(&self.body)
    }
}

/// Decodes `application/x-www-form-urlencoded`.
pub fn url_decode_form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Reply {
    /// A status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// A status with a JSON body.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Decides the answer to each request (the request is kept either way).
pub type Responder = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    responder: Arc<Mutex<Responder>>,
    /// Keep only the path and the id headers (for 100,000s of requests).
    lean: bool,
}

/// Headers a lean sink keeps.
const LEAN_HEADERS: &[&str] = &["webhook-id", "idempotency-key"];

/// The server.
pub struct WebSink {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl WebSink {
    /// Starts it on `ip`, a free port, answering 200 until told otherwise.
    pub async fn start_on(ip: &str) -> WebSink {
        Self::start_with(ip, false).await
    }

    /// Starts one on 127.0.0.1 that keeps only each request's path, time
    /// and id headers (`webhook-id`, `idempotency-key`): for fan-outs of a
    /// hundred thousand requests.
    pub async fn start_lean() -> WebSink {
        Self::start_with("127.0.0.1", true).await
    }

    async fn start_with(ip: &str, lean: bool) -> WebSink {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind HTTP sink");
        let addr = listener.local_addr().expect("HTTP sink address");
        let shared = Shared {
            received: Arc::default(),
            responder: Arc::new(Mutex::new(Arc::new(|_: &Received| Reply::status(200)))),
            lean,
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebSink { addr, shared, task }
    }

    /// Starts it on 127.0.0.1.
    pub async fn start() -> WebSink {
        Self::start_on("127.0.0.1").await
    }

    /// `http://ADDR` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers from now on with `responder`.
    pub fn respond(&self, responder: impl Fn(&Received) -> Reply + Send + Sync + 'static) {
        *self.shared.responder.lock().expect("responder") = Arc::new(responder);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received").clone()
    }

    /// How many requests came.
    pub fn count(&self) -> usize {
        self.shared.received.lock().expect("received").len()
    }
}

impl Drop for WebSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: headers
            .iter()
            .filter(|(k, _)| !shared.lean || LEAN_HEADERS.contains(&k.as_str()))
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: if shared.lean { Vec::new() } else { body.to_vec() },
        at: Instant::now(),
    };
    let responder = shared.responder.lock().expect("responder").clone();
    let reply = responder(&received);
    shared.received.lock().expect("received").push(received);
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
