//! Follows KV `config` and KV `status` and re-renders pages that changed,
//! after a short debounce. A render that fails (disk full, origin gone)
//! keeps the page dirty and is retried; the last good version stays live.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_nats::jetstream::kv;
use beacon_core::config::PageConfig;
use beacon_core::daemon::Daemon;
use beacon_core::event::{Envelope, EventId};
use beacon_core::hlc::wall_clock_ms;
use beacon_core::messages::StatusRecord;
use beacon_core::names::{split_component_key, KV_CONFIG, KV_STATUS};
use beacon_core::shutdown::Backoff;
use futures::StreamExt;
use prometheus::{HistogramVec, IntCounterVec};

use crate::render::{site, PageState};
use crate::PublisherConfig;

/// The follower's state: what it knows and what needs rendering.
pub struct Follower {
    daemon: Daemon,
    config: PublisherConfig,
    pages: HashMap<String, PageConfig>,
    statuses: HashMap<String, HashMap<String, StatusRecord>>,
    dirty: BTreeSet<String>,
    renders: IntCounterVec,
    render_seconds: HistogramVec,
}

impl Follower {
    /// A follower with its metrics registered.
    pub fn new(
        daemon: Daemon,
        config: PublisherConfig,
    ) -> Result<Self, beacon_core::telemetry::MetricError> {
        let renders =
            daemon
                .metrics
                .counter("renders_total", "Page renders, by outcome", &["outcome"])?;
        let render_seconds = daemon.metrics.histogram(
            "render_seconds",
            "Time to render and publish a page to every origin",
            &[],
        )?;
        Ok(Self {
            daemon,
            config,
            pages: HashMap::new(),
            statuses: HashMap::new(),
            dirty: BTreeSet::new(),
            renders,
            render_seconds,
        })
    }

    async fn open(&self, bucket: &str) -> Option<kv::Store> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self.daemon.js.get_key_value(bucket).await {
                Ok(store) => return Some(store),
                Err(e) => {
                    tracing::warn!(bucket, error = %e, "Cannot open KV bucket, retrying.");
                    if !self.daemon.shutdown.sleep(backoff.next_delay()).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self) {
        let shutdown = self.daemon.shutdown.clone();
        let Some(configs) = self.open(KV_CONFIG).await else {
            return;
        };
        let Some(statuses) = self.open(KV_STATUS).await else {
            return;
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            let (mut config_watch, mut status_watch) = match (
                configs.watch_with_history(">").await,
                statuses.watch_with_history(">").await,
            ) {
                (Ok(c), Ok(s)) => (c, s),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "Cannot watch KV, retrying.");
                    shutdown.sleep(backoff.next_delay()).await;
                    continue;
                }
            };
            self.daemon.readiness.set(true);
            let mut render_at: Option<tokio::time::Instant> = None;
            loop {
                let deadline = render_at
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    entry = config_watch.next() => match entry {
                        Some(Ok(entry)) => self.on_config(&entry),
                        Some(Err(e)) => { tracing::warn!(error = %e, "KV config watch error, re-watching."); break; }
                        None => break,
                    },
                    entry = status_watch.next() => match entry {
                        Some(Ok(entry)) => self.on_status(&entry),
                        Some(Err(e)) => { tracing::warn!(error = %e, "KV status watch error, re-watching."); break; }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline), if render_at.is_some() => {
                        render_at = None;
                        self.render_dirty();
                    }
                }
                if !self.dirty.is_empty() && render_at.is_none() {
                    render_at = Some(tokio::time::Instant::now() + self.config.debounce);
                }
            }
            shutdown.sleep(backoff.next_delay()).await;
        }
    }

    fn on_config(&mut self, entry: &kv::Entry) {
        match entry.operation {
            kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
                Ok(envelope) => {
                    self.pages.insert(entry.key.clone(), envelope.data);
                    self.dirty.insert(entry.key.clone());
                }
                Err(e) => {
                    tracing::error!(page = %entry.key, error = %e, "Stored page config is unreadable; keeping the current page.")
                }
            },
            // A removed page keeps its last rendered site: the edge goes on
            // serving it; removing it from origins is an operator decision.
            kv::Operation::Delete | kv::Operation::Purge => {
                self.pages.remove(&entry.key);
                self.dirty.remove(&entry.key);
            }
        }
    }

    fn on_status(&mut self, entry: &kv::Entry) {
        let Some((page, component)) = split_component_key(&entry.key) else {
            tracing::warn!(key = %entry.key, "Ignoring malformed status key.");
            return;
        };
        let statuses = self.statuses.entry(page.to_owned()).or_default();
        match entry.operation {
            kv::Operation::Put => match Envelope::<StatusRecord>::decode(&entry.value) {
                Ok(envelope) => {
                    statuses.insert(component.to_owned(), envelope.data);
                }
                Err(e) => {
                    tracing::error!(key = %entry.key, error = %e, "Stored status is unreadable; ignoring it.");
                    return;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                statuses.remove(component);
            }
        }
        self.dirty.insert(page.to_owned());
    }

    fn render_dirty(&mut self) {
        let empty = HashMap::new();
        for page in std::mem::take(&mut self.dirty) {
            // Statuses can arrive before their page's config; the config's
            // arrival marks the page dirty again.
            let Some(config) = self.pages.get(&page) else {
                continue;
            };
            let timer = self
                .render_seconds
                .with_label_values(&[] as &[&str])
                .start_timer();
            let state = PageState {
                config,
                statuses: self.statuses.get(&page).unwrap_or(&empty),
                generated_at_ms: wall_clock_ms(),
            };
            let files = site(&state);
            let version = EventId::new().to_string();
            let mut failed = false;
            for origin in &self.config.origins {
                if let Err(e) = crate::site::publish(origin, &page, &version, &files) {
                    tracing::error!(page = %page, origin = %origin.display(), error = %e,
                        "Cannot publish page; the previous version stays live.");
                    failed = true;
                }
            }
            timer.observe_duration();
            if failed {
                self.renders.with_label_values(&["failed"]).inc();
                self.dirty.insert(page);
            } else {
                self.renders.with_label_values(&["published"]).inc();
                tracing::info!(page = %page, %version, status = state.worst().as_str(), "Page published.");
            }
        }
    }
}
