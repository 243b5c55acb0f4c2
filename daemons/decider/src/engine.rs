//! The engine of one leadership term: the single task that owns every
//! component state of the partition it leads, applies probe results,
//! heartbeats, overrides, incidents and maintenance to them, runs the
//! timers (regions going stale, flap windows closing, overrides expiring,
//! maintenance steps), and stores each change through [`Store`].
//!
//! Inputs come over a channel, so the consumer tasks decode and ack in
//! parallel while state has one owner and needs no locks. A batch is
//! answered only once every change it caused is stored, so a message is
//! acked only after its durable side effect; a component whose store
//! failed is reloaded from KV (which finishes a half-stored change) and its
//! messages are retried.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{
    ComponentOverride, ComponentStatus, HealthResult, IncidentLifecycle, IncidentState,
    MaintenanceEvent, Outcome as ProbeOutcome, ProbeHeartbeat, ProbeVerdict, StatusSource,
};
use beacon_contract::names::{health_subject, maintenance_subject, probe_verdict_subject};
use beacon_runtime::consume::Outcome;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::lease::{partition_of, Lease};
use beacon_runtime::publish::{publish, publish_expecting, PublishFailure};
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::timers::Timers;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::books::{Books, Touch};
use crate::component::{Applied, ComponentState, Context, IncidentLayer, Stored, Verdict};
use crate::configs::{Configs, Page};
use crate::metrics::Metrics;
use crate::schedule;
use crate::store::{Repair, Store, StoreError};
use crate::suspect::{SuspectRules, Suspects};

/// How many components are loaded or stored at once.
const STORE_CONCURRENCY: usize = 64;

/// The engine's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// When a probe is suspect.
    pub suspect: SuspectRules,
    /// Results taken further in the future than this are dropped.
    pub max_future_ms: u64,
    /// Results older than this are dropped.
    pub max_age_ms: u64,
    /// The partition this term leads.
    pub partition: u32,
    /// Partitions in all.
    pub partitions: u32,
}

/// A decoded HEALTH delivery, or why it is poison.
pub type Decoded = Result<(String, Envelope<HealthResult>), String>;

/// What the consumers hand the engine.
#[derive(Debug)]
pub enum Input {
    /// A batch of results; the engine answers one outcome per result.
    Health {
        /// The results, in delivery order.
        batch: Vec<Decoded>,
        /// Where the outcomes go.
        reply: oneshot::Sender<Vec<Outcome>>,
    },
    /// A probe's heartbeat.
    Heartbeat(Envelope<ProbeHeartbeat>),
}

/// Work due at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Re-evaluate a component (stale region, flap window, override expiry).
    Component(String, String),
    /// Take a maintenance window's next step.
    Maintenance(String, String),
    /// Announce a series' next occurrences.
    Series(String, String),
    /// Retry loading a page's components that failed to load.
    Load(String),
    /// Re-judge the probes (results leave the window with time).
    Judge,
}

/// An active incident as one component's layer sees it (owned).
#[derive(Debug)]
struct ActiveIncident {
    id: String,
    status: ComponentStatus,
    state: IncidentState,
    explicit: bool,
}

/// What the layers above automation say for one page's components.
#[derive(Debug, Default)]
struct Layers {
    overrides: HashMap<String, ComponentOverride>,
    maintenance: HashMap<String, Vec<(String, String)>>,
    incidents: HashMap<String, Vec<ActiveIncident>>,
    covered: HashSet<String>,
    /// The decider's own proposals no operator has confirmed yet, by
    /// component: (incident id, the status it gives it, its revision).
    proposed: HashMap<String, Vec<(String, ComponentStatus, u64)>>,
}

impl Layers {
    fn of(books: &Books, page: &str) -> Layers {
        let mut layers = Layers::default();
        for manual in books.overrides(page) {
            layers.overrides.insert(manual.component.clone(), manual);
        }
        for window in books.windows(page) {
            if window.is_in_progress() {
                for component in &window.state.components {
                    layers
                        .maintenance
                        .entry(component.clone())
                        .or_default()
                        .push((window.state.maintenance.clone(), window.state.title.clone()));
                }
            }
        }
        for incident in books.incidents(page) {
            if !incident.is_pending_or_active() {
                continue;
            }
            let latest = incident.updates.last();
            let proposed_here = incident.lifecycle == IncidentLifecycle::Proposed
                && incident.created_by == crate::store::ACTOR;
            for affected in &incident.components {
                layers.covered.insert(affected.component.clone());
                if proposed_here {
                    layers
                        .proposed
                        .entry(affected.component.clone())
                        .or_default()
                        .push((incident.id.clone(), affected.status, incident.revision));
                }
                if incident.is_active() {
                    // An operator named this component's status in the
                    // latest update: that stands even against automation.
                    let explicit = latest.is_some_and(|update| {
                        update.actor != crate::store::ACTOR
                            && update
                                .components
                                .iter()
                                .any(|c| c.component == affected.component)
                    });
                    layers
                        .incidents
                        .entry(affected.component.clone())
                        .or_default()
                        .push(ActiveIncident {
                            id: incident.id.clone(),
                            status: affected.status,
                            state: incident.state,
                            explicit,
                        });
                }
            }
        }
        layers
    }
}

/// A component id and what loading it gave.
type LoadedComponent = (String, Result<(Stored, Repair), StoreError>);

/// One page of the partition.
struct PageState {
    config: Arc<Page>,
    components: HashMap<String, ComponentState>,
    /// Components whose stored state must be (re)read before use.
    unloaded: HashSet<String>,
    layers: Option<Layers>,
}

/// A component to evaluate, and the result that made it so.
struct Dirty {
    page: String,
    component: String,
    trigger: Option<EventId>,
}

/// The engine of one term.
pub struct Engine {
    daemon: Daemon,
    lease: Lease,
    configs: Configs,
    books: Books,
    store: Store,
    settings: Settings,
    metrics: Metrics,
    pages: HashMap<String, PageState>,
    suspects: Suspects,
    timers: Timers<Key>,
    /// Components this term has claimed in KV `status` (see
    /// [`Store::load`]): the first load of each claims it.
    claimed: HashSet<(String, String)>,
}

impl Engine {
    /// An engine for one term.
    pub fn new(
        daemon: Daemon,
        lease: Lease,
        configs: Configs,
        books: Books,
        store: Store,
        settings: Settings,
        metrics: Metrics,
    ) -> Self {
        Self {
            daemon,
            lease,
            configs,
            books,
            store,
            settings,
            metrics,
            pages: HashMap::new(),
            suspects: Suspects::default(),
            timers: Timers::new(),
            claimed: HashSet::new(),
        }
    }

    fn mine(&self, page: &str) -> bool {
        self.settings.partitions <= 1
            || partition_of(page, self.settings.partitions) == self.settings.partition
    }

    /// Runs the term until `term` is cancelled: loads every component of
    /// the partition, then handles inputs, changes and timers.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>, term: Shutdown) {
        let mut touches = self.books.subscribe();
        let mut config_changes = self.configs.subscribe();
        let started = Instant::now();
        for page in self.configs.pages() {
            if self.mine(&page) {
                self.add_page(&page).await;
            }
        }
        let everything: Vec<Dirty> = self.all_components();
        self.settle(everything).await;
        self.timers
            .schedule(Key::Judge, tokio::time::Instant::now() + self.judge_every());
        tracing::info!(
            partition = self.settings.partition,
            pages = self.pages.len(),
            components = self.component_count(),
            took = ?started.elapsed(),
            "Term started: every component loaded."
        );
        loop {
            tokio::select! {
                _ = term.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(Input::Health { batch, reply }) => {
                        let outcomes = self.health(batch).await;
                        let _ = reply.send(outcomes);
                    }
                    Some(Input::Heartbeat(heartbeat)) => self.heartbeat(heartbeat).await,
                    None => break,
                },
                touch = touches.recv() => match touch {
                    Ok(touch) => self.touch(touch).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for page in self.pages.values_mut() {
                            page.layers = None;
                        }
                        let everything = self.all_components();
                        self.settle(everything).await;
                        self.schedule_all_maintenance();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                page = config_changes.recv() => match page {
                    Ok(page) => self.config_changed(&page).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for page in self.configs.pages() {
                            self.config_changed(&page).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                key = self.timers.next_due() => self.due(key).await,
            }
        }
        self.metrics.components.set(0);
        self.metrics.flapping.set(0);
        self.metrics.suspect_regions.set(0);
    }

    fn judge_every(&self) -> Duration {
        Duration::from_millis((self.settings.suspect.window_ms / 4).clamp(250, 15_000))
    }

    fn component_count(&self) -> usize {
        self.pages.values().map(|p| p.components.len()).sum()
    }

    fn all_components(&self) -> Vec<Dirty> {
        self.pages
            .iter()
            .flat_map(|(page, state)| {
                state.components.keys().map(move |component| Dirty {
                    page: page.clone(),
                    component: component.clone(),
                    trigger: None,
                })
            })
            .collect()
    }

    // -- pages and loading ---------------------------------------------------

    /// Starts holding a page: every component, loaded from KV.
    async fn add_page(&mut self, page: &str) {
        let Some(config) = self.configs.get(page) else {
            return;
        };
        let now = wall_clock_ms();
        let empty = || Stored {
            record: None,
            revision: None,
            status_sequence: 0,
        };
        let components = config
            .config
            .components
            .iter()
            .map(|c| (c.id.clone(), ComponentState::new(c, now, empty())))
            .collect();
        let unloaded = config
            .config
            .components
            .iter()
            .map(|c| c.id.clone())
            .collect();
        self.pages.insert(
            page.to_owned(),
            PageState {
                config,
                components,
                unloaded,
                layers: None,
            },
        );
        let _ = self.load(page).await;
        self.schedule_maintenance(page);
        self.metrics.components.set(self.component_count() as i64);
    }

    /// Reads every unloaded component of `page` from KV, finishing any
    /// half-stored change; those that fail stay unloaded and are retried.
    /// Returns the components it loaded.
    async fn load(&mut self, page: &str) -> Vec<Dirty> {
        let Some(state) = self.pages.get(page) else {
            return Vec::new();
        };
        if state.unloaded.is_empty() {
            return Vec::new();
        }
        let config = state.config.clone();
        let wanted: Vec<String> = state.unloaded.iter().cloned().collect();
        let store = self.store.clone();
        let claimed = &self.claimed;
        let loaded: Vec<LoadedComponent> = futures::stream::iter(wanted)
            .map(|id| {
                let store = store.clone();
                let config = config.clone();
                // The first load of a component in this term claims it.
                let claim = !claimed.contains(&(page.to_owned(), id.clone()));
                async move {
                    let result = match config.component(&id) {
                        Some(component) => store.load(page, component, claim).await,
                        None => Err(StoreError::Unavailable(
                            "the component left the config".into(),
                        )),
                    };
                    (id, result)
                }
            })
            .buffer_unordered(STORE_CONCURRENCY)
            .collect()
            .await;
        let Some(state) = self.pages.get_mut(page) else {
            return Vec::new();
        };
        let mut failed = 0;
        let mut done = Vec::new();
        for (id, result) in loaded {
            match result {
                Ok((stored, repair)) => {
                    self.claimed.insert((page.to_owned(), id.clone()));
                    if repair == Repair::Republished {
                        self.metrics.republished.inc();
                    }
                    if let Some(component) = state.config.component(&id) {
                        let previous = state.components.remove(&id);
                        let mut fresh = ComponentState::new(component, wall_clock_ms(), stored);
                        // Keep what this term learned from results; take the
                        // status and automation's memory from what is stored.
                        if let Some(previous) = previous {
                            fresh.slots = previous.slots;
                        }
                        state.components.insert(id.clone(), fresh);
                        state.unloaded.remove(&id);
                        done.push(Dirty {
                            page: page.to_owned(),
                            component: id,
                            trigger: None,
                        });
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(page, component = %id, error = %e, "Cannot load the component's status; retrying.");
                }
            }
        }
        if failed > 0 {
            self.timers.schedule(
                Key::Load(page.to_owned()),
                tokio::time::Instant::now() + Duration::from_secs(1),
            );
        }
        done
    }

    async fn config_changed(&mut self, page: &str) {
        if !self.mine(page) {
            return;
        }
        let Some(config) = self.configs.get(page) else {
            // The page was removed: forget it, its timers fire into nothing.
            self.pages.remove(page);
            return;
        };
        let Some(state) = self.pages.get_mut(page) else {
            self.add_page(page).await;
            let dirty = self.page_components(page);
            self.settle(dirty).await;
            return;
        };
        if Arc::ptr_eq(&state.config, &config) {
            return;
        }
        let now = wall_clock_ms();
        let mut components = HashMap::new();
        for component in &config.config.components {
            let state_of = match state.components.remove(&component.id) {
                Some(mut existing) => {
                    existing.sync(component, now);
                    existing
                }
                None => {
                    state.unloaded.insert(component.id.clone());
                    ComponentState::new(
                        component,
                        now,
                        Stored {
                            record: None,
                            revision: None,
                            status_sequence: 0,
                        },
                    )
                }
            };
            components.insert(component.id.clone(), state_of);
        }
        state.unloaded.retain(|id| components.contains_key(id));
        state.components = components;
        state.config = config;
        state.layers = None;
        let _ = self.load(page).await;
        let dirty = self.page_components(page);
        self.settle(dirty).await;
    }

    fn page_components(&self, page: &str) -> Vec<Dirty> {
        self.pages
            .get(page)
            .map(|state| {
                state
                    .components
                    .keys()
                    .map(|component| Dirty {
                        page: page.to_owned(),
                        component: component.clone(),
                        trigger: None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    // -- results -------------------------------------------------------------

    /// Applies a batch of results and stores what they changed. One outcome
    /// per result: done (applied or ignored for good), retry (its change
    /// could not be stored yet) or poison (malformed).
    async fn health(&mut self, batch: Vec<Decoded>) -> Vec<Outcome> {
        let started = Instant::now();
        let now = wall_clock_ms();
        let mut outcomes = vec![Outcome::Done; batch.len()];
        let metrics = self.metrics.clone();
        let ignore = |reason: &str| metrics.ignored.with_label_values(&[reason]).inc();
        // Components some message needs loaded first.
        let mut to_load: HashSet<String> = HashSet::new();
        for (_, envelope) in batch.iter().flatten() {
            let r = &envelope.data;
            if let Some(state) = self.pages.get(&r.page) {
                if !state.unloaded.is_empty() && state.unloaded.contains(&r.component) {
                    to_load.insert(r.page.clone());
                }
            }
        }
        let mut reloaded = Vec::new();
        for page in to_load {
            reloaded.extend(self.load(&page).await);
        }
        let partitions = (self.settings.partition, self.settings.partitions);

        // Message index -> index into `dirty`.
        let mut owner: Vec<Option<usize>> = vec![None; batch.len()];
        let mut dirty: Vec<Dirty> = Vec::new();
        let mut dirty_index: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, decoded) in batch.iter().enumerate() {
            let (subject, envelope) = match decoded {
                Ok(ok) => ok,
                Err(reason) => {
                    ignore("malformed");
                    outcomes[i] = Outcome::poison(reason);
                    continue;
                }
            };
            let r = &envelope.data;
            if !is_subject_of(subject, r) {
                ignore("malformed");
                outcomes[i] = Outcome::poison(format!(
                    "result for {} arrived on {subject}",
                    health_subject(&r.page, &r.component, &r.region)
                ));
                continue;
            }
            if r.started_at_ms > now.saturating_add(self.settings.max_future_ms) {
                ignore("future");
                continue;
            }
            if r.started_at_ms < now.saturating_sub(self.settings.max_age_ms) {
                ignore("too_old");
                continue;
            }
            let Some(state) = self.pages.get_mut(&r.page) else {
                ignore(
                    if partitions.1 <= 1 || partition_of(&r.page, partitions.1) == partitions.0 {
                        "unknown_page"
                    } else {
                        "other_partition"
                    },
                );
                continue;
            };
            if !state.unloaded.is_empty() && state.unloaded.contains(&r.component) {
                // Its stored status could not be read: retry the result later.
                if state.config.component(&r.component).is_some() {
                    outcomes[i] =
                        Outcome::retry("the component's stored status cannot be read yet");
                } else {
                    ignore("unknown_component");
                }
                continue;
            }
            let Some(component_state) = state.components.get_mut(&r.component) else {
                ignore("unknown_component");
                continue;
            };
            if self.daemon.clock.observe(envelope.hlc, now).clamped {
                metrics.clock_ahead.inc();
            }
            let applied = component_state.apply(
                &r.check,
                &r.region,
                |rules| rules.classify(r.outcome, r.latency_ms),
                r.started_at_ms,
                envelope.id,
                r.error.as_deref(),
                now,
            );
            match applied {
                Applied::UnknownSlot => {
                    let known_check = state
                        .config
                        .component(&r.component)
                        .is_some_and(|c| c.checks.iter().any(|k| k.id == r.check));
                    ignore(if known_check {
                        "unknown_region"
                    } else {
                        "unknown_check"
                    });
                    continue;
                }
                Applied::Old => {
                    ignore("out_of_order");
                    continue;
                }
                Applied::Unchanged | Applied::Changed => {}
            }
            metrics.result(r.outcome, now.saturating_sub(r.started_at_ms));
            self.suspects.observe(
                &r.region,
                check_hash(&r.page, &r.component, &r.check),
                r.outcome == ProbeOutcome::Down,
                r.started_at_ms,
            );
            if applied == Applied::Unchanged {
                continue;
            }
            let slot = *dirty_index
                .entry((r.page.as_str(), r.component.as_str()))
                .or_insert_with(|| {
                    dirty.push(Dirty {
                        page: r.page.clone(),
                        component: r.component.clone(),
                        trigger: None,
                    });
                    dirty.len() - 1
                });
            dirty[slot].trigger = Some(envelope.id);
            owner[i] = Some(slot);
        }
        drop(dirty_index);
        // Components read again before this batch are evaluated with it:
        // a change whose store failed is decided and stored again.
        dirty.extend(reloaded);
        let judged = self.judge(now).await;
        dirty.extend(judged);
        let failed = self.settle(dirty).await;
        for (i, slot) in owner.iter().enumerate() {
            if slot.is_some_and(|s| failed.contains(&s)) {
                outcomes[i] = Outcome::retry("the status change it caused could not be stored yet");
            }
        }
        self.metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        outcomes
    }

    // -- probes --------------------------------------------------------------

    async fn heartbeat(&mut self, heartbeat: Envelope<ProbeHeartbeat>) {
        let h = &heartbeat.data;
        let failing = h.canary.as_ref().and_then(|c| match c.outcome {
            ProbeOutcome::Down => Some(c.error.clone().unwrap_or_else(|| "it failed".to_owned())),
            _ => None,
        });
        let expires = h.at_ms.max(wall_clock_ms()) + 3 * h.interval_ms.max(1_000);
        self.suspects.canary(&h.region, &h.probe, failing, expires);
        let dirty = self.judge(wall_clock_ms()).await;
        self.settle(dirty).await;
    }

    /// Re-judges the probes; publishes changed verdicts and returns the
    /// components whose counts they change.
    async fn judge(&mut self, now: u64) -> Vec<Dirty> {
        let verdicts = self.suspects.judge(now, &self.settings.suspect);
        if verdicts.is_empty() {
            return Vec::new();
        }
        self.metrics
            .suspect_regions
            .set(self.suspects.suspect_regions().len() as i64);
        let mut regions = Vec::new();
        for verdict in verdicts {
            let label = if verdict.suspect {
                "suspect"
            } else {
                "cleared"
            };
            self.metrics.verdicts.with_label_values(&[label]).inc();
            if verdict.suspect {
                tracing::warn!(region = %verdict.region, reason = %verdict.reason,
                    "Probe region is suspect: its results are left out until it recovers.");
            } else {
                tracing::info!(region = %verdict.region, reason = %verdict.reason, "Probe region is trusted again.");
            }
            let event = Envelope::new(
                &self.daemon.clock,
                &self.daemon.origin,
                ProbeVerdict {
                    region: verdict.region.clone(),
                    suspect: verdict.suspect,
                    reason: verdict.reason.clone(),
                    checks: verdict.checks,
                    failing: verdict.failing,
                    at_ms: now,
                },
            );
            if let Err(e) = publish(
                &self.daemon.js,
                &probe_verdict_subject(&verdict.region),
                &event,
            )
            .await
            {
                tracing::warn!(region = %verdict.region, error = %e, "Cannot publish the probe verdict.");
            }
            regions.push(verdict.region);
        }
        self.pages
            .iter()
            .flat_map(|(page, state)| {
                state
                    .components
                    .iter()
                    .filter(|(_, c)| c.slots.iter().any(|s| regions.contains(&s.region)))
                    .map(|(id, _)| Dirty {
                        page: page.clone(),
                        component: id.clone(),
                        trigger: None,
                    })
            })
            .collect()
    }

    // -- changes from operators and maintenance ------------------------------

    async fn touch(&mut self, touch: Touch) {
        if !self.mine(&touch.page) {
            return;
        }
        let Some(state) = self.pages.get_mut(&touch.page) else {
            return;
        };
        state.layers = None;
        let components: Vec<String> = if touch.components.is_empty() {
            state.components.keys().cloned().collect()
        } else {
            touch
                .components
                .into_iter()
                .filter(|c| state.components.contains_key(c))
                .collect()
        };
        // Children of a touched component may change their inhibition.
        let dirty = components
            .into_iter()
            .map(|component| Dirty {
                page: touch.page.clone(),
                component,
                trigger: None,
            })
            .collect();
        self.settle(dirty).await;
        self.schedule_maintenance(&touch.page);
    }

    // -- timers ----------------------------------------------------------------

    async fn due(&mut self, key: Key) {
        match key {
            Key::Component(page, component) => {
                self.settle(vec![Dirty {
                    page,
                    component,
                    trigger: None,
                }])
                .await;
            }
            Key::Maintenance(page, id) => self.maintenance_step(&page, &id).await,
            Key::Series(page, id) => self.announce_occurrences(&page, &id).await,
            Key::Load(page) => {
                let loaded = self.load(&page).await;
                self.settle(loaded).await;
            }
            Key::Judge => {
                let dirty = self.judge(wall_clock_ms()).await;
                self.settle(dirty).await;
                self.timers
                    .schedule(Key::Judge, tokio::time::Instant::now() + self.judge_every());
            }
        }
    }

    fn schedule_at(&mut self, key: Key, at_ms: u64) {
        self.timers.schedule_wall(key, at_ms, wall_clock_ms());
    }

    fn schedule_all_maintenance(&mut self) {
        let pages: Vec<String> = self.pages.keys().cloned().collect();
        for page in pages {
            self.schedule_maintenance(&page);
        }
    }

    /// Sets a timer for every window's next step and every series'
    /// next announcement on `page`.
    fn schedule_maintenance(&mut self, page: &str) {
        for window in self.books.windows(page) {
            let id = window.state.maintenance.clone();
            if window.is_series() {
                if !window.state.phase.is_final() {
                    self.schedule_at(Key::Series(page.to_owned(), id), 0);
                }
                continue;
            }
            match window.next_step() {
                Some((_, at)) => self.schedule_at(Key::Maintenance(page.to_owned(), id), at),
                None => {
                    self.timers.cancel(&Key::Maintenance(page.to_owned(), id));
                }
            }
        }
    }

    /// Takes a window's step if it is due; the event is conditional on the
    /// window being as this decider last saw it.
    async fn maintenance_step(&mut self, page: &str, id: &str) {
        let Some(window) = self.books.window(page, id) else {
            return;
        };
        let now = wall_clock_ms();
        let Some((step, at)) = window.next_step() else {
            return;
        };
        if at > now {
            self.schedule_at(Key::Maintenance(page.to_owned(), id.to_owned()), at);
            return;
        }
        let event = schedule::step_event(&window, step, now);
        match self.append_maintenance(&window, event).await {
            Ok(()) => {
                self.metrics
                    .maintenance_steps
                    .with_label_values(&[step.as_str()])
                    .inc();
                tracing::info!(
                    page,
                    maintenance = id,
                    step = step.as_str(),
                    "Maintenance step taken."
                );
            }
            Err(retry_in) => {
                self.timers.schedule(
                    Key::Maintenance(page.to_owned(), id.to_owned()),
                    tokio::time::Instant::now() + retry_in,
                );
            }
        }
    }

    /// Appends `event` to `window`'s subject if nobody wrote since; folds it
    /// in at once. On failure, how long to wait before trying again.
    async fn append_maintenance(
        &mut self,
        window: &Window,
        event: MaintenanceEvent,
    ) -> Result<(), Duration> {
        let subject = maintenance_subject(&event.page, &event.maintenance);
        let envelope = Envelope::new(&self.daemon.clock, &self.daemon.origin, event);
        match publish_expecting(&self.daemon.js, &subject, &envelope, window.revision).await {
            Ok(stored) => {
                self.books.apply_maintenance(&envelope, stored.sequence);
                Ok(())
            }
            Err(e) if e.kind() == PublishFailure::WrongLastSequence => {
                // Someone changed it first; the follower brings the change
                // and the step is judged again.
                Err(Duration::from_millis(500))
            }
            Err(e) => {
                tracing::warn!(subject, error = %e, "Cannot write the maintenance step; retrying.");
                Err(Duration::from_secs(2))
            }
        }
    }

    /// Announces a series' occurrences within the horizon, then looks again
    /// in an hour.
    async fn announce_occurrences(&mut self, page: &str, id: &str) {
        let Some(series) = self.books.window(page, id) else {
            return;
        };
        let now = wall_clock_ms();
        let books = self.books.clone();
        match schedule::occurrences_due(&series, now, |occurrence| {
            books.window(page, occurrence).is_some()
        }) {
            Ok(events) => {
                for event in events {
                    let subject = maintenance_subject(page, &event.maintenance);
                    let envelope = Envelope::new(&self.daemon.clock, &self.daemon.origin, event);
                    match publish_expecting(&self.daemon.js, &subject, &envelope, 0).await {
                        Ok(stored) => self.books.apply_maintenance(&envelope, stored.sequence),
                        Err(e) if e.kind() == PublishFailure::WrongLastSequence => {}
                        Err(e) => {
                            tracing::warn!(subject, error = %e, "Cannot announce a maintenance occurrence; retrying.");
                            self.timers.schedule(
                                Key::Series(page.to_owned(), id.to_owned()),
                                tokio::time::Instant::now() + Duration::from_secs(5),
                            );
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(page, maintenance = id, error = %e, "A stored recurrence rule does not parse; its occurrences are not announced.");
                return;
            }
        }
        self.schedule_at(Key::Series(page.to_owned(), id.to_owned()), now + 3_600_000);
    }

    // -- evaluating and storing ---------------------------------------------

    /// Evaluates `dirty` components and stores their changes. Returns the
    /// indexes (into `dirty`) whose change could not be stored.
    async fn settle(&mut self, dirty: Vec<Dirty>) -> HashSet<usize> {
        let now = wall_clock_ms();
        let suspect: Vec<String> = self
            .suspects
            .suspect_regions()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut jobs = Vec::new();
        let mut seen = HashSet::new();
        // Parents first, so a child that changes with its parent sees the
        // parent's new status and is inhibited by it.
        let mut order: Vec<usize> = (0..dirty.len()).collect();
        order.sort_by_cached_key(|&i| {
            self.pages
                .get(&dirty[i].page)
                .map_or(0, |p| depth(&p.config, &dirty[i].component))
        });
        let mut pending: HashMap<(String, String), ComponentStatus> = HashMap::new();
        let mut revisions: HashMap<usize, Vec<(String, u64)>> = HashMap::new();
        for index in order {
            let item = &dirty[index];
            if !seen.insert((item.page.as_str(), item.component.as_str())) {
                continue;
            }
            let Some(page) = self.pages.get_mut(&item.page) else {
                continue;
            };
            if page.unloaded.contains(&item.component) {
                continue;
            }
            if page.layers.is_none() {
                page.layers = Some(Layers::of(&self.books, &item.page));
            }
            let Some(component) = page.config.component(&item.component) else {
                continue;
            };
            let layers = page.layers.as_ref().expect("set above");
            let parents: Vec<(&str, Option<ComponentStatus>)> = component
                .depends_on
                .iter()
                .map(|p| {
                    let status = pending
                        .get(&(item.page.clone(), p.clone()))
                        .copied()
                        .or_else(|| page.components.get(p).and_then(ComponentState::status));
                    (p.as_str(), status)
                })
                .collect();
            let Some(state) = page.components.get(&item.component) else {
                continue;
            };
            let ctx = Context {
                page: &item.page,
                now_ms: now,
                suspect: suspect.iter().map(String::as_str).collect(),
                manual: layers.overrides.get(&item.component),
                maintenance: layers
                    .maintenance
                    .get(&item.component)
                    .map(|list| {
                        list.iter()
                            .map(|(id, title)| (id.as_str(), title.as_str()))
                            .collect()
                    })
                    .unwrap_or_default(),
                incidents: layers
                    .incidents
                    .get(&item.component)
                    .map(|list| {
                        list.iter()
                            .map(|i| IncidentLayer {
                                id: i.id.as_str(),
                                status: i.status,
                                state: i.state,
                                explicit: i.explicit,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                covered_by_incident: layers.covered.contains(&item.component),
                parents,
                trigger: item.trigger,
            };
            let (automation, verdict) = state.evaluate(component, &ctx);
            let deadline = state.next_deadline_ms(component, now, ctx.manual);
            let state = page
                .components
                .get_mut(&item.component)
                .expect("present above");
            match verdict {
                Verdict::Unchanged => state.automation = automation,
                Verdict::Quiet(record) => jobs.push((index, automation, record, false)),
                Verdict::Change(record) => {
                    pending.insert((item.page.clone(), item.component.clone()), record.status);
                    // A proposal of ours still unconfirmed follows the
                    // change: its title and status say what is true now.
                    if record.source == StatusSource::Automatic
                        && record.inhibited.is_none()
                        && record.status.severity() > ComponentStatus::Operational.severity()
                    {
                        let stale: Vec<(String, u64)> = layers
                            .proposed
                            .get(&item.component)
                            .into_iter()
                            .flatten()
                            .filter(|(_, status, _)| *status != record.status)
                            .map(|(id, _, revision)| (id.clone(), *revision))
                            .collect();
                        if !stale.is_empty() {
                            revisions.insert(index, stale);
                        }
                    }
                    jobs.push((index, automation, record, true));
                }
            }
            let key = Key::Component(item.page.clone(), item.component.clone());
            match deadline {
                Some(at) => self.timers.schedule_wall(key, at, now),
                None => {
                    self.timers.cancel(&key);
                }
            }
        }
        if jobs.is_empty() {
            return HashSet::new();
        }
        let mut failed = HashSet::new();
        // One fencing check for all of them: a paused or cut-off leader
        // stores nothing (and the stream refuses its late events anyway).
        if let Err(e) = self.lease.check().await {
            tracing::warn!(error = %e, "Not storing status changes: this decider no longer holds the lease.");
            self.metrics
                .store_failures
                .with_label_values(&["fenced"])
                .inc_by(jobs.len() as u64);
            for (index, ..) in &jobs {
                failed.insert(*index);
            }
            return failed;
        }
        let store = self.store.clone();
        let pages = &self.pages;
        let stored: Vec<(usize, _, _, bool, Result<Stored, StoreError>)> =
            futures::stream::iter(jobs)
                .map(|(index, automation, record, change)| {
                    let store = store.clone();
                    let item = &dirty[index];
                    let page = pages.get(&item.page);
                    let stale = revisions.get(&index);
                    async move {
                        let result = match page.and_then(|p| {
                            Some((
                                p.config.component(&item.component)?,
                                p.components.get(&item.component)?,
                            ))
                        }) {
                            Some((component, state)) => {
                                let committed = store
                                    .commit(&record, component, &state.stored, change)
                                    .await;
                                if committed.is_ok() {
                                    for (id, revision) in stale.into_iter().flatten() {
                                        if let Err(e) = store
                                            .revise_proposal(&record, component, id, *revision)
                                            .await
                                        {
                                            tracing::warn!(incident = %id, error = %e,
                                                "Cannot bring a proposal up to date with its component; it keeps its earlier title.");
                                        }
                                    }
                                }
                                committed
                            }
                            None => Err(StoreError::Unavailable(
                                "the component left the config".into(),
                            )),
                        };
                        (index, automation, record, change, result)
                    }
                })
                .buffer_unordered(STORE_CONCURRENCY)
                .collect()
                .await;
        let mut flapping_delta = 0i64;
        for (index, automation, record, change, result) in stored {
            let item = &dirty[index];
            let Some(page) = self.pages.get_mut(&item.page) else {
                continue;
            };
            match result {
                Ok(after) => {
                    let Some(state) = page.components.get_mut(&item.component) else {
                        continue;
                    };
                    let was_flapping = state.automation.flapping;
                    state.automation = automation;
                    state.stored = after;
                    flapping_delta +=
                        i64::from(state.automation.flapping) - i64::from(was_flapping);
                    if change {
                        self.metrics.change(
                            record.status,
                            record.source,
                            &record.evidence.rule,
                            record.flapping,
                        );
                        if record.proposal.is_some() {
                            self.metrics.proposals.inc();
                        }
                        tracing::info!(
                            page = %item.page, component = %item.component,
                            from = record.from.map_or("none", ComponentStatus::as_str),
                            to = record.status.as_str(),
                            source = record.source.as_str(),
                            flapping = record.flapping,
                            inhibited = record.inhibited.as_ref().map_or("no", |i| i.reason.as_str()),
                            rule = %record.evidence.rule,
                            "Component status changed."
                        );
                    }
                }
                Err(e) => {
                    let kind = match e {
                        StoreError::Conflict(_) => "conflict",
                        StoreError::Unavailable(_) => "unavailable",
                        StoreError::Encode(_) => "encode",
                    };
                    self.metrics.store_failures.with_label_values(&[kind]).inc();
                    tracing::warn!(page = %item.page, component = %item.component, error = %e,
                        "Cannot store the status change; reloading the component and retrying.");
                    page.unloaded.insert(item.component.clone());
                    failed.insert(index);
                    self.timers.schedule(
                        Key::Load(item.page.clone()),
                        tokio::time::Instant::now() + Duration::from_millis(500),
                    );
                }
            }
        }
        if flapping_delta != 0 {
            self.metrics.flapping.add(flapping_delta);
        }
        failed
    }
}

/// How many components `component` depends on, transitively (the config
/// has no cycles; the bound guards against a bad stored one).
fn depth(page: &Page, component: &str) -> usize {
    fn walk(page: &Page, component: &str, budget: usize) -> usize {
        if budget == 0 {
            return 0;
        }
        page.component(component).map_or(0, |c| {
            c.depends_on
                .iter()
                .map(|p| 1 + walk(page, p, budget - 1))
                .max()
                .unwrap_or(0)
        })
    }
    walk(page, component, 16)
}

/// A stable 64-bit key of one check, for counting per region (FNV-1a
/// over `page.component.check`, without building the string).
fn check_hash(page: &str, component: &str, check: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let parts = [
        page.as_bytes(),
        b".",
        component.as_bytes(),
        b".",
        check.as_bytes(),
    ];
    parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        })
}

/// Whether `subject` is `beacon.health.{page}.{component}.{region}` of
/// `result`, compared without building it.
fn is_subject_of(subject: &str, result: &HealthResult) -> bool {
    let mut tokens = subject.split('.');
    tokens.next() == Some("beacon")
        && tokens.next() == Some("health")
        && tokens.next() == Some(result.page.as_str())
        && tokens.next() == Some(result.component.as_str())
        && tokens.next() == Some(result.region.as_str())
        && tokens.next().is_none()
}
