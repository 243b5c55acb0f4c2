//! Follows KV `config` and KV `status` and re-renders pages that changed,
//! after a short debounce. A render that fails (disk full, origin gone)
//! keeps the page dirty and is retried; the last good version stays live.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_nats::jetstream::kv;
use beacon_core::buckets::{self, Change};
use beacon_core::config::PageConfig;
use beacon_core::daemon::Daemon;
use beacon_core::event::{Envelope, EventId};
use beacon_core::hlc::wall_clock_ms;
use beacon_core::messages::StatusRecord;
use beacon_core::names::{split_component_key, KV_CONFIG, KV_STATUS};
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
        let renders = daemon.process.metrics.counter(
            "renders_total",
            "Page renders, by outcome",
            &["outcome"],
        )?;
        let render_seconds = daemon.process.metrics.histogram(
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

    /// Runs until shutdown. Ready once both buckets are caught up, so the
    /// first render after a restart already has every status.
    pub async fn run(mut self) {
        let shutdown = self.daemon.process.shutdown.clone();
        let js = &self.daemon.js;
        let Some(configs) = buckets::open(js, KV_CONFIG, &shutdown).await else {
            return;
        };
        let Some(statuses) = buckets::open(js, KV_STATUS, &shutdown).await else {
            return;
        };
        let mut config_changes = buckets::follow(configs, &shutdown);
        let mut status_changes = buckets::follow(statuses, &shutdown);
        let (mut configs_current, mut statuses_current) = (false, false);
        let mut render_at: Option<tokio::time::Instant> = None;
        loop {
            let deadline = render_at
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                change = config_changes.recv() => match change {
                    Some(Change::Entry(entry)) => self.on_config(&entry),
                    Some(Change::CaughtUp) => configs_current = true,
                    None => return,
                },
                change = status_changes.recv() => match change {
                    Some(Change::Entry(entry)) => self.on_status(&entry),
                    Some(Change::CaughtUp) => statuses_current = true,
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline), if render_at.is_some() => {
                    render_at = None;
                    self.render_dirty();
                }
            }
            if configs_current && statuses_current {
                self.daemon.process.readiness.set(true);
            }
            if !self.dirty.is_empty() && render_at.is_none() {
                render_at = Some(tokio::time::Instant::now() + self.config.debounce);
            }
        }
    }

    fn on_config(&mut self, entry: &kv::Entry) {
        match entry.operation {
            kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
                // A re-watch replays every value: only a real change renders.
                Ok(envelope) if self.pages.get(&entry.key) != Some(&envelope.data) => {
                    self.pages.insert(entry.key.clone(), envelope.data);
                    self.dirty.insert(entry.key.clone());
                }
                Ok(_) => {}
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
                Ok(envelope) if statuses.get(component) == Some(&envelope.data) => return,
                Ok(envelope) => {
                    statuses.insert(component.to_owned(), envelope.data);
                }
                Err(e) => {
                    tracing::error!(key = %entry.key, error = %e, "Stored status is unreadable; ignoring it.");
                    return;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                if statuses.remove(component).is_none() {
                    return;
                }
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
                tracing::info!(page = %page, %version, status = state.worst().map_or("unknown", |s| s.as_str()), "Page published.");
            }
        }
    }
}
