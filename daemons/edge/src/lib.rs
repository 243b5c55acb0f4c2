//! The edge: serves every published page to end users from memory, by
//! Host (custom domains) and by path, with precompressed bodies, ETags,
//! cache and security headers, and live updates over Server-Sent Events.
//! It keeps serving the last good version when everything behind it is
//! down, and can mirror the `pages` object store so it needs no shared disk.
//!
//! # Layout
//!
//! - [`files`]: pure decisions: routing, URL-to-file mapping, content
//!   types, ETag matching, encoding negotiation.
//! - [`site`]: the in-memory pages and the loader that follows the origin
//!   directory.
//! - [`live`]: Server-Sent Events hub.
//! - [`serve`]: the HTTP server: accept loop, the handler, hyper.
//! - [`direct`]: the static path: GET and HEAD of files answered without
//!   hyper, large bodies by `sendfile(2)`; everything else goes to hyper.
//! - [`forward`]: public sign-up handed to the HTTP API (`--api-url`).
//! - [`pace`]: the least a client must take of its responses, on both
//!   paths; a connection that falls behind is closed.
//! - [`mirror`]: several origins (object store, buckets) to the origin
//!   directory, failing over between them.
//! - [`degraded`]: the page's degradation level as the edge sees it, and
//!   the rewrites that say so on the page and in `summary.json`.

pub mod degraded;
pub mod direct;
pub mod files;
pub mod forward;
pub mod live;
pub mod mirror;
pub mod pace;
pub mod serve;
pub mod site;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use beacon_contract::degradation::Level;
use beacon_runtime::daemon::Process;

use crate::live::Hub;
use crate::serve::{Counters, Edge};
use crate::site::Loader;

/// Edge settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Address to serve users on.
    pub listen: SocketAddr,
    /// Origin directory the publisher writes to (or the mirror fills).
    pub origin: PathBuf,
    /// Page served at `/` when neither the host nor the path names one.
    pub page: Option<String>,
    /// Custom domains: (host name, page id), besides those the pages'
    /// manifests name.
    pub hosts: Vec<(String, String)>,
    /// How often the origin directory is looked at for new versions.
    pub scan_interval: Duration,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most live-update clients at once.
    pub max_sse_clients: usize,
    /// Origins to mirror into `origin`, first one preferred (none: the
    /// publisher writes `origin` itself).
    pub mirror: Vec<mirror::Source>,
    /// How often a bucket origin is read.
    pub mirror_poll: Duration,
    /// A page whose newest version is older than this is served as
    /// stale: live updates paused, degradation level 2.
    pub stale_after: Duration,
    /// The HTTP API that answers public sign-up (`http://host:port`), if any.
    pub api_url: Option<String>,
    /// How long a client whose socket is full has to take the next
    /// [`pace::MIN_PROGRESS_BYTES`] of its responses (`--write-timeout`).
    pub write_timeout: Duration,
}

impl EdgeConfig {
    /// Checks the settings, returning every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Some(page) = &self.page {
            if let Err(e) = beacon_contract::names::check_token(page) {
                errors.push(format!("--page: {e}"));
            }
        }
        for (host, page) in &self.hosts {
            if host.is_empty() || host.contains('/') {
                errors.push(format!("--host {host}={page}: not a host name"));
            }
            if let Err(e) = beacon_contract::names::check_token(page) {
                errors.push(format!("--host {host}={page}: {e}"));
            }
        }
        if self.origin.exists() && !self.origin.is_dir() {
            errors.push(format!(
                "--origin {}: exists and is not a directory",
                self.origin.display()
            ));
        }
        if self.scan_interval < Duration::from_millis(10)
            || self.scan_interval > Duration::from_secs(10)
        {
            errors.push("--scan-interval: must be between 10ms and 10s".to_owned());
        }
        if self.mirror_poll < Duration::from_millis(100)
            || self.mirror_poll > Duration::from_secs(600)
        {
            errors.push("--mirror-poll: must be between 100ms and 10m".to_owned());
        }
        if self.stale_after < Duration::from_secs(1) {
            errors.push("--stale-after: must be at least 1s".to_owned());
        }
        if let Some(url) = &self.api_url {
            if let Err(e) = forward::api_authority(url) {
                errors.push(format!("--api-url {url}: {e}"));
            }
        }
        if self.max_connections == 0 {
            errors.push("--max-connections: must be at least 1".to_owned());
        }
        if self.write_timeout < Duration::from_millis(100)
            || self.write_timeout > Duration::from_secs(600)
        {
            errors.push("--write-timeout: must be between 100ms and 10m".to_owned());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Parses `--host status.example.com=demo`.
pub fn parse_host(text: &str) -> Result<(String, String), String> {
    let (host, page) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: write HOST=PAGE"))?;
    Ok((host.trim().to_ascii_lowercase(), page.trim().to_owned()))
}

/// Why the edge could not serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_runtime::telemetry::MetricError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Serves users until shutdown. Ready as soon as the listener is bound and
/// the origin directory has been read once: serving needs nothing else.
pub async fn run(process: Process, config: EdgeConfig) -> Result<(), RunError> {
    let m = &process.metrics;
    let responses = m.counter(
        "responses_total",
        "Responses to users, by status class",
        &["class"],
    )?;
    let counters = Counters {
        ok: responses.with_label_values(&["2xx"]),
        redirect: responses.with_label_values(&["3xx"]),
        client_error: responses.with_label_values(&["4xx"]),
        server_error: responses.with_label_values(&["5xx"]),
    };
    let refused = m.single_counter(
        "connections_refused_total",
        "Connections closed at once because --max-connections were open",
    )?;
    let sse_clients = m.single_gauge("sse_clients", "Live-update (SSE) clients connected")?;
    let versions = m.counter(
        "versions_total",
        "Page versions loaded into memory or mirrored, by outcome",
        &["outcome"],
    )?;
    let page_age = m.single_gauge(
        "oldest_page_age_seconds",
        "Age of the oldest page version served (since its render): how stale a page can be",
    )?;
    let pages = m.single_gauge("pages", "Pages served")?;
    let forwarded = m.counter(
        "forwarded_total",
        "Sign-up requests forwarded to the HTTP API, by outcome (answered, api_failed, unreachable, timeout, bad_body)",
        &["outcome"],
    )?;
    let forward = config
        .api_url
        .as_deref()
        .and_then(|url| forward::api_authority(url).ok())
        .map(|authority| forward::Forwarder {
            authority,
            outcomes: forwarded,
        });

    let _ = std::fs::create_dir_all(&config.origin);
    let mut loader = Loader::new(config.origin.clone());
    let hub = Arc::new(Hub::new(sse_clients));
    for changed in loader.scan() {
        hub.publish(&changed.page, &changed.version);
    }
    let edge = Arc::new(Edge {
        sites: loader.sites.clone(),
        default_page: config.page.clone(),
        hosts: config.hosts.clone(),
        hub: hub.clone(),
        max_sse_clients: i64::try_from(config.max_sse_clients).unwrap_or(i64::MAX),
        counters,
        forward,
        pace: pace::Pace {
            grace: config.write_timeout,
        },
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| RunError::Listen {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|e| RunError::Listen {
        addr: config.listen,
        reason: e.to_string(),
    })?;
    process.shutdown.spawn(serve::accept_loop(
        listener,
        edge,
        config.max_connections,
        refused,
        process.shutdown.clone(),
    ));

    let mirror = if config.mirror.is_empty() {
        None
    } else {
        let metrics = mirror::MirrorMetrics {
            versions: versions.clone(),
            up: m.gauge(
                "origin_up",
                "1 while the origin answers the mirror, by origin",
                &["origin"],
            )?,
        };
        Some(mirror::start(
            config.mirror.clone(),
            config.origin.clone(),
            config.mirror_poll,
            metrics,
            &process.shutdown,
        ))
    };
    let degradation = process.degradation.clone();
    let stale_after = config.stale_after;
    let scan_shutdown = process.shutdown.clone();
    let interval = config.scan_interval;
    let loaded = versions.with_label_values(&["loaded"]);
    process.shutdown.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = scan_shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Reading a version is file I/O; keep it off the serving threads.
            let (back, changed) = match tokio::task::spawn_blocking(move || {
                let changed = loader.scan();
                (loader, changed)
            })
            .await
            {
                Ok(done) => done,
                Err(_) => return,
            };
            loader = back;
            for changed in changed {
                loaded.inc();
                hub.publish(&changed.page, &changed.version);
            }
            let now = beacon_contract::hlc::wall_clock_ms();
            let origin_silent = mirror
                .as_ref()
                .is_some_and(mirror::MirrorState::any_origin_silent);
            degradation.hold("origin", Level::OriginDegraded, origin_silent);
            let worst = loader.degrade(now, stale_after, origin_silent);
            degradation.set("pages", (worst > Level::Full).then_some(worst));
            let sites = loader.sites.load();
            pages.set(sites.pages.len() as i64);
            let oldest = sites
                .pages
                .values()
                .filter_map(|p| p.current.as_ref())
                .map(|v| now.saturating_sub(v.manifest.generated_at_ms) / 1000)
                .max()
                .unwrap_or(0);
            page_age.set(i64::try_from(oldest).unwrap_or(i64::MAX));
        }
    });
    process.readiness.set(true);
    tracing::info!(listen = %bound, origin = %config.origin.display(), page = ?config.page, mirror = ?config.mirror.iter().map(mirror::Source::name).collect::<Vec<_>>(), api = ?config.api_url, "Edge serving.");
    process.shutdown.cancelled().await;
    Ok(())
}
