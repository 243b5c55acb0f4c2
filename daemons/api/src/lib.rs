//! The api daemon: Beacon's HTTP gateway for operators' tools and public
//! sign-up. It authenticates a request with an API key scoped to a page
//! and to actions, applies rate limits, and turns the request into a
//! request to the bus API of the daemon that owns the data (the decider for
//! components, incidents and maintenance), so ownership stays where the
//! design puts it. It keeps no state of its own beyond its keys, and the
//! edge never needs it to serve a page.
//!
//! # Layout
//!
//! - [`keys`]: key text, hashing and checking (pure).
//! - [`limits`]: rate limits per key, per client address and per address
//!   being subscribed.
//! - [`admin`]: KV `apikeys` and the `beacon.api.apikey.*` endpoints.
//! - [`bus`]: requests to the owners' bus APIs.
//! - [`error`]: the JSON error every route returns.
//! - [`http`]: state, authentication, the strict JSON reader, the routes.
//! - [`openapi`]: the OpenAPI document, generated from the routes.
//! - [`metrics`]: the `beacon_api_…` metrics.

pub mod admin;
pub mod bus;
pub mod error;
pub mod http;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod openapi;

use std::net::SocketAddr;
use std::time::Duration;

use beacon_contract::names::KV_APIKEYS;
use beacon_runtime::buckets;
use beacon_runtime::daemon::Daemon;
use tokio::sync::watch;

use crate::http::AppState;

/// Why the api daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_runtime::telemetry::MetricError),
    /// The HTTP port could not be opened.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// What the OS said.
        reason: String,
    },
}

/// The api daemon's settings beyond the common flags.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// How long an owner may take to answer.
    pub timeout: Duration,
    /// Public requests per minute per client address.
    pub per_address_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Runs the api daemon until shutdown.
pub async fn run(daemon: Daemon, settings: ApiSettings) -> Result<(), RunError> {
    let shutdown = daemon.process.shutdown.clone();
    let Some(store) = buckets::open(&daemon.js, KV_APIKEYS, &shutdown).await else {
        return Ok(());
    };
    let metrics = metrics::Metrics::register(&daemon.process.metrics)?;
    let keys = keys::Keys::default();
    let (loaded_tx, mut loaded) = watch::channel(false);
    shutdown.spawn(admin::follow(
        daemon.clone(),
        store.clone(),
        keys.clone(),
        loaded_tx,
    ));
    let admin = admin::Admin {
        daemon: daemon.clone(),
        store: store.clone(),
        keys: keys.clone(),
        requests: daemon.process.metrics.counter(
            "bus_requests_total",
            "Requests to the key endpoints on the bus, by endpoint and outcome",
            &["endpoint", "outcome"],
        )?,
    };
    let (admin_up_tx, admin_up) = tokio::sync::oneshot::channel();
    shutdown.spawn(admin::serve(admin, admin_up_tx));
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = loaded.wait_for(|l| *l) => {}
    }
    // Ready only once the key endpoints answer too; if they could not be
    // registered the HTTP API still serves, but never says it is ready.
    let admin_answers = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        up = admin_up => up.is_ok(),
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| RunError::Listen {
            address: settings.listen,
            reason: e.to_string(),
        })?;
    let state = AppState {
        client: daemon.client.clone(),
        keys,
        key_store: store,
        limits: limits::Limits::new(settings.per_address_per_minute),
        metrics,
        timeout: settings.timeout,
        trusted_proxies: settings.trusted_proxies,
    };
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    daemon.process.readiness.set(admin_answers);
    tracing::info!(listen = %settings.listen, "HTTP API ready.");
    let stop = shutdown.clone();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "HTTP API stopped with an error.");
    }
    Ok(())
}
