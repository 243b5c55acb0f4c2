//! The publisher: renders every page to static files whenever anything it
//! shows changes, and publishes them atomically to every origin (local
//! directories and the `pages` object store). It also owns the changelog
//! and serves its bus API.
//!
//! # Layout
//!
//! - [`strings`]: every word the site shows people, in one place.
//! - [`render`]: pure renderers: the page, incident pages, history,
//!   changelog, the Statuspage v2 API, feeds, calendars, widget, badges.
//! - [`markdown`]: operator markdown to sanitized HTML.
//! - [`changelog`]: the changelog fold and its validation (pure).
//! - [`site`]: rendered files to a version: hashes, precompression,
//!   manifest, and writing it to an origin directory.
//! - [`objects`]: publishing a version to the `pages` object store.
//! - [`s3`]: publishing a version to an S3-compatible bucket.
//! - [`origins`]: every origin behind one timeout each, left behind and
//!   retried with the newest version when one fails.
//! - [`follow`]: following KV buckets and streams, debounced re-rendering.
//! - [`followed`]: the page configs and changelogs the API answers from while cut off.
//! - [`api`]: the changelog's bus API.

pub mod api;
pub mod changelog;
pub mod follow;
pub mod followed;
pub mod markdown;
pub mod objects;
pub mod origins;
pub mod render;
pub mod s3;
pub mod site;
pub mod strings;

use std::path::PathBuf;
use std::time::Duration;

use beacon_runtime::daemon::Daemon;

/// Longest debounce accepted: it bounds how far a page may lag the bus.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(5);

/// Publisher settings beyond the common flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Origin directories every page is written to.
    pub origins: Vec<PathBuf>,
    /// Whether every page is also published to the `pages` object store
    /// (which edges mirror).
    pub object_store: bool,
    /// Quiet time after a change before rendering, so a burst renders once.
    pub debounce: Duration,
    /// The region this publisher runs in, if any: it also follows what
    /// the region's deciders wrote in the region's own domain while cut off
    /// from the other regions, so the region's page shows it at once.
    pub region: Option<String>,
    /// S3-compatible buckets every page is also published to.
    pub s3_origins: Vec<s3::S3Settings>,
    /// Longest one origin may take to take one version; a slower or
    /// failing origin is left behind and retried with the newest version,
    /// so it never holds the others up longer.
    pub origin_timeout: Duration,
    /// Longest a page goes without a render: each is rendered again at
    /// least this often, so its time shows the pipeline is alive and an
    /// edge can tell a page that stopped updating (`--stale-after`).
    pub refresh: Duration,
}

impl PublisherConfig {
    /// Checks the settings, returning every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.origins.is_empty() && !self.object_store && self.s3_origins.is_empty() {
            errors.push(
                "--origin: at least one origin (a directory, --s3-origin or --object-store) is required"
                    .to_owned(),
            );
        }
        if self.refresh < Duration::from_millis(500) || self.refresh > Duration::from_secs(3600) {
            errors.push("--refresh: must be between 500ms and 1h".to_owned());
        }
        if self.origin_timeout.is_zero() {
            errors.push("--origin-timeout: must be more than zero".to_owned());
        }
        // A bucket's name names its origin in logs and metrics.
        let mut buckets = std::collections::BTreeSet::new();
        for settings in &self.s3_origins {
            if !buckets.insert(settings.bucket.as_str()) {
                errors.push(format!(
                    "--s3-origin: bucket {} is named twice",
                    settings.bucket
                ));
            }
        }
        if let Some(region) = &self.region {
            if let Err(e) = beacon_contract::names::check_token(region) {
                errors.push(format!("--region: {e}"));
            }
        }
        for origin in &self.origins {
            if origin.exists() && !origin.is_dir() {
                errors.push(format!(
                    "--origin {}: exists and is not a directory",
                    origin.display()
                ));
            }
        }
        if self.debounce > MAX_DEBOUNCE {
            errors.push(format!(
                "--debounce: must be at most {} (pages must not lag the bus longer)",
                humantime::format_duration(MAX_DEBOUNCE)
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Why the publisher stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] beacon_runtime::telemetry::MetricError),
    /// An origin directory could not be created.
    #[error("cannot create origin {path}: {reason}")]
    Origin {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Runs the publisher until shutdown.
pub async fn run(daemon: Daemon, config: PublisherConfig) -> Result<(), RunError> {
    for origin in &config.origins {
        std::fs::create_dir_all(origin).map_err(|e| RunError::Origin {
            path: origin.clone(),
            reason: e.to_string(),
        })?;
    }
    let requests = daemon.process.metrics.counter(
        "api_requests_total",
        "Changelog API requests, by endpoint and outcome",
        &["endpoint", "outcome"],
    )?;
    let regional_writes = daemon.process.metrics.single_counter(
        "regional_writes_total",
        "Changelog events stored in the region's own stream while the cluster was out of reach",
    )?;
    let regional = config.region.as_deref().and_then(|region| {
        beacon_runtime::regional::RegionalWriter::start(
            daemon.js.clone(),
            region,
            &daemon.process.shutdown,
        )
    });
    let followed = followed::Followed::default();
    // Ready once the pages are caught up and the changelog API answers.
    let (api_up_tx, api_up_rx) = tokio::sync::oneshot::channel();
    let follower = follow::Follower::new(daemon.clone(), config, followed.clone(), api_up_rx)?;
    daemon.process.shutdown.spawn(follower.run());
    let api_daemon = daemon.clone();
    daemon.process.shutdown.spawn(async move {
        let shutdown = api_daemon.process.shutdown.clone();
        let Some(configs) =
            beacon_runtime::buckets::open(&api_daemon.js, beacon_contract::names::KV_CONFIG, &shutdown)
                .await
        else {
            return;
        };
        let objects = loop {
            match api_daemon
                .js
                .get_object_store(beacon_contract::names::OBJECT_PAGES)
                .await
            {
                Ok(store) => break store,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot open the object store for changelog images, retrying.");
                    if !shutdown.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        api::serve(
            api::Api {
                daemon: api_daemon,
                configs,
                objects,
                requests,
                followed,
                regional,
                regional_writes,
            },
            api_up_tx,
        )
        .await;
    });
    daemon.process.shutdown.cancelled().await;
    Ok(())
}
