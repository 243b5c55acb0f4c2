//! The authoritative DNS responder: the steering and the last status
//! channel of the independence design, in one process.
//!
//! It answers A and AAAA for each page's host names with only the edges
//! that pass its HTTP health checks (with hysteresis, and a short TTL),
//! or all of them when none does; `TXT _status.<host>` with the page's
//! status, followed from KV `status` and kept on disk so it survives NATS
//! being gone; everything else it owns with no data or NXDOMAIN, and
//! names it does not own with REFUSED. It never recurses.
//!
//! # Layout
//!
//! - [`config`]: the configuration file and its checks.
//! - [`answer`]: what is answered, as a pure function (table-tested).
//! - [`health`]: per-edge hysteresis (pure) and the checking task.
//! - [`status`]: statuses, their TXT strings (pure) and their file.
//! - [`follow`]: KV `status` into the shared statuses.
//! - [`emergency`]: notices put up by hand, read from the state directory.
//! - [`server`]: the `hickory-server` request handler.

pub mod answer;
pub mod config;
pub mod emergency;
pub mod follow;
pub mod health;
pub mod server;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use beacon_runtime::connect::NatsArgs;
use beacon_runtime::daemon::Process;
use beacon_runtime::telemetry::MetricError;

use crate::config::DnsConfig;
use crate::status::StatusFile;

/// How long a TCP client may stay idle before its connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// What the responder runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// UDP and TCP address to answer on.
    pub listen: SocketAddr,
    /// The checked configuration.
    pub config: DnsConfig,
    /// Where the last known statuses are kept.
    pub state_dir: PathBuf,
    /// How to reach NATS for KV `status`.
    pub nats: NatsArgs,
}

/// Why the responder stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] MetricError),
    /// The state directory could not be created.
    #[error("cannot create the state directory {path}: {reason}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The listening address could not be bound.
    #[error("cannot listen on {addr} ({protocol}): {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        protocol: &'static str,
        /// Why.
        reason: String,
    },
}

/// Runs the responder until shutdown.
pub async fn run(process: Process, settings: Settings) -> Result<(), RunError> {
    std::fs::create_dir_all(&settings.state_dir).map_err(|e| RunError::StateDir {
        path: settings.state_dir.clone(),
        reason: e.to_string(),
    })?;
    let m = &process.metrics;
    let queries = m.counter(
        "queries_total",
        "DNS queries answered, by query type and response code",
        &["type", "rcode"],
    )?;
    let health_metrics = health::HealthMetrics {
        healthy: m.gauge(
            "edge_healthy",
            "1 while the edge passes its checks and is handed out",
            &["edge"],
        )?,
        checks: m.counter(
            "edge_checks_total",
            "Edge health checks, by outcome",
            &["edge", "outcome"],
        )?,
        changes: m.counter(
            "edge_changes_total",
            "Times an edge was left out of answers or taken back",
            &["edge"],
        )?,
    };
    let follow_metrics = follow::FollowMetrics {
        changes: m.single_counter(
            "status_changes_total",
            "Component statuses followed from KV status that changed a TXT answer",
        )?,
        followed: m.single_gauge(
            "status_followed",
            "1 once KV status has been read to its end since the start",
        )?,
        save_failures: m.single_counter(
            "status_save_failures_total",
            "Failed writes of the last known statuses to disk",
        )?,
    };
    let config = Arc::new(settings.config);
    let file = StatusFile::in_dir(&settings.state_dir);
    let statuses = Arc::new(ArcSwap::from_pointee(file.load()));
    let health_view = health::all_healthy(&config);
    let emergencies = Arc::new(ArcSwap::from_pointee(emergency::read(&settings.state_dir)));

    let udp = tokio::net::UdpSocket::bind(settings.listen)
        .await
        .map_err(|e| RunError::Bind {
            addr: settings.listen,
            protocol: "udp",
            reason: e.to_string(),
        })?;
    let bound = udp.local_addr().unwrap_or(settings.listen);
    let tcp = tokio::net::TcpListener::bind(bound)
        .await
        .map_err(|e| RunError::Bind {
            addr: bound,
            protocol: "tcp",
            reason: e.to_string(),
        })?;
    let mut server = hickory_server::ServerFuture::new(server::Responder {
        config: config.clone(),
        health: health_view.clone(),
        statuses: statuses.clone(),
        emergencies: emergencies.clone(),
        queries,
    });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE);

    let shutdown = process.shutdown.clone();
    shutdown.spawn(health::run(
        config.clone(),
        health_view,
        health_metrics,
        shutdown.clone(),
    ));
    shutdown.spawn(emergency::run(
        settings.state_dir.clone(),
        emergencies,
        process.degradation.clone(),
        shutdown.clone(),
    ));
    shutdown.spawn(follow::run(
        settings.nats,
        statuses,
        file,
        follow_metrics,
        process.degradation.clone(),
        shutdown.clone(),
    ));
    process.readiness.set(true);
    tracing::info!(listen = %bound, hosts = config.hosts.len(), edges = config.edges.len(), "DNS responder answering.");
    shutdown.cancelled().await;
    if let Err(e) = server.shutdown_gracefully().await {
        tracing::warn!(error = %e, "The DNS server did not stop cleanly.");
    }
    Ok(())
}
