//! Which checks this probe runs, and when.
//!
//! One loop owns the schedule: it follows KV `config` and keeps one timer
//! per check of this region (core's keyed [`Timers`], a timer wheel, so
//! hundreds of thousands of checks cost a map entry and a wheel slot each,
//! not a task each). When a check's time comes the loop takes a place
//! under the concurrency limit, spawns the run, and sets the next time.
//!
//! - **Jitter**: a check's first run is at a phase within its interval
//!   taken from a hash of (page, component, check, region), so checks with
//!   the same interval spread evenly, and a restart or reload keeps the
//!   phase.
//! - **No drift**: the next time is the previous *due* time plus the
//!   interval, never "now plus the interval", so a slow run or a late loop
//!   does not push every later run back. When the loop fell more than an
//!   interval behind, the missed runs are skipped (counted), not run in a
//!   burst.
//! - **Overlap**: a check whose previous run is still going is skipped
//!   (counted) rather than run twice at once.
//! - **Hot reload**: a page's new config is compared check by check; an
//!   unchanged check keeps its timer, a changed one is rescheduled, a
//!   removed one is cancelled, and an added one is scheduled. Push checks
//!   are handed to the ingest endpoint instead.
//! - **Lateness**: the time from due to start of each run is observed in
//!   `beacon_probe_schedule_lateness_seconds`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::wall_clock_ms;
use beacon_contract::messages::HealthResult;
use beacon_page::config::{Check, CheckTarget, PageConfig};
use beacon_runtime::buckets::{self, Change};
use beacon_runtime::daemon::Daemon;
use beacon_runtime::timers::Timers;
use prometheus::{Histogram, HistogramVec, IntCounterVec, IntGauge};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::checks::{self, CheckOutput, Clients};
use crate::ingest::Ingest;
use crate::outbox::Outbox;

/// A check's identity within the probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckKey {
    /// Page id.
    pub page: Arc<str>,
    /// Component id.
    pub component: Arc<str>,
    /// Check id.
    pub check: Arc<str>,
}

/// Metrics the scheduler and the runs update.
#[derive(Clone)]
pub struct ScheduleMetrics {
    /// Checks run, by kind and outcome.
    pub runs: IntCounterVec,
    /// Failed runs, by kind and error kind.
    pub errors: IntCounterVec,
    /// Run time, by kind.
    pub latency: HistogramVec,
    /// From due time to start of each run.
    pub lateness: Histogram,
    /// Checks scheduled.
    pub scheduled: IntGauge,
    /// Runs not started, by reason (`overlap`, `behind`).
    pub skipped: IntCounterVec,
    /// Runs going on.
    pub in_flight: IntGauge,
    /// Page configs applied, by outcome (`applied`, `unchanged`, `removed`, `unreadable`).
    pub reloads: IntCounterVec,
    /// The TLS certificates the checks saw, for the soonest expiry.
    pub certificates: Arc<Certificates>,
}

/// When each check's TLS certificate expires, as last seen, so one gauge
/// (`beacon_probe_certificate_expiry_seconds`: the soonest, from now) can
/// warn of any of them without a label per target. A check not seen for
/// [`Certificates::FORGET_AFTER_MS`] (removed, or no longer TLS) drops out.
/// Noting a result is O(1): the whole set is only looked at again when the
/// soonest certificate was renewed, and once a minute to forget.
#[derive(Debug)]
pub struct Certificates {
    seen: std::sync::Mutex<CertificateSet>,
    soonest: prometheus::IntGauge,
}

#[derive(Debug, Default)]
struct CertificateSet {
    /// Per check: (expires at, seen at), Unix milliseconds.
    by_check: HashMap<CheckKey, (u64, u64)>,
    /// The soonest expiry among them.
    soonest: Option<u64>,
    /// When the set was last swept of checks not seen for long.
    swept_at_ms: u64,
}

impl Certificates {
    /// How long an expiry counts without being seen again.
    pub const FORGET_AFTER_MS: u64 = 3_600_000;
    /// How often checks not seen for long are forgotten.
    const SWEEP_EVERY_MS: u64 = 60_000;

    /// An empty set reporting to `soonest`.
    pub fn new(soonest: prometheus::IntGauge) -> Certificates {
        Certificates {
            seen: std::sync::Mutex::new(CertificateSet::default()),
            soonest,
        }
    }

    /// Notes that `key`'s certificate expires at `expires_at_ms`, seen at
    /// `now_ms`, and sets the gauge to the soonest expiry still counted.
    pub fn saw(&self, key: &CheckKey, expires_at_ms: u64, now_ms: u64) {
        let mut set = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = set.by_check.insert(key.clone(), (expires_at_ms, now_ms));
        let renewed_soonest =
            before.is_some_and(|(was, _)| Some(was) == set.soonest && expires_at_ms > was);
        if renewed_soonest || now_ms.saturating_sub(set.swept_at_ms) >= Self::SWEEP_EVERY_MS {
            set.by_check
                .retain(|_, (_, at)| now_ms.saturating_sub(*at) <= Self::FORGET_AFTER_MS);
            set.soonest = set.by_check.values().map(|(expires, _)| *expires).min();
            set.swept_at_ms = now_ms;
        } else {
            set.soonest = Some(set.soonest.map_or(expires_at_ms, |s| s.min(expires_at_ms)));
        }
        let soonest = set.soonest;
        drop(set);
        if let Some(soonest) = soonest {
            let left_ms = i128::from(soonest) - i128::from(now_ms);
            self.soonest
                .set(i64::try_from(left_ms / 1000).unwrap_or(i64::MAX));
        }
    }
}

/// Everything the schedule loop and the runs need.
#[derive(Clone)]
pub struct Scheduler {
    /// The daemon (clock, shutdown).
    pub daemon: Daemon,
    /// This probe's region.
    pub region: String,
    /// Shared clients.
    pub clients: Clients,
    /// Where results go.
    pub outbox: Arc<Outbox>,
    /// Metrics.
    pub metrics: ScheduleMetrics,
    /// The concurrency limit: one permit per run going on.
    pub limit: Arc<Semaphore>,
    /// The push ingest, told which push checks this region serves.
    pub ingest: Option<Ingest>,
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

/// Where in its interval a check runs: a stable hash of its identity and
/// the region, so checks spread and keep their phase across reloads.
pub fn phase(key: &CheckKey, region: &str, interval: Duration) -> Duration {
    let mut hasher = DefaultHasher::new();
    (&*key.page, &*key.component, &*key.check, region).hash(&mut hasher);
    let millis = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(hasher.finish() % millis)
}

/// The first due time after `previous` that is not before `now`, stepping
/// by `interval`, and how many due times were stepped over. Pure.
pub fn next_due(previous: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let mut next = previous + interval;
    if next >= now {
        return (next, 0);
    }
    let behind = now.duration_since(next);
    let steps = (behind.as_nanos() / interval.as_nanos().max(1)) as u64 + 1;
    next += interval * u32::try_from(steps).unwrap_or(u32::MAX);
    (next, steps)
}

/// A scheduled check.
struct Entry {
    check: Arc<Check>,
    due: Instant,
    running: Arc<AtomicBool>,
}

/// The schedule: every check's entry, the keys of each page, the timers.
#[derive(Default)]
struct Schedule {
    entries: HashMap<CheckKey, Entry>,
    pages: HashMap<String, Vec<CheckKey>>,
    timers: Timers<CheckKey>,
}

impl Scheduler {
    /// Follows KV `config` until shutdown, running every check of this
    /// region on time. `loaded` turns true once every stored page is
    /// scheduled.
    pub async fn run(self: Arc<Self>, store: kv::Store, loaded: tokio::sync::watch::Sender<bool>) {
        let shutdown = self.daemon.process.shutdown.clone();
        let mut changes = buckets::follow(store, &shutdown);
        let mut schedule = Schedule::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                change = changes.recv() => match change {
                    Some(Change::Entry(entry)) => self.apply(&mut schedule, &entry),
                    Some(Change::CaughtUp) => {
                        let _ = loaded.send(true);
                    }
                    None => return,
                },
                key = schedule.timers.next_due() => self.fire(&mut schedule, key).await,
            }
        }
    }

    /// Applies one page's new config (or its removal), check by check.
    fn apply(&self, schedule: &mut Schedule, entry: &kv::Entry) {
        let page = entry.key.clone();
        let config = match entry.operation {
            kv::Operation::Put => match Envelope::<PageConfig>::decode(&entry.value) {
                Ok(envelope) => Some(envelope.data),
                Err(e) => {
                    tracing::error!(%page, error = %e, "Stored page config is unreadable; keeping the current checks.");
                    self.metrics
                        .reloads
                        .with_label_values(&["unreadable"])
                        .inc();
                    return;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => None,
        };
        let mut wanted: HashMap<CheckKey, Arc<Check>> = HashMap::new();
        let mut pushed = Vec::new();
        if let Some(config) = &config {
            let page_id: Arc<str> = Arc::from(config.id.as_str());
            for (component, check) in checks_for_region(config, &self.region) {
                if let CheckTarget::Push(_) = check.target {
                    pushed.push((component.to_owned(), check.clone()));
                    continue;
                }
                let key = CheckKey {
                    page: page_id.clone(),
                    component: Arc::from(component),
                    check: Arc::from(check.id.as_str()),
                };
                wanted.insert(key, Arc::new(check.clone()));
            }
        }
        if let Some(ingest) = &self.ingest {
            ingest.set_page(&page, pushed);
        } else if !pushed.is_empty() {
            tracing::warn!(%page, checks = pushed.len(), "Push checks belong to this region, but this probe has no --push-listen; nothing receives them.");
        }

        let old: Vec<CheckKey> = schedule.pages.remove(&page).unwrap_or_default();
        let mut kept = HashSet::new();
        let (mut added, mut changed, mut removed) = (0usize, 0usize, 0usize);
        for key in old {
            match wanted.get(&key) {
                Some(check)
                    if schedule
                        .entries
                        .get(&key)
                        .is_some_and(|e| &e.check == check) =>
                {
                    kept.insert(key);
                }
                Some(_) => changed += 1,
                None => {
                    schedule.timers.cancel(&key);
                    schedule.entries.remove(&key);
                    removed += 1;
                }
            }
        }
        let now = Instant::now();
        let mut keys = Vec::with_capacity(wanted.len());
        for (key, check) in wanted {
            keys.push(key.clone());
            if kept.contains(&key) {
                continue;
            }
            if !schedule.entries.contains_key(&key) {
                added += 1;
            }
            let due = now + phase(&key, &self.region, check.interval());
            schedule.timers.schedule(key.clone(), due);
            let running = schedule
                .entries
                .remove(&key)
                .map(|e| e.running)
                .unwrap_or_default();
            schedule.entries.insert(
                key,
                Entry {
                    check,
                    due,
                    running,
                },
            );
        }
        self.metrics
            .scheduled
            .set(i64::try_from(schedule.entries.len()).unwrap_or(i64::MAX));
        let outcome = match (&config, added + changed + removed) {
            (None, _) => "removed",
            (Some(_), 0) => "unchanged",
            (Some(_), _) => "applied",
        };
        self.metrics.reloads.with_label_values(&[outcome]).inc();
        if keys.is_empty() {
            if outcome != "unchanged" {
                tracing::info!(%page, removed, "Page has no checks for this region now.");
            }
        } else {
            if outcome == "applied" {
                tracing::info!(%page, region = %self.region, checks = keys.len(), added, changed, removed, "Checks scheduled.");
            }
            schedule.pages.insert(page, keys);
        }
    }

    /// A check is due: set its next time, then start it unless it is
    /// still running.
    async fn fire(self: &Arc<Self>, schedule: &mut Schedule, key: CheckKey) {
        let Some(entry) = schedule.entries.get_mut(&key) else {
            return;
        };
        let due = entry.due;
        let (next, missed) = next_due(due, entry.check.interval(), Instant::now());
        entry.due = next;
        schedule.timers.schedule(key.clone(), next);
        if missed > 0 {
            self.metrics
                .skipped
                .with_label_values(&["behind"])
                .inc_by(missed);
        }
        if entry.running.swap(true, Ordering::AcqRel) {
            self.metrics.skipped.with_label_values(&["overlap"]).inc();
            return;
        }
        let running = entry.running.clone();
        let check = entry.check.clone();
        // Waiting here holds up the loop: when every place is taken, later
        // checks start late, and the lateness metric shows it.
        let Ok(permit) = self.limit.clone().acquire_owned().await else {
            running.store(false, Ordering::Release);
            return;
        };
        self.metrics
            .lateness
            .observe(Instant::now().saturating_duration_since(due).as_secs_f64());
        let this = self.clone();
        self.metrics.in_flight.inc();
        self.daemon.process.shutdown.spawn(async move {
            this.run_once(&key, &check).await;
            this.metrics.in_flight.dec();
            running.store(false, Ordering::Release);
            drop(permit);
        });
    }

    /// Runs `check` once and queues its result.
    async fn run_once(&self, key: &CheckKey, check: &Check) {
        let started_at_ms = wall_clock_ms();
        let output = checks::run(&self.clients, &check.target, check.timeout()).await;
        let result = self.result(key, check, started_at_ms, output);
        self.outbox
            .push(Envelope::new(&self.daemon.clock, &self.region, result));
    }

    /// Counts `output` and turns it into a result.
    fn result(
        &self,
        key: &CheckKey,
        check: &Check,
        started_at_ms: u64,
        output: CheckOutput,
    ) -> HealthResult {
        let kind = check.target.kind();
        self.metrics
            .runs
            .with_label_values(&[kind.as_str(), output.outcome.as_str()])
            .inc();
        if let Some(error_kind) = output.error_kind {
            self.metrics
                .errors
                .with_label_values(&[kind.as_str(), error_kind.as_str()])
                .inc();
        }
        self.metrics
            .latency
            .with_label_values(&[kind.as_str()])
            .observe(output.latency.as_secs_f64());
        if let Some(expires_at_ms) = output.observed.certificate_expires_at_ms {
            self.metrics
                .certificates
                .saw(key, expires_at_ms, started_at_ms);
        }
        HealthResult {
            page: key.page.to_string(),
            component: key.component.to_string(),
            check: key.check.to_string(),
            region: self.region.clone(),
            kind,
            outcome: output.outcome,
            started_at_ms,
            latency_ms: u64::try_from(output.latency.as_millis()).unwrap_or(u64::MAX),
            http_status: output.observed.status,
            error: output.error,
            error_kind: output.error_kind,
            failed_condition: output.failed_condition,
            timings: output.timings,
            observed: output.observed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(check: &str) -> CheckKey {
        CheckKey {
            page: "p".into(),
            component: "c".into(),
            check: check.into(),
        }
    }

    #[test]
    fn phases_spread_within_the_interval_and_are_stable() {
        let interval = Duration::from_secs(60);
        let phases: Vec<Duration> = (0..1000)
            .map(|n| phase(&key(&format!("k{n}")), "eu", interval))
            .collect();
        assert!(phases.iter().all(|p| *p < interval));
        // Roughly uniform: every tenth of the interval gets some checks.
        for tenth in 0..10 {
            let low = interval / 10 * tenth;
            let high = interval / 10 * (tenth + 1);
            let n = phases.iter().filter(|p| **p >= low && **p < high).count();
            assert!((50..=150).contains(&n), "tenth {tenth}: {n}");
        }
        assert_eq!(
            phase(&key("a"), "eu", interval),
            phase(&key("a"), "eu", interval)
        );
        assert_ne!(
            phase(&key("a"), "eu", interval),
            phase(&key("a"), "us", interval)
        );
    }

    #[test]
    fn next_due_does_not_drift_and_skips_what_was_missed() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        // On time or a little late: one interval after the previous due time.
        assert_eq!(next_due(start, second, start), (start + second, 0));
        assert_eq!(
            next_due(start, second, start + Duration::from_millis(300)),
            (start + second, 0)
        );
        // Three and a half intervals behind: three due times are skipped,
        // and the phase is kept.
        assert_eq!(
            next_due(start, second, start + Duration::from_millis(3_500)),
            (start + second * 4, 3)
        );
    }

    #[test]
    fn the_gauge_shows_the_soonest_certificate_still_seen() {
        let gauge = prometheus::IntGauge::new("soonest", "soonest").expect("gauge");
        let certificates = Certificates::new(gauge.clone());
        let day: u64 = 86_400_000;
        certificates.saw(&key("a"), 30 * day, 0);
        certificates.saw(&key("b"), 10 * day, 0);
        assert_eq!(gauge.get(), 10 * 86_400);
        // b renewed: a is the soonest now.
        certificates.saw(&key("b"), 90 * day, 1000);
        assert_eq!(gauge.get(), 30 * 86_400 - 1);
        // a not seen for over an hour (removed): only b counts.
        certificates.saw(&key("b"), 90 * day, Certificates::FORGET_AFTER_MS + 2000);
        let left_ms = 90 * day - Certificates::FORGET_AFTER_MS - 2000;
        assert_eq!(gauge.get(), i64::try_from(left_ms / 1000).expect("fits"));
        // Expired: negative.
        certificates.saw(&key("c"), 0, 2 * Certificates::FORGET_AFTER_MS);
        assert!(gauge.get() < 0);
    }
}
