//! Which checks this probe runs, and when. The page configs come from KV
//! `config`; on every change of a page its check tasks are replaced. Each
//! check starts after a random jitter within its interval, so thousands of
//! checks with the same interval do not fire together.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::kv;
use beacon_core::buckets::{self, Change};
use beacon_core::config::{Check, PageConfig};
use beacon_core::daemon::Daemon;
use beacon_core::event::Envelope;
use beacon_core::hlc::wall_clock_ms;
use beacon_core::messages::HealthResult;
use prometheus::{HistogramVec, IntCounterVec, IntGauge};
use tokio_util::sync::CancellationToken;

use crate::checks::{self, Clients};
use crate::outbox::Outbox;

/// Everything a check task needs.
#[derive(Clone)]
pub struct Runner {
    /// The daemon (clock, shutdown).
    pub daemon: Daemon,
    /// This probe's region.
    pub region: String,
    /// Shared clients.
    pub clients: Clients,
    /// Where results go.
    pub outbox: Arc<Outbox>,
    /// Checks run, by kind and outcome.
    pub runs: IntCounterVec,
    /// Check latency, by kind.
    pub latency: HistogramVec,
    /// Checks scheduled.
    pub scheduled: IntGauge,
}

/// The checks of `config` this region runs: (component id, check).
pub fn checks_for_region<'a>(
    config: &'a PageConfig,
    region: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Check)> + 'a {
    config.components.iter().flat_map(move |component| {
        component
            .checks
            .iter()
            .filter(move |check| check.regions.iter().any(|r| r == region))
            .map(move |check| (component.id.as_str(), check))
    })
}

/// The running checks of one page.
struct Scheduled {
    /// Cancels every check task of the page.
    token: CancellationToken,
    /// How many tasks run.
    checks: usize,
    /// The config they were started from.
    config: PageConfig,
}

impl Runner {
    /// Follows KV `config` until shutdown, keeping one task per check.
    pub async fn run(self, store: kv::Store, loaded: tokio::sync::watch::Sender<bool>) {
        let mut pages: HashMap<String, Scheduled> = HashMap::new();
        let mut changes = buckets::follow(store, &self.daemon.process.shutdown);
        while let Some(change) = changes.recv().await {
            match change {
                Change::Entry(entry) => self.apply(&mut pages, &entry),
                Change::CaughtUp => {
                    let _ = loaded.send(true);
                }
            }
        }
    }

    fn apply(&self, pages: &mut HashMap<String, Scheduled>, entry: &kv::Entry) {
        let config = match entry.operation {
            kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
                Ok(envelope) => Some(envelope.data),
                Err(e) => {
                    tracing::error!(page = %entry.key, error = %e, "Stored page config is unreadable; keeping the current checks.");
                    return;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => None,
        };
        // A re-watch replays every page: an unchanged config keeps its
        // running checks (and their phase) instead of restarting them.
        if config.is_some() && pages.get(&entry.key).map(|p| &p.config) == config.as_ref() {
            return;
        }
        if let Some(old) = pages.remove(&entry.key) {
            old.token.cancel();
            self.scheduled.sub(old.checks as i64);
        }
        let Some(config) = config else {
            tracing::info!(page = %entry.key, "Page removed, its checks stopped.");
            return;
        };
        let token = self.daemon.process.shutdown.token().child_token();
        let mut count = 0;
        for (component, check) in checks_for_region(&config, &self.region) {
            let runner = self.clone();
            let token = token.clone();
            let page = config.id.clone();
            let component = component.to_owned();
            let check = check.clone();
            self.daemon
                .process
                .shutdown
                .spawn(async move { runner.run_check(token, page, component, check).await });
            count += 1;
        }
        self.scheduled.add(count as i64);
        tracing::info!(page = %config.id, region = %self.region, checks = count, "Checks scheduled.");
        pages.insert(
            entry.key.clone(),
            Scheduled {
                token,
                checks: count,
                config,
            },
        );
    }

    async fn run_check(
        self,
        token: CancellationToken,
        page: String,
        component: String,
        check: Check,
    ) {
        let interval = check.interval();
        let jitter = interval.mul_f64(rand::random::<f64>());
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(jitter) => {}
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let kind = checks::kind(&check.target);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let started_at_ms = wall_clock_ms();
            let output = checks::run(&self.clients, &check.target, check.timeout()).await;
            self.runs
                .with_label_values(&[kind.as_str(), output.outcome.as_str()])
                .inc();
            self.latency
                .with_label_values(&[kind.as_str()])
                .observe(output.latency.as_secs_f64());
            let result = HealthResult {
                page: page.clone(),
                component: component.clone(),
                check: check.id.clone(),
                region: self.region.clone(),
                kind,
                outcome: output.outcome,
                started_at_ms,
                latency_ms: output.latency.as_millis() as u64,
                http_status: output.http_status,
                error: output.error,
            };
            self.outbox
                .push(Envelope::new(&self.daemon.clock, &self.region, result));
        }
    }
}
