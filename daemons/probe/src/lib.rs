//! The probe: runs the checks assigned to its region and publishes every
//! result to HEALTH; serves push checks; reports its own health.
//!
//! # Layout
//!
//! - [`checks`]: one module per check kind (HTTP, TCP, ICMP, DNS, push),
//!   one dispatching `match`, and the shared judging of conditions.
//! - [`schedule`]: follows KV `config`; one timer per check, jitter without
//!   drift, a concurrency limit, hot reload check by check.
//! - [`ingest`]: the push endpoint (heartbeats, Alertmanager, JSON
//!   signals), answering only once a result is durable.
//! - [`heartbeat`]: the canary and the probe's heartbeat.
//! - [`outbox`]: buffers results while the bus is away and publishes them, pipelined.

pub mod checks;
pub mod heartbeat;
pub mod ingest;
pub mod outbox;
pub mod schedule;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beacon_contract::names::KV_CONFIG;
use beacon_page::config::{HttpMethod, HttpTarget};
use beacon_runtime::buckets;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::publish::Publisher;
use tokio::sync::Semaphore;

use crate::checks::http::HttpClient;
use crate::checks::Clients;
use crate::heartbeat::Heartbeats;
use crate::ingest::Ingest;
use crate::outbox::Outbox;
use crate::schedule::{ScheduleMetrics, Scheduler};

/// Probe settings beyond the common flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Region this probe reports as.
    pub region: String,
    /// This process's name within the region, in heartbeats.
    pub probe_id: String,
    /// Results kept while the bus is unreachable.
    pub outbox_capacity: usize,
    /// Most checks running at once.
    pub concurrency: usize,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// URL of the canary check (something known to work).
    pub canary_url: Option<String>,
    /// Where to serve the push ingest endpoint.
    pub push_listen: Option<SocketAddr>,
}

impl ProbeConfig {
    /// Checks the settings, returning every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Err(e) = beacon_contract::names::check_token(&self.region) {
            errors.push(format!("--region: {e}"));
        }
        if self.probe_id.trim().is_empty() {
            errors.push("--probe-id: must not be empty".to_owned());
        }
        if self.outbox_capacity == 0 {
            errors.push("--outbox-capacity: must be at least 1".to_owned());
        }
        if self.concurrency == 0 {
            errors.push("--concurrency: must be at least 1".to_owned());
        }
        if self.heartbeat_interval < Duration::from_secs(1) {
            errors.push("--heartbeat-interval: must be at least 1s".to_owned());
        }
        if let Some(url) = &self.canary_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => errors.push(format!("--canary-url: {url:?} is not an http(s) URL")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Why the probe stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_runtime::telemetry::MetricError),
    /// The HTTP client could not be built (TLS setup).
    #[error(transparent)]
    Http(#[from] checks::http::TlsSetupError),
    /// The push endpoint could not be bound.
    #[error("cannot serve the push endpoint on {addr}: {reason}")]
    Listen {
        /// Address asked for.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Runs the probe until shutdown.
pub async fn run(daemon: Daemon, config: ProbeConfig) -> Result<(), RunError> {
    let metrics = &daemon.process.metrics;
    let outbox = Arc::new(Outbox::new(
        config.outbox_capacity,
        metrics.single_gauge("outbox_depth", "Results waiting to be published")?,
        metrics.single_counter(
            "outbox_dropped_total",
            "Results dropped because the outbox was full",
        )?,
    ));
    let http = HttpClient::new(Some(metrics.counter(
        "http_connections_total",
        "HTTP connections used by checks, by new or reused",
        &["connection"],
    )?))?;
    let schedule_metrics = ScheduleMetrics {
        runs: metrics.counter("checks_total", "Checks run, by kind and outcome", &["kind", "outcome"])?,
        errors: metrics.counter(
            "check_errors_total",
            "Failed or degraded check runs, by kind and error kind",
            &["kind", "error_kind"],
        )?,
        latency: metrics.histogram("check_duration_seconds", "Check latency, by kind", &["kind"])?,
        lateness: metrics
            .histogram_with_buckets(
                "schedule_lateness_seconds",
                "Time from a check's due time to its start",
                &[],
                // Fine below 100 ms, where the goal is.
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0,
                ],
            )?
            .with_label_values::<&str>(&[]),
        scheduled: metrics.single_gauge("checks_scheduled", "Checks this probe runs")?,
        skipped: metrics.counter(
            "checks_skipped_total",
            "Runs not started, by reason (overlap: still running; behind: the schedule fell an interval behind)",
            &["reason"],
        )?,
        in_flight: metrics.single_gauge("checks_in_flight", "Check runs going on")?,
        reloads: metrics.counter(
            "config_reloads_total",
            "Page configs applied, by outcome",
            &["outcome"],
        )?,
        certificates: Arc::new(schedule::Certificates::new(metrics.single_gauge(
            "certificate_expiry_seconds",
            "Seconds until the soonest TLS certificate any HTTPS check saw expires (negative: expired)",
        )?)),
    };

    let Some(store) = buckets::open(&daemon.js, KV_CONFIG, &daemon.process.shutdown).await else {
        return Ok(());
    };

    {
        let publisher = Publisher::new(
            daemon.client.clone(),
            outbox::IN_FLIGHT,
            Duration::from_secs(10),
        );
        let shutdown = daemon.process.shutdown.clone();
        let outbox = outbox.clone();
        daemon.process.shutdown.spawn(async move {
            outbox
                .run_sender(publisher, shutdown, Duration::from_secs(3))
                .await
        });
    }

    let ingest = match config.push_listen {
        Some(addr) => {
            let ingest = Ingest::start(
                &daemon,
                &config.region,
                outbox.clone(),
                metrics.counter(
                    "push_requests_total",
                    "Push requests, by format and HTTP status answered",
                    &["format", "status"],
                )?,
            );
            let bound = ingest.serve(addr).await.map_err(|e| RunError::Listen {
                addr,
                reason: e.to_string(),
            })?;
            tracing::info!(addr = %bound, "Push endpoint listening.");
            Some(ingest)
        }
        None => None,
    };

    let scheduler = Arc::new(Scheduler {
        daemon: daemon.clone(),
        region: config.region.clone(),
        clients: Clients::new(http.clone()),
        outbox: outbox.clone(),
        metrics: schedule_metrics.clone(),
        limit: Arc::new(Semaphore::new(config.concurrency)),
        ingest,
    });

    let heartbeats = Heartbeats {
        daemon: daemon.clone(),
        region: config.region.clone(),
        probe: config.probe_id.clone(),
        interval: config.heartbeat_interval,
        canary: config
            .canary_url
            .as_ref()
            .map(|url| Arc::new(canary_target(url))),
        http,
        scheduled: schedule_metrics.scheduled.clone(),
        sent: metrics.counter(
            "heartbeats_total",
            "Heartbeats sent, by outcome",
            &["outcome"],
        )?,
        canary_up: metrics.single_gauge(
            "canary_up",
            "1 while the canary check passes, 0 while it fails",
        )?,
    };

    {
        let http = scheduler.clients.http.clone();
        let shutdown = daemon.process.shutdown.clone();
        daemon.process.shutdown.spawn(async move {
            while shutdown.sleep(Duration::from_secs(15)).await {
                http.sweep();
            }
        });
    }

    let (loaded_tx, mut loaded_rx) = tokio::sync::watch::channel(false);
    daemon
        .process
        .shutdown
        .spawn(scheduler.run(store, loaded_tx));
    tokio::select! {
        _ = daemon.process.shutdown.cancelled() => return Ok(()),
        _ = loaded_rx.wait_for(|loaded| *loaded) => {}
    }
    daemon.process.shutdown.spawn(heartbeats.run());
    daemon.process.readiness.set(true);
    tracing::info!(region = %config.region, "Probe ready.");
    daemon.process.shutdown.cancelled().await;
    Ok(())
}

/// The canary: a GET of `url` on a new connection each time, passing on
/// any 2xx (a pooled connection could hide a broken network).
pub fn canary_target(url: &str) -> HttpTarget {
    HttpTarget {
        url: url.to_owned(),
        method: HttpMethod::Get,
        headers: Vec::new(),
        body: None,
        follow_redirects: true,
        max_redirects: 5,
        expect_status: Vec::new(),
        body_contains: None,
        max_body_bytes: 64 * 1024,
        tls_skip_verify: false,
        keep_alive: false,
        conditions: Vec::new(),
        degraded_if: Vec::new(),
    }
}
