//! Logs, metrics and the admin port every daemon serves.
//!
//! The admin port answers `/metrics` (Prometheus text), `/metrics/catalog`
//! (every family registered, as JSON), `/healthz` (the process is alive)
//! and `/readyz` (connected to the bus and doing its job).
//! Each daemon owns one [`Metrics`] registry; there is no global registry.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::shutdown::Shutdown;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the tracing subscriber. Filter from `RUST_LOG`, default `info`.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling run twice) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A daemon's metrics registry. Every metric is named `beacon_{daemon}_{name}`.
/// It also keeps a catalog of every family registered (name, type, labels,
/// help), served at `/metrics/catalog`: a family with labels appears in
/// `/metrics` only once it has a value, the catalog lists it from the start.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    prefix: String,
    catalog: Arc<Mutex<Vec<Family>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// One registered metric family, as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Family {
    /// Full name, `beacon_{daemon}_{name}`.
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Label names (their values are bounded: no ids, no URLs).
    pub labels: Vec<String>,
    /// What it counts.
    pub help: String,
}

/// A metric could not be registered: a name clash, i.e. a bug.
#[derive(Debug, thiserror::Error)]
#[error("cannot register metric {name}: {reason}")]
pub struct MetricError {
    /// Full metric name.
    pub name: String,
    /// What prometheus said.
    pub reason: String,
}

impl Metrics {
    /// An empty registry for `daemon` (e.g. `decider`).
    pub fn new(daemon: &str) -> Self {
        Self {
            registry: Registry::new(),
            prefix: format!("beacon_{daemon}"),
            catalog: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    fn error(&self, name: &str, e: impl std::fmt::Display) -> MetricError {
        MetricError {
            name: self.full_name(name),
            reason: e.to_string(),
        }
    }

    fn register<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        name: &str,
        kind: &str,
        help: &str,
        labels: &[&str],
        metric: Result<M, prometheus::Error>,
    ) -> Result<M, MetricError> {
        let metric = metric.map_err(|e| self.error(name, e))?;
        self.registry
            .register(Box::new(metric.clone()))
            .map_err(|e| self.error(name, e))?;
        self.catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Family {
                name: self.full_name(name),
                kind: kind.to_owned(),
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                help: help.to_owned(),
            });
        Ok(metric)
    }

    /// Registers a counter family. Keep label values bounded: no ids, no URLs.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricError> {
        let metric = IntCounterVec::new(Opts::new(self.full_name(name), help), labels);
        self.register(name, "counter", help, labels, metric)
    }

    /// Registers a gauge family of whole numbers.
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricError> {
        let metric = IntGaugeVec::new(Opts::new(self.full_name(name), help), labels);
        self.register(name, "gauge", help, labels, metric)
    }

    /// Registers a gauge family of fractions (seconds, ratios).
    pub fn float_gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<GaugeVec, MetricError> {
        let metric = GaugeVec::new(Opts::new(self.full_name(name), help), labels);
        self.register(name, "gauge", help, labels, metric)
    }

    /// Registers a counter without labels.
    pub fn single_counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricError> {
        let metric = IntCounter::new(self.full_name(name), help);
        self.register(name, "counter", help, &[], metric)
    }

    /// Registers a gauge of whole numbers without labels.
    pub fn single_gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricError> {
        let metric = IntGauge::new(self.full_name(name), help);
        self.register(name, "gauge", help, &[], metric)
    }

    /// Registers a gauge of fractions without labels.
    pub fn single_float_gauge(&self, name: &str, help: &str) -> Result<Gauge, MetricError> {
        let metric = Gauge::new(self.full_name(name), help);
        self.register(name, "gauge", help, &[], metric)
    }

    /// Registers a histogram family with the default latency buckets.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<HistogramVec, MetricError> {
        self.histogram_with_buckets(name, help, labels, prometheus::DEFAULT_BUCKETS.to_vec())
    }

    /// Registers a histogram family with its own buckets (sizes, not seconds).
    pub fn histogram_with_buckets(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> Result<HistogramVec, MetricError> {
        let opts = HistogramOpts::new(self.full_name(name), help).buckets(buckets);
        let metric = HistogramVec::new(opts, labels);
        self.register(name, "histogram", help, labels, metric)
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// Every family registered so far, by name.
    pub fn catalog(&self) -> Vec<Family> {
        let mut families = self
            .catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        families
    }
}

/// Whether the daemon is ready; shared between the daemon and its admin port.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the daemon ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether it is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The admin router: `/metrics`, `/healthz`, `/readyz`.
pub fn admin_router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/metrics/catalog", get(catalog_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AdminState { metrics, readiness })
}

async fn metrics_handler(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn catalog_handler(State(state): State<AdminState>) -> impl IntoResponse {
    axum::Json(state.metrics.catalog())
}

async fn ready_handler(State(state): State<AdminState>) -> impl IntoResponse {
    if state.readiness.get() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds the admin port and serves it until shutdown. Returns the bound
/// address (useful with port 0).
pub async fn serve_admin(
    addr: SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: &Shutdown,
) -> std::io::Result<SocketAddr> {
    serve_router(addr, admin_router(metrics, readiness), shutdown).await
}

/// Binds `addr` and serves `router` in a tracked task until shutdown, then
/// lets in-flight requests finish. Returns the bound address.
pub async fn serve_router(
    addr: SocketAddr,
    router: Router,
    shutdown: &Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let token = shutdown.token().clone();
    shutdown.spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(addr = %bound, error = %e, "HTTP server failed.");
        }
    });
    Ok(bound)
}
