//! Helpers for Beacon's cross-daemon integration tests (the tests live in
//! `tests/tests/`). Servers and daemon processes come from `beacon-testkit`.
//!
//! # Layout
//!
//! - [`HttpTarget`]: a local HTTP service a test can take down and bring back.
//! - [`Stack`]: the walking skeleton as processes: decider, two probe
//!   regions, publisher and edge.
//! - [`apply_config`]: applies a page config through the decider's API.
//! - [`get`]: a plain HTTP GET returning status and body.
//! - [`lab`]: three regions on one machine (`beacon-lab`, `tests/tests/regions.rs`).
//! - [`rig`]: a decider with probes per region, and readers of what it decided.

pub mod lab;
pub mod rig;

use std::sync::Arc;
use std::time::Duration;

use beacon_contract::api::ApiReply;
use beacon_page::config::api::{ApplyConfigRequest, ApplyConfigResult, CONFIG_APPLY};
use beacon_testkit::{free_port, wait_until, DaemonProcess};
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
        // A port below the ephemeral range: while the target is down, no
        // outgoing connection can take it.
        let port = beacon_testkit::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind target");
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
    let raw = beacon_page::config::parse_toml(toml_text).expect("test config parses");
    let request = serde_json::to_vec(&ApplyConfigRequest {
        config: raw,
        expected_revision: None,
    })
    .expect("encode request");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match client
            .request(CONFIG_APPLY.subject(), request.clone().into())
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
            Err(e) => panic!("no decider answered {}: {e}", CONFIG_APPLY.subject()),
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

pub use beacon_testkit::wait::{DECIDE, READY};

/// A one-component page (`api`, an HTTP check of `target` from regions `eu`
/// and `us`, 1 s interval, thresholds of 2).
pub fn page_config(page: &str, name: &str, target: &str) -> String {
    format!(
        r#"
[page]
id = "{page}"
name = "{name}"

[defaults]
regions = ["eu", "us"]
interval = "1s"
timeout = "1s"
failure_threshold = 2
recovery_threshold = 2

[[components]]
id = "api"
name = "API"

[[components.checks]]
type = "http"
url = "{target}"
"#
    )
}

/// The walking skeleton as real processes, the edge last in `daemons`.
pub struct Stack {
    /// Where the edge serves the page.
    pub edge_url: String,
    /// Decider, probe eu, probe us, publisher, edge. Kept for their Drop:
    /// killed (and their logs printed on failure) at the end.
    pub daemons: Vec<DaemonProcess>,
    /// The publisher's origin directory, which the edge serves.
    pub origin: tempfile::TempDir,
}

impl Stack {
    /// Starts the stack serving `page` and waits until every daemon is
    /// ready. `bus_args(role)` gives the NATS flags of a daemon role
    /// (`decider`, `probe`, `publisher`): a URL, and credentials if any.
    pub async fn start(page: &str, bus_args: impl Fn(&str) -> Vec<String>) -> Stack {
        let origin = tempfile::tempdir().expect("origin dir");
        let origin_path = origin.path().display().to_string();
        let edge_port = free_port();
        let with = |role: &str, extra: &[&str]| {
            let mut args = bus_args(role);
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let daemons = vec![
            DaemonProcess::spawn_with_admin("beacon-decider", with("decider", &[])),
            DaemonProcess::spawn_with_admin("beacon-probe", with("probe", &["--region", "eu"])),
            DaemonProcess::spawn_with_admin("beacon-probe", with("probe", &["--region", "us"])),
            DaemonProcess::spawn_with_admin(
                "beacon-publisher",
                with(
                    "publisher",
                    &["--origin", &origin_path, "--debounce", "50ms"],
                ),
            ),
            DaemonProcess::spawn_with_admin(
                "beacon-edge",
                vec![
                    "--origin".into(),
                    origin_path,
                    "--page".into(),
                    page.to_owned(),
                    "--listen".into(),
                    format!("127.0.0.1:{edge_port}"),
                ],
            ),
        ];
        for daemon in &daemons {
            daemon.wait_ready(READY).await;
        }
        Stack {
            edge_url: format!("http://127.0.0.1:{edge_port}"),
            daemons,
            origin,
        }
    }

    /// Waits until the edge serves component `api` as `want`; returns the summary.
    pub async fn wait_for_api_status(&self, want: &str) -> String {
        let url = format!("{}/api/v2/summary.json", self.edge_url);
        wait_until(
            &format!("edge to serve component api as {want}"),
            DECIDE,
            || {
                let url = url.clone();
                async move {
                    let (status, body) = get(&url).await?;
                    (status == 200 && component_status(&body, "api").as_deref() == Some(want))
                        .then_some(body)
                }
            },
        )
        .await
    }
}
