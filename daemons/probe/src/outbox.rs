//! Results waiting to be published. Checks never wait on the bus: they push
//! here, and one sender publishes in order, retrying with backoff while NATS
//! is unreachable. The same envelope (same `Nats-Msg-Id`) is retried, so a
//! publish that landed but whose ack was lost is deduplicated by the server.
//! When the buffer is full the oldest result is dropped and counted: recent
//! evidence matters more than old.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use beacon_core::event::Envelope;
use beacon_core::messages::HealthResult;
use beacon_core::names::health_subject;
use beacon_core::publish::publish;
use beacon_core::shutdown::{Backoff, Shutdown};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;

/// Bounded FIFO of results to publish.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<VecDeque<Envelope<HealthResult>>>,
    capacity: usize,
    wake: Notify,
    depth: IntGauge,
    dropped: IntCounter,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` results.
    pub fn new(capacity: usize, depth: IntGauge, dropped: IntCounter) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            wake: Notify::new(),
            depth,
            dropped,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Envelope<HealthResult>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a result, dropping the oldest when full.
    pub fn push(&self, result: Envelope<HealthResult>) {
        let mut queue = self.lock();
        if queue.len() >= self.capacity {
            queue.pop_front();
            self.dropped.inc();
        }
        queue.push_back(result);
        self.depth.set(queue.len() as i64);
        drop(queue);
        self.wake.notify_one();
    }

    /// Results waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn front(&self) -> Option<Envelope<HealthResult>> {
        self.lock().front().cloned()
    }

    fn pop_published(&self, published: &Envelope<HealthResult>) {
        let mut queue = self.lock();
        // The front may have been dropped for space while we published.
        if queue.front().map(|f| f.id) == Some(published.id) {
            queue.pop_front();
        }
        self.depth.set(queue.len() as i64);
    }

    /// Publishes queued results until shutdown; after shutdown begins it
    /// keeps flushing for at most `flush_for`.
    pub async fn run_sender(
        &self,
        js: async_nats::jetstream::Context,
        shutdown: Shutdown,
        flush_for: Duration,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.is_cancelled() && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + flush_for);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                if !self.is_empty() {
                    tracing::warn!(
                        unsent = self.len(),
                        "Stopping with results not yet published."
                    );
                }
                return;
            }
            let Some(next) = self.front() else {
                if shutdown.is_cancelled() {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            };
            let subject = health_subject(&next.data.page, &next.data.component, &next.data.region);
            match publish(&js, &subject, &next).await {
                Ok(_) => {
                    backoff.reset(Duration::from_millis(100));
                    self.pop_published(&next);
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, queued = self.len(), retry_in = ?delay, "Cannot publish result, keeping it.");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled(), if deadline.is_none() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_core::hlc::HlcClock;
    use beacon_core::messages::{CheckKind, Outcome};

    fn result(n: u64) -> Envelope<HealthResult> {
        Envelope::new(
            &HlcClock::new(),
            "eu",
            HealthResult {
                page: "p".into(),
                component: "c".into(),
                check: "http".into(),
                region: "eu".into(),
                kind: CheckKind::Http,
                outcome: Outcome::Up,
                started_at_ms: n,
                latency_ms: 1,
                http_status: None,
                error: None,
            },
        )
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_it() {
        let metrics = beacon_core::telemetry::Metrics::new("probe_test");
        let outbox = Outbox::new(
            2,
            metrics.single_gauge("outbox_depth", "d").expect("gauge"),
            metrics
                .single_counter("outbox_dropped_total", "d")
                .expect("counter"),
        );
        for n in 0..3 {
            outbox.push(result(n));
        }
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.front().map(|r| r.data.started_at_ms), Some(1));
        assert!(metrics
            .render()
            .contains("beacon_probe_test_outbox_dropped_total 1"));
    }
}
