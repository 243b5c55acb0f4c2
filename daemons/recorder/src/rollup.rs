//! Daily uptime rollups in ClickHouse (`uptime_daily`) and the last 90
//! days of them in KV `uptime`, so pages render without ClickHouse.
//!
//! A status or maintenance event marks its component dirty from its time
//! on ([`Dirty`]); the rollup task then recomputes every day from there to
//! today with [`crate::uptime::status_ms_sql`], a late event included. On
//! a timer it recomputes today (and yesterday, which may have ended since)
//! for every component, since time passes without events. At start it
//! recomputes the last 90 days of every component, which also repairs
//! marks a crash lost. Each component's KV value is rewritten after its
//! days were.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use beacon_contract::event::Envelope;
use beacon_contract::hlc::{wall_clock_ms, HlcClock};
use beacon_contract::messages::{DayRollup, UptimeRollup};
use beacon_contract::names::status_key;
use beacon_page::config::PageConfig;
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::{MetricError, Metrics};
use prometheus::IntCounterVec;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::pages::Pages;
use crate::schema::UPTIME_DAILY_TABLE;
use crate::service::{ClickHouse, StoreError};
use crate::uptime::{quote, status_ms_sql, StatusMs, UptimeQuery, DAY_MS};

/// Days kept in KV `uptime` per component.
pub const KV_DAYS: u64 = 90;

/// Components whose days need recomputing, and from when.
#[derive(Debug, Clone, Default)]
pub struct Dirty {
    marks: Arc<Mutex<HashMap<(String, String), u64>>>,
    wake: Arc<Notify>,
}

impl Dirty {
    /// Marks `component` of `page` as changed from `from_ms` on.
    pub fn mark(&self, page: &str, component: &str, from_ms: u64) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let from = marks
            .entry((page.to_owned(), component.to_owned()))
            .or_insert(from_ms);
        *from = (*from).min(from_ms);
        drop(marks);
        self.wake.notify_one();
    }

    fn take(&self) -> HashMap<(String, String), u64> {
        std::mem::take(&mut *self.marks.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Counters of the rollup task.
#[derive(Debug, Clone)]
pub struct RollupMetrics {
    runs: IntCounterVec,
}

impl RollupMetrics {
    /// Registers the rollup metrics.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricError> {
        Ok(Self {
            runs: metrics.counter(
                "rollups_total",
                "Rollup recomputations of a page, by outcome (ok, failed)",
                &["outcome"],
            )?,
        })
    }
}

/// The rollup task's parts.
#[derive(Debug, Clone)]
pub struct Rollups {
    /// ClickHouse.
    pub store: Arc<ClickHouse>,
    /// Page configs.
    pub pages: Pages,
    /// Components marked by the consumers.
    pub dirty: Dirty,
    /// KV `uptime`.
    pub kv: kv::Store,
    /// Clock for the envelopes written to KV.
    pub clock: Arc<HlcClock>,
    /// Origin written on those envelopes.
    pub origin: String,
    /// How often today is recomputed for everyone.
    pub interval: Duration,
    /// Counters.
    pub metrics: RollupMetrics,
}

/// One row read back from `uptime_daily`.
#[derive(Debug, Deserialize, clickhouse::Row)]
struct DailyRow {
    component: String,
    day_number: u64,
    operational_ms: u64,
    degraded_ms: u64,
    partial_ms: u64,
    major_ms: u64,
    maintenance_ms: u64,
    no_data_ms: u64,
}

impl Rollups {
    /// Runs until shutdown: the 90-day pass at start, then marked
    /// components as they come and everyone's today on the timer.
    pub async fn run(self, shutdown: Shutdown) {
        let mut full = true;
        let mut last_sweep = tokio::time::Instant::now();
        let mut failed: Vec<(String, HashMap<String, u64>)> = Vec::new();
        loop {
            // What failed last turn is tried again now, after a wait, not
            // in a loop against a server that is failing.
            for (page, components) in failed.drain(..) {
                for (component, from) in components {
                    self.dirty.mark(&page, &component, from);
                }
            }
            let now = wall_clock_ms();
            let today = now / DAY_MS * DAY_MS;
            let mut work: HashMap<String, HashMap<String, u64>> = HashMap::new();
            let sweep = full || last_sweep.elapsed() >= self.interval;
            if sweep {
                let from = if full {
                    today.saturating_sub((KV_DAYS - 1) * DAY_MS)
                } else {
                    today.saturating_sub(DAY_MS)
                };
                for page in self.pages.all() {
                    let components = work.entry(page.id.clone()).or_default();
                    for component in &page.components {
                        components.insert(component.id.clone(), from);
                    }
                }
            }
            for ((page, component), from_ms) in self.dirty.take() {
                let from = from_ms / DAY_MS * DAY_MS;
                let slot = work
                    .entry(page)
                    .or_default()
                    .entry(component)
                    .or_insert(from);
                *slot = (*slot).min(from);
            }
            for (page, components) in work {
                let Some(config) = self.pages.get(&page) else {
                    continue;
                };
                match self.page(&config, &components, now).await {
                    Ok(()) => self.metrics.runs.with_label_values(&["ok"]).inc(),
                    Err(e) => {
                        self.metrics.runs.with_label_values(&["failed"]).inc();
                        tracing::warn!(%page, error = %e, "Uptime rollup failed; will try again.");
                        failed.push((page, components));
                    }
                }
            }
            if sweep {
                full = false;
                last_sweep = tokio::time::Instant::now();
            }
            let wait = self.interval.saturating_sub(last_sweep.elapsed());
            if !failed.is_empty() {
                if !shutdown.sleep(wait.max(Duration::from_secs(1))).await {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.dirty.wake.notified() => {
                    // Let a burst of events gather into one recomputation.
                    if !shutdown.sleep(Duration::from_millis(200)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Recomputes `components` of `page` from their marked day to now and
    /// rewrites their KV values.
    async fn page(
        &self,
        config: &PageConfig,
        components: &HashMap<String, u64>,
        now: u64,
    ) -> Result<(), RollupError> {
        let known: Vec<String> = components
            .keys()
            .filter(|c| config.component(c).is_some())
            .cloned()
            .collect();
        if known.is_empty() {
            return Ok(());
        }
        // Components marked from different days share one query from the
        // earliest: recomputing a day again gives the same numbers.
        let from = components.values().copied().min().unwrap_or(now);
        recompute(&self.store, &config.id, &known, from, now).await?;
        self.write_kv(config, &known, now).await
    }

    async fn write_kv(
        &self,
        config: &PageConfig,
        components: &[String],
        now: u64,
    ) -> Result<(), RollupError> {
        let first_day = (now / DAY_MS).saturating_sub(KV_DAYS - 1);
        let sql = format!(
            "SELECT component, toUInt64(day) AS day_number, operational_ms, degraded_ms, partial_ms, \
             major_ms, maintenance_ms, no_data_ms FROM `{db}`.{UPTIME_DAILY_TABLE} FINAL \
             WHERE page = {page} AND component IN ({list}) AND day >= toDate({first_day}) \
             ORDER BY component, day",
            db = self.store.database(),
            page = quote(&config.id),
            list = components
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let rows: Vec<DailyRow> = self.store.fetch(&sql).await?;
        let mut days: HashMap<&str, Vec<DayRollup>> = HashMap::new();
        for row in &rows {
            let ms = StatusMs {
                operational: row.operational_ms,
                degraded: row.degraded_ms,
                partial: row.partial_ms,
                major: row.major_ms,
                maintenance: row.maintenance_ms,
                no_data: row.no_data_ms,
            };
            days.entry(row.component.as_str())
                .or_default()
                .push(day_rollup(row.day_number, &ms, config));
        }
        for component in components {
            let rollup = UptimeRollup {
                page: config.id.clone(),
                component: component.clone(),
                days: days.remove(component.as_str()).unwrap_or_default(),
            };
            let envelope = Envelope::new(&self.clock, &self.origin, rollup);
            let bytes = envelope
                .encode()
                .map_err(|e| RollupError::Kv(format!("cannot encode: {e}")))?;
            self.kv
                .put(status_key(&config.id, component), bytes.into())
                .await
                .map_err(|e| RollupError::Kv(e.to_string()))?;
        }
        Ok(())
    }
}

/// Recomputes `uptime_daily` for `components` of `page` from the day of
/// `from_ms` to `now_ms` (today only up to now).
pub async fn recompute(
    store: &ClickHouse,
    page: &str,
    components: &[String],
    from_ms: u64,
    now_ms: u64,
) -> Result<(), StoreError> {
    let query = UptimeQuery {
        database: store.database(),
        page,
        components: Some(components),
        from_ms: from_ms / DAY_MS * DAY_MS,
        to_ms: now_ms,
        by_day: true,
        weights: Default::default(),
    };
    let sql = format!(
        "INSERT INTO `{db}`.{UPTIME_DAILY_TABLE} (page, component, day, operational_ms, \
         degraded_ms, partial_ms, major_ms, maintenance_ms, no_data_ms, computed_at_ms) \
         SELECT {page}, component, toDate(toUInt16(bucket)), operational_ms, degraded_ms, \
         partial_ms, major_ms, maintenance_ms, no_data_ms, toUInt64({now_ms}) FROM ({inner})",
        db = store.database(),
        page = quote(page),
        inner = status_ms_sql(&query),
    );
    store.execute(&sql).await
}

/// One KV day from a day's milliseconds and the page's weights.
pub fn day_rollup(day: u64, ms: &StatusMs, config: &PageConfig) -> DayRollup {
    DayRollup {
        date: date_of_day(day),
        up_ms: ms.operational + ms.maintenance,
        degraded_ms: ms.degraded,
        down_ms: ms.partial + ms.major,
        partial_ms: ms.partial,
        major_ms: ms.major,
        maintenance_ms: ms.maintenance,
        no_data_ms: ms.no_data,
        uptime_percent: ms.uptime(&config.sla.weights).map(|u| u * 100.0),
    }
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub fn date_of_day(day: u64) -> String {
    let z = i64::try_from(day).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Why a rollup did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// ClickHouse failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// KV `uptime` failed.
    #[error("cannot write KV uptime: {0}")]
    Kv(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_become_utc_dates() {
        for (day, date) in [
            (0, "1970-01-01"),
            (19_783, "2024-03-01"),
            (19_782, "2024-02-29"),
            (20_727, "2026-10-01"),
            (11_016, "2000-02-29"),
        ] {
            assert_eq!(date_of_day(day), date, "{day}");
        }
    }

    #[test]
    fn marks_keep_the_earliest_time() {
        let dirty = Dirty::default();
        dirty.mark("p", "c", 500);
        dirty.mark("p", "c", 100);
        dirty.mark("p", "c", 900);
        dirty.mark("p", "d", 7);
        let taken = dirty.take();
        assert_eq!(taken.get(&("p".into(), "c".into())), Some(&100));
        assert_eq!(taken.len(), 2);
        assert!(dirty.take().is_empty());
    }
}
