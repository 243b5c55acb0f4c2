//! Every origin a version goes to, each behind its own timeout, so one
//! that is down or slow never holds the others up longer than that.
//!
//! An origin that fails or times out is *behind*: it keeps the newest
//! version of each page it has not taken, is skipped by later renders
//! (they only replace what it keeps) and is tried again on a growing
//! delay (1 s doubling to 30 s). When it takes a version again it gets
//! the newest of every page it missed, and nothing older: it catches up in
//! one step. `beacon_publisher_origin_version_lag{origin}` counts the
//! pages whose newest version an origin does not have yet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_contract::degradation::Level;
use beacon_runtime::degradation::Degradation;
use prometheus::{HistogramVec, IntGaugeVec};

use crate::objects::ObjectOrigin;
use crate::s3::S3Origin;
use crate::site::{publish_local, Built};

/// First delay before a failed origin is tried again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest delay between tries.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Where versions go.
pub enum Target {
    /// A directory an edge serves.
    Directory(PathBuf),
    /// The `pages` object store (boxed: it is much larger than the others).
    Objects(Box<ObjectOrigin>),
    /// An S3-compatible bucket.
    S3(Box<S3Origin>),
}

impl Target {
    /// The kind, for `publish_seconds{origin}`.
    fn kind(&self) -> &'static str {
        match self {
            Target::Directory(_) => "directory",
            Target::Objects(_) => "object_store",
            Target::S3(_) => "s3",
        }
    }

    async fn publish(&mut self, built: &Arc<Built>) -> Result<(), String> {
        match self {
            Target::Directory(dir) => {
                // File I/O blocks; a hung mount must not hold the runtime.
                let (dir, built) = (dir.clone(), built.clone());
                tokio::task::spawn_blocking(move || publish_local(&dir, &built))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            Target::Objects(objects) => objects.publish(built).await,
            Target::S3(bucket) => bucket.publish(built).await,
        }
    }
}

/// One origin and what it is behind on.
pub struct Origin {
    /// Its name, for logs and `origin_version_lag{origin}`:
    /// `directory-0`, `object_store`, `s3-<bucket>`.
    pub name: String,
    target: Target,
    /// The newest version of each page it has not taken.
    behind: BTreeMap<String, Arc<Built>>,
    /// When it may be tried again, while it is failing.
    retry_at: Option<Instant>,
    delay: Duration,
}

impl Origin {
    /// An origin named `name`.
    pub fn new(name: String, target: Target) -> Origin {
        Origin {
            name,
            target,
            behind: BTreeMap::new(),
            retry_at: None,
            delay: RETRY_FIRST,
        }
    }

    fn failed(&mut self) {
        self.retry_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(RETRY_MAX);
    }

    fn recovered(&mut self) {
        self.retry_at = None;
        self.delay = RETRY_FIRST;
    }
}

/// The origins' metrics.
#[derive(Clone)]
pub struct OriginMetrics {
    /// The publisher's level: 1 (`origin`) while an origin is behind.
    pub degradation: Degradation,
    /// `publish_seconds{origin}`, by kind.
    pub publish_seconds: HistogramVec,
    /// `origin_version_lag{origin}`, by name.
    pub lag: IntGaugeVec,
}

/// Every origin.
pub struct Origins {
    origins: Vec<Origin>,
    timeout: Duration,
    metrics: OriginMetrics,
}

impl Origins {
    /// `origins`, each given `timeout` per version.
    pub fn new(origins: Vec<Origin>, timeout: Duration, metrics: OriginMetrics) -> Origins {
        for origin in &origins {
            metrics.lag.with_label_values(&[&origin.name]).set(0);
        }
        Origins {
            origins,
            timeout,
            metrics,
        }
    }

    /// Adds an origin (the object store, once it opens).
    pub fn push(&mut self, origin: Origin) {
        self.metrics.lag.with_label_values(&[&origin.name]).set(0);
        self.origins.push(origin);
    }

    /// Checks the origins that can be checked before a first version (the
    /// buckets exist, or are created), each within the timeout; one that
    /// cannot be reached is named in the log and left behind.
    pub async fn check(&mut self) {
        for origin in &mut self.origins {
            let Target::S3(bucket) = &mut origin.target else {
                continue;
            };
            let outcome = match tokio::time::timeout(self.timeout, bucket.ensure_bucket()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            };
            if let Err(e) = outcome {
                tracing::error!(origin = %origin.name, error = %e,
                    "Cannot reach this origin at start; publishing to the others, retrying it.");
                origin.failed();
            }
        }
    }

    /// Publishes `built` to every origin that is not failing, each within
    /// the timeout; an origin that fails keeps it to catch up. True when
    /// every origin has it.
    pub async fn publish(&mut self, built: Arc<Built>) -> bool {
        let page = built.manifest.page.clone();
        let mut everywhere = true;
        for origin in &mut self.origins {
            if origin.retry_at.is_some() {
                origin.behind.insert(page.clone(), built.clone());
                everywhere = false;
                continue;
            }
            if try_publish(origin, &built, self.timeout, &self.metrics).await {
                origin.behind.remove(&page);
            } else {
                origin.behind.insert(page.clone(), built.clone());
                origin.failed();
                everywhere = false;
            }
        }
        self.observe();
        everywhere
    }

    /// Tries every failing origin whose delay has passed with the newest
    /// version of each page it missed.
    pub async fn retry(&mut self) {
        let now = Instant::now();
        for origin in &mut self.origins {
            if origin.retry_at.is_none_or(|at| at > now) {
                continue;
            }
            let missed: Vec<(String, Arc<Built>)> = origin
                .behind
                .iter()
                .map(|(page, built)| (page.clone(), built.clone()))
                .collect();
            let mut all = true;
            for (page, built) in &missed {
                if try_publish(origin, built, self.timeout, &self.metrics).await {
                    origin.behind.remove(page);
                } else {
                    all = false;
                    break;
                }
            }
            if all {
                tracing::info!(origin = %origin.name, pages = missed.len(),
                    "Origin takes versions again; it has the newest of every page it missed.");
                origin.recovered();
            } else {
                origin.failed();
            }
        }
        self.observe();
    }

    fn observe(&self) {
        let behind = self.origins.iter().any(|o| !o.behind.is_empty());
        self.metrics
            .degradation
            .hold("origin", Level::OriginDegraded, behind);
        for origin in &self.origins {
            self.metrics
                .lag
                .with_label_values(&[&origin.name])
                .set(origin.behind.len() as i64);
        }
    }
}

/// One version to one origin, within `timeout`; true when it took it.
async fn try_publish(
    origin: &mut Origin,
    built: &Arc<Built>,
    timeout: Duration,
    metrics: &OriginMetrics,
) -> bool {
    let started = Instant::now();
    let kind = origin.target.kind();
    let result = tokio::time::timeout(timeout, origin.target.publish(built)).await;
    metrics
        .publish_seconds
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());
    let page = &built.manifest.page;
    match result {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(%page, origin = %origin.name, error = %e,
                "Cannot publish to this origin; it keeps its previous version and catches up when it takes versions again.");
            false
        }
        Err(_) => {
            tracing::error!(%page, origin = %origin.name, timeout = ?timeout,
                "An origin took too long; it is left behind and catches up when it takes versions again.");
            false
        }
    }
}
