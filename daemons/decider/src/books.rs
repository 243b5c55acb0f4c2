//! What every decider instance knows of incidents, maintenance windows and
//! overrides: folds of the `INCIDENTS` and `MAINTENANCE` streams and the
//! `overrides` bucket, kept up to date by followers that run whether or not
//! the instance leads. The API answers reads from them; the leading
//! decider's engine layers them over automation.
//!
//! Every change is announced as a [`Touch`] naming the page and the
//! components whose status it may change, so the engine re-evaluates only
//! those. The folds are order-independent and idempotent, so a writer may
//! also apply its own event at once ([`Books::apply_incident`]) without
//! waiting for the follower, and the follower's copy changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use async_nats::jetstream::{self, kv};
use beacon_contract::event::Envelope;
use beacon_contract::incident::Incident;
use beacon_contract::maintenance::Window;
use beacon_contract::messages::{ComponentOverride, IncidentEvent, MaintenanceEvent};
use beacon_contract::names::{
    split_component_key, ALL_INCIDENTS, ALL_MAINTENANCE, STREAM_INCIDENTS, STREAM_MAINTENANCE,
};
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::history::{self, Event};
use beacon_runtime::shutdown::Shutdown;
use tokio::sync::{broadcast, watch};

/// Components of a page whose status may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    /// Page id.
    pub page: String,
    /// Component ids; empty means every component of the page.
    pub components: Vec<String>,
}

/// One incident's events and their fold.
#[derive(Debug, Clone, Default)]
struct IncidentLog {
    events: Vec<Envelope<IncidentEvent>>,
    revision: u64,
    folded: Option<Incident>,
}

#[derive(Debug, Default)]
struct State {
    incidents: HashMap<String, BTreeMap<String, IncidentLog>>,
    maintenance: HashMap<String, BTreeMap<String, Window>>,
    overrides: HashMap<(String, String), (ComponentOverride, beacon_contract::hlc::Hlc)>,
}

/// The shared folds; cheap to clone.
#[derive(Debug, Clone)]
pub struct Books {
    state: Arc<RwLock<State>>,
    touches: broadcast::Sender<Touch>,
}

impl Default for Books {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            touches: broadcast::channel(4096).0,
        }
    }
}

/// Components an incident names now or named before: its status layer
/// changes for all of them.
fn named(incident: &Option<Incident>) -> Vec<String> {
    incident
        .as_ref()
        .map(|i| i.components.iter().map(|c| c.component.clone()).collect())
        .unwrap_or_default()
}

impl Books {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Touch> {
        self.touches.subscribe()
    }

    fn touch(&self, page: &str, components: Vec<String>) {
        // Nobody listening (no engine leads) is fine.
        let _ = self.touches.send(Touch {
            page: page.to_owned(),
            components,
        });
    }

    /// Folds one incident event in, at stream sequence `sequence`.
    pub fn apply_incident(&self, envelope: Envelope<IncidentEvent>, sequence: u64) {
        let page = envelope.data.page.clone();
        let mut touched = {
            let mut state = self.write();
            let log = state
                .incidents
                .entry(page.clone())
                .or_default()
                .entry(envelope.data.incident.clone())
                .or_default();
            if log.events.iter().any(|e| e.id == envelope.id) {
                log.revision = log.revision.max(sequence);
                if let Some(folded) = &mut log.folded {
                    folded.revision = log.revision;
                }
                return;
            }
            let before = named(&log.folded);
            log.events.push(envelope);
            log.revision = log.revision.max(sequence);
            log.folded = Incident::fold(&log.events, log.revision);
            let mut touched = before;
            touched.extend(named(&log.folded));
            touched
        };
        touched.sort();
        touched.dedup();
        self.touch(&page, touched);
    }

    /// Folds one maintenance event in, at stream sequence `sequence`.
    pub fn apply_maintenance(&self, envelope: &Envelope<MaintenanceEvent>, sequence: u64) {
        let page = envelope.data.page.clone();
        let touched = {
            let mut state = self.write();
            let slot = state
                .maintenance
                .entry(page.clone())
                .or_default()
                .entry(envelope.data.maintenance.clone());
            let window = match slot {
                std::collections::btree_map::Entry::Occupied(entry) => {
                    let window = entry.into_mut();
                    let mut folded = Some(window.clone());
                    Window::apply(&mut folded, envelope, sequence);
                    *window = folded.expect("folded over an existing window");
                    window
                }
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let mut folded = None;
                    Window::apply(&mut folded, envelope, sequence);
                    entry.insert(folded.expect("one event folds into a window"))
                }
            };
            let mut touched = window.state.components.clone();
            touched.extend(envelope.data.components.iter().cloned());
            touched
        };
        self.touch(&page, touched);
    }

    /// Sets the override of `page`.`component` if `hlc` is later than the
    /// one held: the last writer wins, whichever arrives first.
    pub fn apply_override(&self, envelope: &Envelope<ComponentOverride>) -> bool {
        let data = &envelope.data;
        let key = (data.page.clone(), data.component.clone());
        let newer = {
            let mut state = self.write();
            let newer = state
                .overrides
                .get(&key)
                .is_none_or(|(_, hlc)| envelope.hlc > *hlc);
            if newer {
                state.overrides.insert(key, (data.clone(), envelope.hlc));
            }
            newer
        };
        if newer {
            self.touch(&data.page, vec![data.component.clone()]);
        }
        newer
    }

    /// One incident.
    pub fn incident(&self, page: &str, id: &str) -> Option<Incident> {
        self.read().incidents.get(page)?.get(id)?.folded.clone()
    }

    /// Every incident of `page`, newest first.
    pub fn incidents(&self, page: &str) -> Vec<Incident> {
        let mut list: Vec<Incident> = self
            .read()
            .incidents
            .get(page)
            .map(|m| m.values().filter_map(|log| log.folded.clone()).collect())
            .unwrap_or_default();
        list.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
        list
    }

    /// One maintenance window.
    pub fn window(&self, page: &str, id: &str) -> Option<Window> {
        self.read().maintenance.get(page)?.get(id).cloned()
    }

    /// Every maintenance window of `page`, by start.
    pub fn windows(&self, page: &str) -> Vec<Window> {
        let mut list: Vec<Window> = self
            .read()
            .maintenance
            .get(page)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by(|a, b| {
            (a.state.starts_at_ms, &a.state.maintenance)
                .cmp(&(b.state.starts_at_ms, &b.state.maintenance))
        });
        list
    }

    /// Pages with maintenance windows.
    pub fn maintenance_pages(&self) -> Vec<String> {
        self.read().maintenance.keys().cloned().collect()
    }

    /// Every override ever set on `page` (cleared ones have no status).
    pub fn overrides(&self, page: &str) -> Vec<ComponentOverride> {
        self.read()
            .overrides
            .iter()
            .filter(|((p, _), _)| p == page)
            .map(|(_, (o, _))| o.clone())
            .collect()
    }

    /// The override of a component, if one was ever set.
    pub fn override_of(&self, page: &str, component: &str) -> Option<ComponentOverride> {
        self.read()
            .overrides
            .get(&(page.to_owned(), component.to_owned()))
            .map(|(o, _)| o.clone())
    }
}

/// Follows INCIDENTS, MAINTENANCE and KV `overrides` into `books` until
/// shutdown; reports on `ready` once all three have caught up.
pub fn follow(
    js: &jetstream::Context,
    overrides: kv::Store,
    books: Books,
    shutdown: &Shutdown,
    ready: watch::Sender<bool>,
) {
    let mut incidents = history::follow(js.clone(), STREAM_INCIDENTS, ALL_INCIDENTS, shutdown);
    let mut maintenance =
        history::follow(js.clone(), STREAM_MAINTENANCE, ALL_MAINTENANCE, shutdown);
    let mut changes = buckets::follow(overrides, shutdown);
    shutdown.spawn(async move {
        let mut caught_up = [false; 3];
        loop {
            tokio::select! {
                Some(event) = incidents.recv() => match event {
                    Event::Message(stored) => match Envelope::<IncidentEvent>::decode(&stored.payload) {
                        Ok(envelope) => books.apply_incident(envelope, stored.sequence),
                        Err(e) => tracing::warn!(subject = %stored.subject, error = %e, "Unreadable incident event skipped."),
                    },
                    Event::CaughtUp => caught_up[0] = true,
                },
                Some(event) = maintenance.recv() => match event {
                    Event::Message(stored) => match Envelope::<MaintenanceEvent>::decode(&stored.payload) {
                        Ok(envelope) => books.apply_maintenance(&envelope, stored.sequence),
                        Err(e) => tracing::warn!(subject = %stored.subject, error = %e, "Unreadable maintenance event skipped."),
                    },
                    Event::CaughtUp => caught_up[1] = true,
                },
                Some(change) = changes.recv() => match change {
                    Change::Entry(entry) if entry.operation == kv::Operation::Put => {
                        match Envelope::<ComponentOverride>::decode(&entry.value) {
                            Ok(envelope) if split_component_key(&entry.key).is_some() => {
                                books.apply_override(&envelope);
                            }
                            Ok(_) => tracing::warn!(key = %entry.key, "Override under a malformed key skipped."),
                            Err(e) => tracing::warn!(key = %entry.key, error = %e, "Unreadable override skipped."),
                        }
                    }
                    Change::Entry(_) => {}
                    Change::CaughtUp => caught_up[2] = true,
                },
                else => return,
            }
            if caught_up.iter().all(|c| *c) && !*ready.borrow() {
                let _ = ready.send(true);
            }
        }
    });
}
