//! Follows everything a page shows and re-renders pages that changed.
//!
//! Inputs: KV `config`, `status` and `uptime`, and the `INCIDENTS`,
//! `MAINTENANCE` and `CHANGELOG` streams (folded with core's folds and
//! [`crate::changelog`]). A change marks its page dirty; the first change
//! of a quiet page arms a timer of `--debounce`, and every page dirty when
//! it fires is rendered once, so a burst renders once and no change waits
//! longer than the debounce plus one render (the staleness bound, at most
//! 5 s by validation). An origin that cannot take a version (disk full,
//! a bucket gone, the object store away) is left behind and catches up
//! ([`crate::origins`]); the last good version stays live on it. Page
//! configs and changelogs are kept in [`Followed`], which the changelog API
//! reads too.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use async_nats::jetstream::object_store::ObjectStore;
use beacon_contract::api::ChangelogView;
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::incident::Incident;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{
    ChangelogEntry, IncidentEvent, MaintenanceEvent, StatusRecord, UptimeRollup,
};
use beacon_contract::names::{
    regional_stream, split_component_key, KV_CONFIG, KV_STATUS, KV_UPTIME, OBJECT_PAGES,
    STREAM_CHANGELOG, STREAM_INCIDENTS, STREAM_MAINTENANCE, SUBJECT_ROOT,
};
use beacon_page::config::PageConfig;
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::history::{self, Event};
use prometheus::{Gauge, Histogram, IntCounterVec, IntGauge};
use tokio::io::AsyncReadExt;

use crate::followed::Followed;
use crate::objects::ObjectOrigin;
use crate::origins::{Origin, OriginMetrics, Origins, Target};
use crate::render::{site, MaintenanceItem, PageState};
use crate::site::{host_of, Compressor};
use crate::strings::EN;
use crate::PublisherConfig;

/// Everything known about one page besides its config.
#[derive(Default)]
struct PageData {
    statuses: HashMap<String, StatusRecord>,
    uptime: HashMap<String, UptimeRollup>,
    incident_events: BTreeMap<String, Vec<(Envelope<IncidentEvent>, u64)>>,
    incidents: BTreeMap<String, Incident>,
    maintenance_events: BTreeMap<String, Vec<(Envelope<MaintenanceEvent>, u64)>>,
    maintenance: BTreeMap<String, MaintenanceItem>,
    assets: BTreeMap<String, Vec<u8>>,
    /// Assets a changelog entry names that could not be fetched yet.
    missing_assets: BTreeSet<String>,
}

/// The publisher's metrics.
#[derive(Clone)]
struct Metrics {
    renders: IntCounterVec,
    render_seconds: Histogram,
    staleness_seconds: Histogram,
    oldest_pending: Gauge,
    pages: IntGauge,
}

/// The follower's state: what it knows and what needs rendering.
pub struct Follower {
    daemon: Daemon,
    config: PublisherConfig,
    data: HashMap<String, PageData>,
    /// Dirty pages and when each first became dirty.
    dirty: BTreeMap<String, Instant>,
    /// When each page was last rendered, to render it again every
    /// `--refresh`.
    rendered: HashMap<String, Instant>,
    compressors: HashMap<String, Compressor>,
    /// Every origin, each behind its timeout.
    origins: Origins,
    metrics: Metrics,
    /// Hears once the changelog API answers; readiness waits for it.
    api_up: tokio::sync::oneshot::Receiver<()>,
    api_is_up: bool,
    /// What the changelog API answers from while cut off.
    followed: Followed,
}

impl Follower {
    /// A follower with its metrics registered.
    pub fn new(
        daemon: Daemon,
        config: PublisherConfig,
        followed: Followed,
        api_up: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<Self, beacon_runtime::telemetry::MetricError> {
        let m = &daemon.process.metrics;
        let metrics = Metrics {
            renders: m.counter("renders_total", "Page renders, by outcome", &["outcome"])?,
            render_seconds: m
                .histogram(
                    "render_seconds",
                    "Time to render and compress one page",
                    &[],
                )?
                .with_label_values(&[] as &[&str]),
            staleness_seconds: m
                .histogram(
                    "staleness_seconds",
                    "From the first change a render includes to its version being live everywhere",
                    &[],
                )?
                .with_label_values(&[] as &[&str]),
            oldest_pending: m.single_float_gauge(
                "oldest_pending_change_seconds",
                "Age of the oldest change not yet published (0 when none waits)",
            )?,
            pages: m.single_gauge("pages", "Pages the publisher renders")?,
        };
        let origin_metrics = OriginMetrics {
            degradation: daemon.process.degradation.clone(),
            publish_seconds: m.histogram(
                "publish_seconds",
                "Time to publish one version to one kind of origin",
                &["origin"],
            )?,
            lag: m.gauge(
                "origin_version_lag",
                "Pages whose newest version this origin does not have yet",
                &["origin"],
            )?,
        };
        let mut list = Vec::new();
        for (i, dir) in config.origins.iter().enumerate() {
            list.push(Origin::new(
                format!("directory-{i}"),
                Target::Directory(dir.clone()),
            ));
        }
        for settings in &config.s3_origins {
            match crate::s3::S3Origin::new(settings) {
                Ok(bucket) => list.push(Origin::new(
                    format!("s3-{}", settings.bucket),
                    Target::S3(Box::new(bucket)),
                )),
                Err(e) => {
                    tracing::error!(bucket = %settings.bucket, error = %e, "Cannot use this S3 origin; publishing to the others.")
                }
            }
        }
        let origins = Origins::new(list, config.origin_timeout, origin_metrics);
        Ok(Self {
            daemon,
            config,
            data: HashMap::new(),
            dirty: BTreeMap::new(),
            rendered: HashMap::new(),
            compressors: HashMap::new(),
            origins,
            metrics,
            api_up,
            api_is_up: false,
            followed,
        })
    }

    /// Runs until shutdown. Ready once every bucket and stream has caught
    /// up, so the first render after a restart already has everything.
    pub async fn run(mut self) {
        let shutdown = self.daemon.process.shutdown.clone();
        let js = self.daemon.js.clone();
        let Some(configs) = buckets::open(&js, KV_CONFIG, &shutdown).await else {
            return;
        };
        let Some(statuses) = buckets::open(&js, KV_STATUS, &shutdown).await else {
            return;
        };
        let Some(uptime) = buckets::open(&js, KV_UPTIME, &shutdown).await else {
            return;
        };
        // An origin that cannot be reached now is named in the log and
        // left behind; the others are published to from the first render.
        self.origins.check().await;
        let store = if self.config.object_store {
            let Some(store) = open_objects(&js, &shutdown).await else {
                return;
            };
            self.origins.push(Origin::new(
                "object_store".to_owned(),
                Target::Objects(Box::new(ObjectOrigin::new(store.clone()))),
            ));
            Some(store)
        } else {
            None
        };
        let mut config_changes = buckets::follow(configs, &shutdown);
        let mut status_changes = buckets::follow(statuses, &shutdown);
        let mut uptime_changes = buckets::follow(uptime, &shutdown);
        let mut incidents = history::follow(
            js.clone(),
            STREAM_INCIDENTS,
            beacon_contract::names::ALL_INCIDENTS,
            &shutdown,
        );
        let mut maintenance = history::follow(
            js.clone(),
            STREAM_MAINTENANCE,
            beacon_contract::names::ALL_MAINTENANCE,
            &shutdown,
        );
        let mut changelog = history::follow(
            js.clone(),
            STREAM_CHANGELOG,
            beacon_contract::names::ALL_CHANGELOG,
            &shutdown,
        );
        // What the region wrote in its own domain while cut off (never
        // caught up with: the region's leaf may be away, and the cluster's
        // streams get all of it when the cut heals).
        let mut regional = match &self.config.region {
            Some(region) => history::follow(
                async_nats::jetstream::with_domain(self.daemon.client.clone(), region),
                &regional_stream(region),
                &format!("{SUBJECT_ROOT}.regional.{region}.>"),
                &shutdown,
            ),
            None => tokio::sync::mpsc::channel(1).1,
        };
        // config, status, uptime, incidents, maintenance, changelog
        let mut caught_up = [false; 6];
        let mut render_at: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let deadline = render_at
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                change = config_changes.recv() => match change {
                    Some(Change::Entry(entry)) => self.on_config(&entry),
                    Some(Change::CaughtUp) => caught_up[0] = true,
                    None => return,
                },
                change = status_changes.recv() => match change {
                    Some(Change::Entry(entry)) => self.on_status(&entry),
                    Some(Change::CaughtUp) => caught_up[1] = true,
                    None => return,
                },
                change = uptime_changes.recv() => match change {
                    Some(Change::Entry(entry)) => self.on_uptime(&entry),
                    Some(Change::CaughtUp) => caught_up[2] = true,
                    None => return,
                },
                event = incidents.recv() => match event {
                    Some(Event::Message(stored)) => self.on_incident(&stored),
                    Some(Event::CaughtUp) => caught_up[3] = true,
                    None => return,
                },
                event = maintenance.recv() => match event {
                    Some(Event::Message(stored)) => self.on_maintenance(&stored),
                    Some(Event::CaughtUp) => caught_up[4] = true,
                    None => return,
                },
                Some(Event::Message(stored)) = regional.recv() => self.on_regional(stored),
                event = changelog.recv() => match event {
                    Some(Event::Message(stored)) => self.on_changelog(&stored),
                    Some(Event::CaughtUp) => caught_up[5] = true,
                    None => return,
                },
                _ = tick.tick() => {
                    self.mark_due_for_refresh();
                    self.observe_pending();
                    self.origins.retry().await;
                }
                _ = tokio::time::sleep_until(deadline), if render_at.is_some() => {
                    render_at = None;
                    if let Some(store) = &store {
                        self.fetch_assets(store).await;
                    }
                    self.render_dirty().await;
                }
            }
            if !self.api_is_up {
                self.api_is_up = self.api_up.try_recv().is_ok();
            }
            if caught_up.iter().all(|c| *c) && self.api_is_up {
                self.daemon.process.readiness.set(true);
            }
            if !self.dirty.is_empty() && render_at.is_none() {
                render_at = Some(tokio::time::Instant::now() + self.config.debounce);
            }
        }
    }

    /// Marks the pages whose last render is `--refresh` old.
    fn mark_due_for_refresh(&mut self) {
        let due: Vec<String> = self
            .rendered
            .iter()
            .filter(|(_, at)| at.elapsed() >= self.config.refresh)
            .map(|(page, _)| page.clone())
            .collect();
        for page in due {
            self.mark(&page);
        }
    }

    fn mark(&mut self, page: &str) {
        self.dirty
            .entry(page.to_owned())
            .or_insert_with(Instant::now);
    }

    fn observe_pending(&self) {
        let oldest = self
            .dirty
            .values()
            .min()
            .map_or(0.0, |since| since.elapsed().as_secs_f64());
        self.metrics.oldest_pending.set(oldest);
    }

    fn on_config(&mut self, entry: &kv::Entry) {
        match entry.operation {
            kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
                // A re-watch replays every value: only a real change renders.
                Ok(envelope) if self.followed.page(&entry.key).as_ref() != Some(&envelope.data) => {
                    self.followed.set_page(&entry.key, Some(envelope.data));
                    self.mark(&entry.key.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(page = %entry.key, error = %e, "Stored page config is unreadable; keeping the current page.")
                }
            },
            // A removed page keeps its last rendered site: the edge goes on
            // serving it; removing it from origins is an operator decision.
            kv::Operation::Delete | kv::Operation::Purge => {
                self.followed.set_page(&entry.key, None);
                self.dirty.remove(&entry.key);
            }
        }
        self.metrics.pages.set(self.followed.page_count() as i64);
    }

    fn on_status(&mut self, entry: &kv::Entry) {
        let Some((page, component)) = split_component_key(&entry.key) else {
            tracing::warn!(key = %entry.key, "Ignoring malformed status key.");
            return;
        };
        let statuses = &mut self.data.entry(page.to_owned()).or_default().statuses;
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
        self.mark(page);
    }

    fn on_uptime(&mut self, entry: &kv::Entry) {
        let Some((page, component)) = split_component_key(&entry.key) else {
            return;
        };
        let uptime = &mut self.data.entry(page.to_owned()).or_default().uptime;
        match entry.operation {
            kv::Operation::Put => match Envelope::<UptimeRollup>::decode(&entry.value) {
                Ok(envelope) if uptime.get(component) == Some(&envelope.data) => return,
                Ok(envelope) => {
                    uptime.insert(component.to_owned(), envelope.data);
                }
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "Uptime rollup is unreadable; ignoring it.");
                    return;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                if uptime.remove(component).is_none() {
                    return;
                }
            }
        }
        self.mark(page);
    }

    fn on_incident(&mut self, stored: &history::Stored) {
        let envelope = match Envelope::<IncidentEvent>::decode(&stored.payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(subject = %stored.subject, error = %e, "Incident event is unreadable; ignoring it.");
                return;
            }
        };
        let page = envelope.data.page.clone();
        let id = envelope.data.incident.clone();
        let data = self.data.entry(page.clone()).or_default();
        let events = data.incident_events.entry(id.clone()).or_default();
        if events.iter().any(|(e, _)| e.id == envelope.id) {
            return;
        }
        events.push((envelope, stored.sequence));
        let revision = events.iter().map(|(_, s)| *s).max().unwrap_or(0);
        if let Some(incident) = Incident::fold(events.iter().map(|(e, _)| e), revision) {
            data.incidents.insert(id, incident);
        }
        self.mark(&page);
    }

    /// An event the region wrote in its own domain. It has no sequence in
    /// the cluster's stream yet (the revision stays what the cluster said);
    /// when the cluster's stream gets it, it is the same event id and is
    /// folded once.
    fn on_regional(&mut self, stored: history::Stored) {
        let stored = history::Stored {
            sequence: 0,
            ..stored
        };
        let kind = stored.subject.split('.').nth(3).unwrap_or_default();
        match kind {
            "incident" => self.on_incident(&stored),
            "maintenance" => self.on_maintenance(&stored),
            "changelog" => self.on_changelog(&stored),
            _ => tracing::warn!(subject = %stored.subject, "Unknown regional event; ignoring it."),
        }
    }

    fn on_maintenance(&mut self, stored: &history::Stored) {
        let envelope = match Envelope::<MaintenanceEvent>::decode(&stored.payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(subject = %stored.subject, error = %e, "Maintenance event is unreadable; ignoring it.");
                return;
            }
        };
        let page = envelope.data.page.clone();
        let id = envelope.data.maintenance.clone();
        let data = self.data.entry(page.clone()).or_default();
        let events = data.maintenance_events.entry(id.clone()).or_default();
        if events.iter().any(|(e, _)| e.id == envelope.id) {
            return;
        }
        events.push((envelope, stored.sequence));
        events.sort_by_key(|(e, _)| (e.hlc, e.id));
        if let Some(window) = Window::fold(events.iter().map(|(e, s)| (e, *s))) {
            let item = MaintenanceItem {
                window,
                events: events.iter().map(|(e, _)| e.data.clone()).collect(),
            };
            data.maintenance.insert(id, item);
        }
        self.mark(&page);
    }

    fn on_changelog(&mut self, stored: &history::Stored) {
        let envelope = match Envelope::<ChangelogEntry>::decode(&stored.payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(subject = %stored.subject, error = %e, "Changelog event is unreadable; ignoring it.");
                return;
            }
        };
        let page = envelope.data.page.clone();
        let data = self.data.entry(page.clone()).or_default();
        for image in &envelope.data.images {
            if !data.assets.contains_key(image) {
                data.missing_assets.insert(image.clone());
            }
        }
        self.followed.apply_changelog(&envelope, stored.sequence);
        self.mark(&page);
    }

    /// Reads images changelog entries name from the object store. One
    /// that cannot be read yet is tried again at the next render; the page
    /// renders without it meanwhile.
    async fn fetch_assets(&mut self, store: &ObjectStore) {
        for (page, data) in &mut self.data {
            for name in std::mem::take(&mut data.missing_assets) {
                let object = beacon_page::origin::asset_object(page, &name);
                let mut bytes = Vec::new();
                let read = async {
                    let mut object = store.get(&object).await.map_err(|e| e.to_string())?;
                    object
                        .read_to_end(&mut bytes)
                        .await
                        .map_err(|e| e.to_string())
                };
                match read.await {
                    Ok(_) => {
                        data.assets.insert(name, bytes);
                    }
                    Err(e) => {
                        tracing::warn!(%page, asset = %name, error = %e, "Cannot read a changelog image yet; rendering without it.");
                        data.missing_assets.insert(name);
                    }
                }
            }
        }
    }

    async fn render_dirty(&mut self) {
        let empty = PageData::default();
        let dirty = std::mem::take(&mut self.dirty);
        for (page, since) in dirty {
            // Data can arrive before its page's config; the config's
            // arrival marks the page dirty again.
            let Some(config) = self.followed.page(&page) else {
                continue;
            };
            let data = self.data.get(&page).unwrap_or(&empty);
            let timer = Instant::now();
            let incidents: Vec<Incident> = data.incidents.values().cloned().collect();
            let maintenance: Vec<MaintenanceItem> = data.maintenance.values().cloned().collect();
            let changelog: Vec<ChangelogView> = self.followed.list(&page, false);
            let generated_at_ms = wall_clock_ms();
            let state = PageState {
                config: &config,
                statuses: &data.statuses,
                uptime: &data.uptime,
                incidents: &incidents,
                maintenance: &maintenance,
                changelog: &changelog,
                assets: &data.assets,
                generated_at_ms,
                strings: &EN,
                degradation: self.daemon.process.degradation.level(),
            };
            let files = site(&state);
            let worst = state.worst().map_or("unknown", |s| s.as_str());
            let version = EventId::new().to_string();
            let built = self.compressors.entry(page.clone()).or_default().build(
                &page,
                &version,
                generated_at_ms,
                host_of(config.url.as_deref()),
                files,
            );
            self.metrics
                .render_seconds
                .observe(timer.elapsed().as_secs_f64());

            self.rendered.insert(page.clone(), Instant::now());
            let everywhere = self.origins.publish(std::sync::Arc::new(built)).await;
            if !everywhere {
                // The origins that did not take it keep it and catch up.
                self.metrics.renders.with_label_values(&["partial"]).inc();
                tracing::warn!(page = %page, %version, status = worst, "Page published to some origins; the others catch up when they take versions again.");
            } else {
                self.metrics.renders.with_label_values(&["published"]).inc();
                self.metrics
                    .staleness_seconds
                    .observe(since.elapsed().as_secs_f64());
                tracing::info!(page = %page, %version, status = worst, "Page published.");
            }
        }
        self.observe_pending();
    }
}

async fn open_objects(
    js: &async_nats::jetstream::Context,
    shutdown: &beacon_runtime::shutdown::Shutdown,
) -> Option<ObjectStore> {
    let mut backoff =
        beacon_runtime::shutdown::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match js.get_object_store(OBJECT_PAGES).await {
            Ok(store) => return Some(store),
            Err(e) => {
                tracing::warn!(bucket = OBJECT_PAGES, error = %e, "Cannot open the object store, retrying.");
                if !shutdown.sleep(backoff.next_delay()).await {
                    return None;
                }
            }
        }
    }
}

/// Blob names a manifest references.
pub fn referenced_blobs(manifest: &beacon_page::origin::Manifest) -> HashSet<String> {
    let mut names = HashSet::new();
    for entry in manifest.files.values() {
        for sha in [Some(&entry.sha256), entry.gzip.as_ref(), entry.br.as_ref()]
            .into_iter()
            .flatten()
        {
            names.insert(beacon_page::origin::blob_object(&manifest.page, sha));
        }
    }
    names
}
