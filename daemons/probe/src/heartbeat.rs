//! The probe's own health: every `--heartbeat-interval` it runs its canary
//! (an HTTP check of something known to work, `--canary-url`) and publishes
//! a [`ProbeHeartbeat`] on `beacon.probe.{region}.heartbeat` with the
//! canary's result and the number of checks it runs. The decider calls a
//! region whose canary fails suspect (a broken probe, not a broken
//! target), and one whose heartbeats stop stale.

use std::sync::Arc;
use std::time::Duration;

use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::{CanaryResult, ProbeHeartbeat};
use beacon_contract::names::probe_heartbeat_subject;
use beacon_page::config::HttpTarget;
use beacon_runtime::daemon::Daemon;
use beacon_runtime::publish::Publisher;
use prometheus::{IntCounterVec, IntGauge};

use crate::checks::http::HttpClient;

/// What the heartbeat loop needs.
pub struct Heartbeats {
    /// The daemon (clock, shutdown, client).
    pub daemon: Daemon,
    /// Region.
    pub region: String,
    /// This process's id within the region.
    pub probe: String,
    /// Time between heartbeats.
    pub interval: Duration,
    /// The canary, if configured.
    pub canary: Option<Arc<HttpTarget>>,
    /// The HTTP client (the canary opens a new connection every time).
    pub http: HttpClient,
    /// Checks scheduled (read for the heartbeat).
    pub scheduled: IntGauge,
    /// Heartbeats, by outcome (`stored`, `failed`).
    pub sent: IntCounterVec,
    /// 1 while the canary passes, 0 while it fails.
    pub canary_up: IntGauge,
}

impl Heartbeats {
    /// Sends a heartbeat every interval until shutdown.
    pub async fn run(self) {
        let publisher = Publisher::new(self.daemon.client.clone(), 16, Duration::from_secs(5));
        let shutdown = self.daemon.process.shutdown.clone();
        let subject = probe_heartbeat_subject(&self.region);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let canary = match &self.canary {
                Some(target) => Some(self.canary(target).await),
                None => None,
            };
            let heartbeat = ProbeHeartbeat {
                region: self.region.clone(),
                probe: self.probe.clone(),
                at_ms: wall_clock_ms(),
                interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
                checks: u32::try_from(self.scheduled.get().max(0)).unwrap_or(u32::MAX),
                canary,
            };
            let envelope = Envelope::new(&self.daemon.clock, &self.region, heartbeat);
            let stored = match publisher.send(&subject, &envelope).await {
                Ok(pending) => pending.durable().await.map(|_| ()),
                Err(e) => Err(e),
            };
            match stored {
                Ok(()) => self.sent.with_label_values(&["stored"]).inc(),
                Err(e) => {
                    self.sent.with_label_values(&["failed"]).inc();
                    tracing::warn!(error = %e, "Heartbeat not stored.");
                }
            }
        }
    }

    async fn canary(&self, target: &HttpTarget) -> CanaryResult {
        // The canary must finish well before the next heartbeat.
        let timeout = (self.interval / 2).min(Duration::from_secs(5));
        let started = std::time::Instant::now();
        let output = match tokio::time::timeout(timeout, self.http.check(target, started)).await {
            Ok(output) => output,
            Err(_) => crate::checks::CheckOutput::down(
                started,
                beacon_contract::messages::ErrorKind::Timeout,
                format!("timed out after {}", crate::checks::humanize(timeout)),
            ),
        };
        let up = output.outcome != beacon_contract::messages::Outcome::Down;
        self.canary_up.set(i64::from(up));
        if !up {
            tracing::warn!(error = ?output.error, "Canary check failed: this probe's own network may be broken.");
        }
        CanaryResult {
            outcome: output.outcome,
            error: output.error,
        }
    }
}
