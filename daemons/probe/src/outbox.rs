//! Results waiting to be published. Checks never wait on the bus: they push
//! here, and one sender publishes through core's pipelined
//! [`Publisher`], with up to [`IN_FLIGHT`] acks outstanding. A result leaves
//! the outbox only when its stream ack says it is durable. A failed one is
//! sent again with the same envelope (same `Nats-Msg-Id`), ahead of newer
//! results and after a backoff, so a publish that landed but whose ack was
//! lost is deduplicated by the server. When the buffer is full the oldest
//! waiting result is dropped and counted: recent evidence matters more
//! than old.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use beacon_contract::event::Envelope;
use beacon_contract::messages::HealthResult;
use beacon_contract::names::health_subject;
use beacon_runtime::publish::{PublishError, Publisher, Stored};
use beacon_runtime::shutdown::{Backoff, Shutdown};
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;

/// Most results whose stream ack the sender waits for at once.
pub const IN_FLIGHT: usize = 256;

/// Bounded FIFO of results to publish.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<VecDeque<Envelope<HealthResult>>>,
    capacity: usize,
    wake: Notify,
    depth: IntGauge,
    dropped: IntCounter,
}

type Ack = BoxFuture<'static, (Envelope<HealthResult>, Result<Stored, PublishError>)>;

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

    /// Results waiting to be sent.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self) -> Option<Envelope<HealthResult>> {
        let mut queue = self.lock();
        let next = queue.pop_front();
        self.depth.set(queue.len() as i64);
        next
    }

    /// Puts results whose publish failed back at the front, in their order.
    fn requeue(&self, failed: Vec<Envelope<HealthResult>>) {
        let mut queue = self.lock();
        for result in failed.into_iter().rev() {
            queue.push_front(result);
        }
        // A long outage must not grow the queue past its bound either.
        while queue.len() > self.capacity {
            queue.pop_back();
            self.dropped.inc();
        }
        self.depth.set(queue.len() as i64);
    }

    /// Publishes queued results until shutdown; after shutdown begins it
    /// keeps flushing for at most `flush_for`.
    pub async fn run_sender(&self, publisher: Publisher, shutdown: Shutdown, flush_for: Duration) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut in_flight: FuturesOrdered<Ack> = FuturesOrdered::new();
        let mut failed: Vec<Envelope<HealthResult>> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.is_cancelled() && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + flush_for);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                let unsent = self.len() + in_flight.len() + failed.len();
                if unsent > 0 {
                    tracing::warn!(unsent, "Stopping with results not yet published.");
                }
                return;
            }
            // Send while there is room and nothing failed in this round:
            // after a failure, the failed results go first, after a pause.
            while failed.is_empty() && in_flight.len() < IN_FLIGHT {
                let Some(next) = self.pop() else { break };
                in_flight.push_back(send(&publisher, next));
            }
            if in_flight.is_empty() {
                if !failed.is_empty() {
                    let delay = backoff.next_delay();
                    tracing::warn!(failed = failed.len(), queued = self.len(), retry_in = ?delay,
                        "Cannot publish results, keeping them.");
                    self.requeue(std::mem::take(&mut failed));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled(), if deadline.is_none() => {}
                    }
                    continue;
                }
                if shutdown.is_cancelled() {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            let sleep_until =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some((result, outcome)) = in_flight.next() => match outcome {
                    Ok(_) => {
                        if failed.is_empty() {
                            backoff.reset(Duration::from_millis(100));
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "Result not acknowledged, will resend.");
                        failed.push(result);
                    }
                },
                _ = self.wake.notified(), if failed.is_empty() && in_flight.len() < IN_FLIGHT => {}
                _ = tokio::time::sleep_until(sleep_until) => {}
            }
        }
    }
}

/// Sends one result and resolves, with the result, once its ack settled.
fn send(publisher: &Publisher, result: Envelope<HealthResult>) -> Ack {
    let publisher = publisher.clone();
    async move {
        let subject = health_subject(
            &result.data.page,
            &result.data.component,
            &result.data.region,
        );
        let outcome = match publisher.send(&subject, &result).await {
            Ok(pending) => pending.durable().await,
            Err(e) => Err(e),
        };
        (result, outcome)
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::hlc::HlcClock;
    use beacon_contract::messages::{CheckKind, Outcome};

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
                error_kind: None,
                failed_condition: None,
                timings: None,
                observed: Default::default(),
            },
        )
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_it() {
        let metrics = beacon_runtime::telemetry::Metrics::new("probe_test");
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
        assert_eq!(outbox.pop().map(|r| r.data.started_at_ms), Some(1));
        assert!(metrics
            .render()
            .contains("beacon_probe_test_outbox_dropped_total 1"));
    }
}
