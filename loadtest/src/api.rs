//! `api`: authenticated `POST /api/v1/incidents/{id}/updates` through the
//! real api daemon and decider, against the raw request/reply rate of the
//! decider's own `beacon.api.incident.update` in the same run.
//!
//! Both paths end when the update's event is durable (the decider answers
//! after its conditional publish is acknowledged). `--workers` clients run
//! at once; each owns its own incidents, so no two requests race for one
//! incident. Every phase gets fresh incidents, so both see the same
//! history lengths.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use beacon_contract::api;
use beacon_contract::api::{
    ApiReply, ChangeIncidentRequest, CreateApiKeyRequest, CreateIncidentRequest, CreatedApiKey,
};
use beacon_contract::incident::Incident;
use beacon_contract::messages::{Impact, IncidentState};
use beacon_contract::topology::{ensure, Topology};
use beacon_page::config::api::ApplyConfigRequest;
use beacon_testkit::{free_port, DaemonProcess};
use serde::Serialize;

use crate::baseline::bounded;
use crate::cli::ApiArgs;
use crate::error::LoadError;
use crate::lease_takeover::percentile;
use crate::progress;
use crate::report::{rate, ratio};

/// One path's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathFigures {
    /// Requests.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
}

/// The scenario's JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiReport {
    /// Always `api`.
    pub scenario: &'static str,
    /// Server version.
    pub nats_server_version: String,
    /// Concurrent clients.
    pub workers: u64,
    /// The decider's bus API asked directly.
    pub raw_bus: PathFigures,
    /// The HTTP API with a key, through the api daemon to the decider.
    pub http: PathFigures,
    /// HTTP requests/s over raw bus requests/s.
    pub http_vs_raw_bus: f64,
    /// HTTP p99 over raw bus p99.
    pub p99_http_vs_raw_bus: f64,
}

async fn ask<Req: Serialize, Res: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: api::Endpoint<Req, Res>,
    request: &Req,
) -> Result<Res, LoadError> {
    let subject = endpoint.subject();
    let payload = serde_json::to_vec(request).map_err(|e| LoadError::Report(e.to_string()))?;
    let reply = client
        .request(subject, payload.into())
        .await
        .map_err(|e| LoadError::bus(subject, e))?;
    match serde_json::from_slice::<ApiReply<Res>>(&reply.payload) {
        Ok(ApiReply::Ok { result }) => Ok(result),
        Ok(other) => Err(LoadError::Unexpected(format!(
            "{subject}: {}",
            serde_json::to_string(&match other {
                ApiReply::Invalid { errors } => serde_json::json!({"invalid": errors}),
                ApiReply::Failed { message } | ApiReply::Conflict { message, .. } =>
                    serde_json::json!(message),
                ApiReply::Ok { .. } => serde_json::json!("ok"),
            })
            .unwrap_or_default()
        ))),
        Err(e) => Err(LoadError::Unexpected(format!(
            "{subject}: unreadable reply: {e}"
        ))),
    }
}

async fn incidents(client: &async_nats::Client, count: u64) -> Result<Vec<String>, LoadError> {
    let mut ids = Vec::new();
    for n in 0..count {
        let incident: Incident = ask(
            client,
            api::INCIDENT_CREATE,
            &CreateIncidentRequest {
                page: "bench".into(),
                title: format!("Bench {n}"),
                impact: Impact::Minor,
                state: None,
                body: "Opened by the benchmark.".into(),
                components: vec![],
                actor: "loadtest".into(),
                idempotency_key: None,
            },
        )
        .await?;
        ids.push(incident.id);
    }
    Ok(ids)
}

fn figures(requests: u64, elapsed: Duration, mut latencies: Vec<u64>) -> PathFigures {
    latencies.sort_unstable();
    PathFigures {
        requests,
        requests_per_s: rate(requests, elapsed),
        p50_us: percentile(&latencies, 50.0),
        p99_us: percentile(&latencies, 99.0),
    }
}

/// Runs `workers` clients, each sending `per_worker` requests with `send`
/// on its own incidents; returns the figures.
async fn drive<F, Fut>(
    workers: u64,
    per_worker: u64,
    ids: &[String],
    send: F,
) -> Result<PathFigures, LoadError>
where
    F: Fn(String, u64) -> Fut + Clone,
    Fut: std::future::Future<Output = Result<(), LoadError>>,
{
    let started = Instant::now();
    let tasks = (0..workers).map(|w| {
        let send = send.clone();
        let own: Vec<String> = ids
            .iter()
            .skip(w as usize)
            .step_by(workers as usize)
            .cloned()
            .collect();
        async move {
            let mut latencies = Vec::with_capacity(per_worker as usize);
            for n in 0..per_worker {
                let id = own[(n as usize) % own.len()].clone();
                let at = Instant::now();
                send(id, n).await?;
                latencies.push(at.elapsed().as_micros() as u64);
            }
            Ok::<_, LoadError>(latencies)
        }
    });
    let mut latencies = Vec::new();
    for result in futures::future::join_all(tasks).await {
        latencies.extend(result?);
    }
    Ok(figures(workers * per_worker, started.elapsed(), latencies))
}

/// Runs the scenario and returns its report.
pub async fn run(args: &ApiArgs) -> Result<ApiReport, LoadError> {
    let bus = crate::server::open(args.nats_url.as_deref()).await?;
    let version = bus.client.server_info().version;
    let js = jetstream::new(bus.client.clone());
    ensure(&js, &Topology::default())
        .await
        .map_err(|e| LoadError::bus("ensure topology", e))?;
    let decider = DaemonProcess::spawn_with_admin(
        "beacon-decider",
        vec!["--nats-url".into(), bus.url.clone()],
    );
    decider.wait_ready(Duration::from_secs(60)).await;
    let port = free_port();
    let api_daemon = DaemonProcess::spawn_with_admin(
        "beacon-api",
        vec![
            "--nats-url".into(),
            bus.url.clone(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
    );
    api_daemon.wait_ready(Duration::from_secs(60)).await;
    let raw = beacon_page::config::parse_toml(
        "[page]\nid = \"bench\"\nname = \"Bench\"\n[[components]]\nid = \"api\"\nname = \"API\"\n",
    )
    .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    ask(
        &bus.client,
        beacon_page::config::api::CONFIG_APPLY,
        &ApplyConfigRequest {
            config: raw,
            expected_revision: None,
        },
    )
    .await?;
    // The decider loads the config through its watch; wait for it to answer for the page.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key: CreatedApiKey = ask(
        &bus.client,
        api::APIKEY_CREATE,
        &CreateApiKeyRequest {
            page: "bench".into(),
            name: "bench".into(),
            scopes: vec![beacon_contract::api::ApiScope::IncidentsWrite],
            rate_per_minute: Some(100_000),
            actor: "loadtest".into(),
        },
    )
    .await?;
    let per_worker = (args.requests / args.workers).max(1);
    let incident_count = args.workers * args.incidents_per_worker;

    progress(&format!(
        "Raw bus: {} workers x {per_worker} updates.",
        args.workers
    ));
    let ids = incidents(&bus.client, incident_count).await?;
    let client = bus.client.clone();
    let raw_bus = bounded(
        "raw bus updates",
        args.phase_timeout,
        drive(args.workers, per_worker, &ids, move |id, n| {
            let client = client.clone();
            async move {
                let _: Incident = ask(
                    &client,
                    api::INCIDENT_UPDATE,
                    &ChangeIncidentRequest {
                        page: "bench".into(),
                        incident: id,
                        expected_revision: None,
                        state: Some(IncidentState::Identified),
                        body: format!("Update {n}"),
                        title: None,
                        impact: None,
                        components: None,
                        actor: "loadtest".into(),
                        idempotency_key: None,
                    },
                )
                .await?;
                Ok(())
            }
        }),
    )
    .await?;
    progress(&format!(
        "Raw bus: {:.0} updates/s, p99 {} us.",
        raw_bus.requests_per_s, raw_bus.p99_us
    ));

    progress(&format!(
        "HTTP: {} workers x {per_worker} updates.",
        args.workers
    ));
    let ids = incidents(&bus.client, incident_count).await?;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let auth = format!("Bearer {}", key.key);
    let http_figures = bounded(
        "HTTP updates",
        args.phase_timeout,
        drive(args.workers, per_worker, &ids, move |id, n| {
            let http = http.clone();
            let url = format!("{base}/api/v1/incidents/{id}/updates");
            let auth = auth.clone();
            async move {
                let response = http
                    .post(&url)
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .body(format!(
                        r#"{{"status":"identified","message":"Update {n}"}}"#
                    ))
                    .send()
                    .await
                    .map_err(|e| LoadError::Unexpected(format!("HTTP: {e}")))?;
                if response.status().as_u16() != 201 {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    return Err(LoadError::Unexpected(format!("HTTP {status}: {body}")));
                }
                Ok(())
            }
        }),
    )
    .await?;
    progress(&format!(
        "HTTP: {:.0} updates/s, p99 {} us.",
        http_figures.requests_per_s, http_figures.p99_us
    ));
    drop(api_daemon);
    drop(decider);
    Ok(ApiReport {
        scenario: "api",
        nats_server_version: version,
        workers: args.workers,
        http_vs_raw_bus: ratio(http_figures.requests_per_s, raw_bus.requests_per_s),
        p99_http_vs_raw_bus: ratio(http_figures.p99_us as f64, raw_bus.p99_us as f64),
        raw_bus,
        http: http_figures,
    })
}
