//! Helpers for Beacon's cross-daemon integration tests (the tests live in
//! `tests/tests/`). Servers and daemon processes come from `beacon-testkit`.
//!
//! # Layout
//!
//! - [`HttpTarget`]: a local HTTP service a test can take down and bring back.
//! - [`apply_config`]: applies a page config through the decider's API.
//! - [`get`]: a plain HTTP GET returning status and body.

use std::sync::Arc;
use std::time::Duration;

use beacon_core::api::{ApiReply, ApplyConfigRequest, ApplyConfigResult};
use beacon_core::names::api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A local HTTP target answering `200 ok` while up and refusing connections
/// while down, on the same port throughout.
pub struct HttpTarget {
    port: u16,
    server: Option<JoinHandle<()>>,
}

impl HttpTarget {
    /// Starts the target, up.
    pub async fn start() -> HttpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let port = listener.local_addr().expect("target addr").port();
        HttpTarget {
            port,
            server: Some(tokio::spawn(serve(Arc::new(listener)))),
        }
    }

    /// Starts the target, up, on a given port (the demo's fixed ports).
    pub async fn start_on(port: u16) -> std::io::Result<HttpTarget> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        Ok(HttpTarget {
            port,
            server: Some(tokio::spawn(serve(Arc::new(listener)))),
        })
    }

    /// Whether the target is up.
    pub fn is_up(&self) -> bool {
        self.server.is_some()
    }

    /// The URL to check.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    /// Takes the target down: the port refuses connections.
    pub fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Brings the target back on the same port.
    pub async fn up(&mut self) {
        if self.server.is_some() {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("re-bind target port");
        self.server = Some(tokio::spawn(serve(Arc::new(listener))));
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.down();
    }
}

async fn serve(listener: Arc<TcpListener>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            let _ = socket.read(&mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
                .await;
        });
    }
}

/// Applies a page config (TOML) through `beacon.api.config.apply`, retrying
/// while no decider answers yet.
pub async fn apply_config(client: &async_nats::Client, toml_text: &str) -> ApplyConfigResult {
    let raw = beacon_core::config::parse_toml(toml_text).expect("test config parses");
    let request = serde_json::to_vec(&ApplyConfigRequest { config: raw }).expect("encode request");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match client
            .request(api::CONFIG_APPLY, request.clone().into())
            .await
        {
            Ok(reply) => {
                let reply: ApiReply<ApplyConfigResult> =
                    serde_json::from_slice(&reply.payload).expect("decode reply");
                match reply {
                    ApiReply::Ok { result } => return result,
                    other => panic!("config apply refused: {other:?}"),
                }
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("config apply not answered yet ({e}), retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no decider answered {}: {e}", api::CONFIG_APPLY),
        }
    }
}

/// GET `url`; `None` when the server cannot be reached.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The status of `component` in a Statuspage summary, if present.
pub fn component_status(summary: &str, component: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(summary).ok()?;
    value["components"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == component)
        .and_then(|c| c["status"].as_str())
        .map(str::to_owned)
}
