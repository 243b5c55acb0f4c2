//! The degradation level a process sees, as a gauge
//! (`beacon_<daemon>_degradation_level`, 0 to 3) and one gauge per cause
//! (`beacon_<daemon>_degradation_causes{cause}`, the level each cause
//! holds it at, 0 when cleared). Parts of the process set and clear causes
//! (`bus`, `origin`, `provider`, `stale`, `emergency`, …); the level is the
//! worst of them. Every change is logged once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use beacon_contract::degradation::Level;
use prometheus::{IntGauge, IntGaugeVec};

use crate::shutdown::Shutdown;
use crate::telemetry::{MetricError, Metrics};

/// The causes a process holds and the level they make.
#[derive(Clone)]
pub struct Degradation {
    causes: Arc<Mutex<BTreeMap<&'static str, Level>>>,
    level: IntGauge,
    by_cause: IntGaugeVec,
}

impl std::fmt::Debug for Degradation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Degradation")
            .field("level", &self.level())
            .finish()
    }
}

impl Degradation {
    /// Registers the gauges in `metrics`, at level 0.
    pub fn new(metrics: &Metrics) -> Result<Degradation, MetricError> {
        Ok(Degradation {
            causes: Arc::new(Mutex::new(BTreeMap::new())),
            level: metrics.single_gauge(
                "degradation_level",
                "Degradation level this process sees: 0 full, 1 origin degraded, 2 compute degraded, 3 emergency",
            )?,
            by_cause: metrics.gauge(
                "degradation_causes",
                "Level each cause holds this process at (0 when cleared), by cause",
                &["cause"],
            )?,
        })
    }

    /// Holds the process at `level` for `cause`, or clears the cause.
    pub fn set(&self, cause: &'static str, level: Option<Level>) {
        let mut causes = self.causes.lock().unwrap_or_else(PoisonError::into_inner);
        let before = causes.get(cause).copied();
        if before == level {
            return;
        }
        match level {
            Some(level) => {
                causes.insert(cause, level);
                tracing::warn!(
                    cause,
                    level = level.number(),
                    state = level.name(),
                    "Degraded."
                );
            }
            None => {
                causes.remove(cause);
                tracing::info!(cause, "Recovered.");
            }
        }
        let worst = causes.values().max().copied().unwrap_or(Level::Full);
        drop(causes);
        self.by_cause
            .with_label_values(&[cause])
            .set(i64::from(level.map_or(0, Level::number)));
        self.level.set(i64::from(worst.number()));
    }

    /// Holds the process at `level` for `cause` while `held`.
    pub fn hold(&self, cause: &'static str, level: Level, held: bool) {
        self.set(cause, held.then_some(level));
    }

    /// The worst level any cause holds.
    pub fn level(&self) -> Level {
        self.causes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .max()
            .copied()
            .unwrap_or(Level::Full)
    }
}

/// Holds `degradation` at level 2 (cause `bus`) while `client`'s
/// connection is down, until shutdown: a process cut off from the bus
/// cannot keep the page live. Every daemon runs it from the start; a
/// process that connects later (the DNS responder) runs it itself.
pub async fn watch_bus(client: async_nats::Client, degradation: Degradation, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        degradation.hold("bus", Level::ComputeDegraded, !connected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_is_the_worst_cause_and_falls_when_it_clears() {
        let metrics = Metrics::new("test");
        let degradation = Degradation::new(&metrics).expect("metrics");
        assert_eq!(degradation.level(), Level::Full);
        degradation.set("origin", Some(Level::OriginDegraded));
        degradation.set("bus", Some(Level::ComputeDegraded));
        assert_eq!(degradation.level(), Level::ComputeDegraded);
        degradation.hold("bus", Level::ComputeDegraded, false);
        assert_eq!(degradation.level(), Level::OriginDegraded);
        let text = metrics.render();
        assert!(text.contains("beacon_test_degradation_level 1"), "{text}");
        assert!(
            text.contains("beacon_test_degradation_causes{cause=\"bus\"} 0"),
            "{text}"
        );
        degradation.set("origin", None);
        assert_eq!(degradation.level(), Level::Full);
    }
}
