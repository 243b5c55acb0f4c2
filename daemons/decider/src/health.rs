//! The HEALTH handler: applies each probe result, and when the decided
//! status changes writes KV `status` (compare-and-set) and then appends a
//! STATUS event. The in-memory view is only updated after both side effects
//! succeeded, so a retried message recomputes the same transition, and the
//! change id is derived from the triggering result so the retry's KV write
//! and publish are recognised as the same change.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::kv;
use beacon_core::consume::{Delivery, HandlerError};
use beacon_core::daemon::Daemon;
use beacon_core::event::{Envelope, EventId};
use beacon_core::hlc::wall_clock_ms;
use beacon_core::lease::Lease;
use beacon_core::messages::{ComponentStatus, HealthResult, StatusChange, StatusRecord};
use beacon_core::names::{health_subject, status_key, status_subject};
use beacon_core::publish::publish;
use prometheus::IntCounterVec;
use tokio::sync::Mutex;
use ulid::Ulid;

use crate::configs::Configs;
use crate::rules::ComponentView;
use crate::step::{step, Ignored, Transition};

/// What the decider remembers per component.
#[derive(Debug, Clone, Default)]
struct ComponentState {
    view: ComponentView,
    /// Current status and its KV revision; `None` when KV has none.
    current: Option<(ComponentStatus, u64)>,
}

/// The handler's state and handles.
#[derive(Clone)]
pub struct HealthHandler {
    daemon: Daemon,
    /// The decider's lease: status writes are fenced by it.
    lease: Lease,
    configs: Configs,
    status: kv::Store,
    components: Arc<Mutex<HashMap<(String, String), ComponentState>>>,
    ignored: IntCounterVec,
    transitions: IntCounterVec,
}

/// Salt mixed into a triggering result's id to derive its status-change id.
const CHANGE_SALT: u128 = 0x5354_4154_5553_4348_414e_4745; // "STATUSCHANGE"

/// The status-change id for a transition triggered by `trigger`: stable
/// across retries, unique per trigger, sortable by time like any event id.
pub fn change_id(trigger: EventId) -> EventId {
    EventId(Ulid::from_parts(
        trigger.0.timestamp_ms(),
        trigger.0.random() ^ CHANGE_SALT,
    ))
}

impl HealthHandler {
    /// A handler over the status bucket and the shared configs.
    pub fn new(
        daemon: Daemon,
        lease: Lease,
        configs: Configs,
        status: kv::Store,
    ) -> Result<Self, beacon_core::telemetry::MetricError> {
        let ignored = daemon.process.metrics.counter(
            "results_ignored_total",
            "Probe results for pages, components, checks or regions not in the config",
            &["reason"],
        )?;
        let transitions = daemon.process.metrics.counter(
            "status_changes_total",
            "Component status changes, by new status",
            &["to"],
        )?;
        Ok(Self {
            daemon,
            lease,
            configs,
            status,
            components: Arc::default(),
            ignored,
            transitions,
        })
    }

    /// Forgets every component's in-memory state, so a new term as leader
    /// starts from what KV holds, not from what this process last saw.
    pub async fn reset(&self) {
        self.components.lock().await.clear();
    }

    /// Handles one HEALTH delivery.
    pub async fn handle(&self, delivery: Delivery) -> Result<(), HandlerError> {
        let envelope = delivery.decode::<HealthResult>()?;
        let result = &envelope.data;
        let expected = health_subject(&result.page, &result.component, &result.region);
        if delivery.subject != expected {
            return Err(HandlerError::poison(format!(
                "result for {expected} arrived on {}",
                delivery.subject
            )));
        }
        self.daemon.clock.observe(envelope.hlc, wall_clock_ms());

        let key = (result.page.clone(), result.component.clone());
        let mut components = self.components.lock().await;
        if !components.contains_key(&key) {
            let loaded = self.load(&result.page, &result.component).await?;
            components.insert(key.clone(), loaded);
        }
        let Some(state) = components.get_mut(&key) else {
            return Err(HandlerError::retry("component state vanished"));
        };
        let config = self.configs.get(&result.page);
        let current = state.current.map(|(status, _)| status);
        // The view is replaced only after the side effects succeeded, so a
        // retried message recomputes the same transition.
        let (view, transition) = match step(
            config.as_deref(),
            &state.view,
            current,
            result,
            envelope.id,
        ) {
            Ok(next) => next,
            Err(reason) => {
                let label = match reason {
                    Ignored::UnknownPage => "unknown_page",
                    Ignored::UnknownComponent => "unknown_component",
                    Ignored::UnknownCheck => "unknown_check",
                    Ignored::UnknownRegion => "unknown_region",
                };
                self.ignored.with_label_values(&[label]).inc();
                tracing::debug!(page = %result.page, component = %result.component, reason = label, "Result ignored.");
                return Ok(());
            }
        };
        if let Some(transition) = transition {
            let revision = state.current.map(|(_, revision)| revision);
            match self
                .apply(
                    &result.page,
                    &result.component,
                    revision,
                    &transition,
                    envelope.id,
                )
                .await
            {
                Ok(revision) => state.current = Some((transition.to, revision)),
                Err(e) => {
                    // Forget the cached state so the retry starts from what KV holds.
                    components.remove(&key);
                    return Err(e);
                }
            }
        }
        state.view = view;
        Ok(())
    }

    /// Reads the component's current status from KV (after a restart, or
    /// the first time the component is seen).
    async fn load(&self, page: &str, component: &str) -> Result<ComponentState, HandlerError> {
        let entry = self
            .status
            .entry(status_key(page, component))
            .await
            .map_err(|e| HandlerError::retry(format!("cannot read KV status: {e}")))?;
        let current = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                match Envelope::<StatusRecord>::decode(&entry.value) {
                    Ok(record) => Some((record.data.status, entry.revision)),
                    Err(e) => {
                        tracing::warn!(page, component, error = %e, "Stored status is unreadable; it will be overwritten.");
                        None
                    }
                }
            }
            _ => None,
        };
        // A revision with an unreadable value must still be the CAS base.
        Ok(ComponentState {
            view: ComponentView::default(),
            current,
        })
    }

    async fn apply(
        &self,
        page: &str,
        component: &str,
        revision: Option<u64>,
        transition: &Transition,
        trigger: EventId,
    ) -> Result<u64, HandlerError> {
        // A paused or cut-off leader must not write over its successor.
        self.lease.check().await.map_err(HandlerError::classified)?;
        let change = change_id(trigger);
        let hlc = self.daemon.clock.now();
        let record = Envelope::with_id(
            change,
            hlc,
            &self.daemon.origin,
            StatusRecord {
                page: page.to_owned(),
                component: component.to_owned(),
                status: transition.to,
                since_ms: wall_clock_ms(),
                change,
                evidence: transition.evidence.clone(),
                from: transition.from,
                source: Default::default(),
                automatic: Some(transition.to),
                flapping: false,
                inhibited: None,
                proposal: None,
                recent: Vec::new(),
            },
        );
        let key = status_key(page, component);
        let bytes = record.encode().map_err(HandlerError::poison)?;
        let written = match revision {
            Some(revision) => self
                .status
                .update(&key, bytes.into(), revision)
                .await
                .map_err(|e| e.to_string()),
            None => self
                .status
                .create(&key, bytes.into())
                .await
                .map_err(|e| e.to_string()),
        };
        let revision = match written {
            Ok(revision) => revision,
            Err(reason) => {
                self.resolve_conflict(page, component, &key, change, reason)
                    .await?
            }
        };

        let event = Envelope::with_id(
            change,
            hlc,
            &self.daemon.origin,
            StatusChange {
                page: page.to_owned(),
                component: component.to_owned(),
                from: transition.from,
                to: transition.to,
                at_ms: wall_clock_ms(),
                source: Default::default(),
                flapping: false,
                inhibited: None,
                proposal: None,
                evidence: transition.evidence.clone(),
            },
        );
        publish(&self.daemon.js, &status_subject(page, component), &event)
            .await
            .map_err(HandlerError::retry)?;
        self.transitions
            .with_label_values(&[transition.to.as_str()])
            .inc();
        tracing::info!(
            page, component,
            from = transition.from.map_or("none", ComponentStatus::as_str),
            to = transition.to.as_str(),
            rule = %transition.evidence.rule,
            "Component status changed."
        );
        Ok(revision)
    }

    /// A failed compare-and-set: either an earlier attempt of this very
    /// change landed (fine), or someone else wrote (reload and retry).
    async fn resolve_conflict(
        &self,
        page: &str,
        component: &str,
        key: &str,
        change: EventId,
        reason: String,
    ) -> Result<u64, HandlerError> {
        let entry = self.status.entry(key).await.map_err(|e| {
            HandlerError::retry(format!(
                "status write failed ({reason}) and re-read failed: {e}"
            ))
        })?;
        if let Some(entry) = entry {
            if let Ok(stored) = Envelope::<StatusRecord>::decode(&entry.value) {
                if stored.data.change == change {
                    return Ok(entry.revision);
                }
            }
        }
        tracing::warn!(page, component, "Status changed underneath, reloading.");
        Err(HandlerError::retry(format!(
            "status of {key} changed underneath: {reason}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_id_is_stable_per_trigger_and_distinct_from_it() {
        let trigger = EventId::new();
        let other = EventId::new();
        assert_eq!(
            change_id(trigger),
            change_id(trigger),
            "a retry finds its own change"
        );
        assert_ne!(change_id(trigger), trigger);
        assert_ne!(change_id(trigger), change_id(other));
        assert_eq!(
            change_id(trigger).0.timestamp_ms(),
            trigger.0.timestamp_ms(),
            "sorts with its trigger"
        );
    }
}
