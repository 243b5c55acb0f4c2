//! Exact uptime: milliseconds in each status per component, computed in
//! ClickHouse from the status changes and maintenance windows, and a pure
//! Rust reference the tests hold the SQL to.
//!
//! # What is counted
//!
//! A component's status at time `t` is the one set by its latest change at
//! or before `t`, changes ordered by (`at_ms`, HLC, event id); copies of
//! an event count once. Within a period `[from, to)` every millisecond is
//! one of:
//!
//! - **maintenance**: a maintenance window covering the component was in
//!   progress (from its `started` event to its first `verifying`,
//!   `completed` or `cancelled` event), or its status was
//!   `under_maintenance`. Left out of uptime.
//! - **no data**: before the component's first status. Left out too.
//! - **operational**, **degraded**, **partial**, **major**: by status.
//!
//! Uptime is `1 − (w_major·major + w_partial·partial + w_degraded·degraded)
//! / (operational + degraded + partial + major)` with the page's weights
//! (fractions of their percent), undefined when nothing was counted.
//!
//! # How the SQL works on ClickHouse 18.16
//!
//! Without window functions, nested lambdas or several joins, each
//! component's history becomes one sorted array of points: status changes (carrying the change
//! in status code), maintenance starts and ends (+1 and −1), and the
//! period's bounds (and midnights, for daily buckets). Copies of a status
//! change are dropped inside that array (sorted by event id, an entry
//! whose id equals the one before it goes), which costs far less than
//! grouping the table by event id first: one aggregation, not two. Running sums
//! (`arrayCumSum`) give the status and the maintenance depth after each
//! point, consecutive points give spans, and spans inside the period are
//! summed by class.

use beacon_contract::messages::ComponentStatus;
use beacon_page::config::sla::StatusWeights;
use serde::Deserialize;

use crate::schema::{MAINTENANCE_TABLE, STATUS_TABLE};

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// Milliseconds in each class for one component (and day, when bucketed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusMs {
    /// Operational.
    pub operational: u64,
    /// Degraded performance.
    pub degraded: u64,
    /// Partial outage.
    pub partial: u64,
    /// Major outage.
    pub major: u64,
    /// Under maintenance (left out).
    pub maintenance: u64,
    /// Before the first status (left out).
    pub no_data: u64,
}

impl StatusMs {
    /// Milliseconds that count towards uptime.
    pub fn counted(&self) -> u64 {
        self.operational + self.degraded + self.partial + self.major
    }

    /// Downtime with `weights` applied, in milliseconds.
    pub fn weighted_down(&self, weights: &StatusWeights) -> f64 {
        weights.major_outage / 100.0 * self.major as f64
            + weights.partial_outage / 100.0 * self.partial as f64
            + weights.degraded_performance / 100.0 * self.degraded as f64
    }

    /// Uptime as a fraction of 1, none when nothing was counted.
    pub fn uptime(&self, weights: &StatusWeights) -> Option<f64> {
        let counted = self.counted();
        (counted > 0).then(|| 1.0 - self.weighted_down(weights) / counted as f64)
    }

    /// Adds another bucket's milliseconds.
    pub fn add(&mut self, other: &StatusMs) {
        self.operational += other.operational;
        self.degraded += other.degraded;
        self.partial += other.partial;
        self.major += other.major;
        self.maintenance += other.maintenance;
        self.no_data += other.no_data;
    }
}

/// One row of [`status_ms_sql`].
#[derive(Debug, Clone, PartialEq, Deserialize, clickhouse::Row)]
pub struct UptimeRow {
    /// Component id.
    pub component: String,
    /// Days since the epoch of the bucket; 0 when not bucketed by day.
    pub bucket: u64,
    /// Milliseconds under maintenance.
    pub maintenance_ms: u64,
    /// Milliseconds before the first status.
    pub no_data_ms: u64,
    /// Milliseconds operational.
    pub operational_ms: u64,
    /// Milliseconds degraded.
    pub degraded_ms: u64,
    /// Milliseconds in partial outage.
    pub partial_ms: u64,
    /// Milliseconds in major outage.
    pub major_ms: u64,
    /// Uptime computed by ClickHouse with the weights asked for; NaN when
    /// nothing was counted.
    pub uptime: f64,
}

impl UptimeRow {
    /// The milliseconds, without the names.
    pub fn ms(&self) -> StatusMs {
        StatusMs {
            operational: self.operational_ms,
            degraded: self.degraded_ms,
            partial: self.partial_ms,
            major: self.major_ms,
            maintenance: self.maintenance_ms,
            no_data: self.no_data_ms,
        }
    }
}

/// The status codes the SQL works with: 0 is "no status yet".
pub fn status_code(status: ComponentStatus) -> u8 {
    match status {
        ComponentStatus::Operational => 1,
        ComponentStatus::DegradedPerformance => 2,
        ComponentStatus::PartialOutage => 3,
        ComponentStatus::MajorOutage => 4,
        ComponentStatus::UnderMaintenance => 5,
    }
}

/// A string literal for ClickHouse SQL. Ids are tokens (`[a-z0-9_-]`)
/// already; escaping anyway keeps a query from ever being something else.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// What [`status_ms_sql`] computes.
#[derive(Debug, Clone, PartialEq)]
pub struct UptimeQuery<'a> {
    /// The database.
    pub database: &'a str,
    /// Page id.
    pub page: &'a str,
    /// Only these components; none: every component with a status.
    pub components: Option<&'a [String]>,
    /// Period start (inclusive), Unix milliseconds.
    pub from_ms: u64,
    /// Period end (exclusive).
    pub to_ms: u64,
    /// One row per component and UTC day instead of one per component.
    pub by_day: bool,
    /// Weights for the `uptime` column.
    pub weights: StatusWeights,
}

/// SQL giving an [`UptimeRow`] per component (and day) of `query`. Works
/// on the single table or the Distributed one alike.
pub fn status_ms_sql(query: &UptimeQuery<'_>) -> String {
    let db = format!("`{}`", query.database);
    let (p0, p1) = (query.from_ms, query.to_ms.max(query.from_ms));
    let page = quote(query.page);
    let only = match query.components {
        Some(components) => format!(
            "AND component IN ({})",
            if components.is_empty() {
                "''".to_owned()
            } else {
                components
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        None => String::new(),
    };
    let point = |t: u64| format!("(toUInt64({t}), toUInt8(2), toInt64(0), toInt64(0))");
    let mut bounds = vec![point(p0), point(p1)];
    if query.by_day {
        let mut midnight = (p0 / DAY_MS + 1) * DAY_MS;
        while midnight < p1 {
            bounds.push(point(midnight));
            midnight += DAY_MS;
        }
    }
    let bounds = bounds.join(", ");
    let bucket = if query.by_day {
        format!("intDiv(start, {DAY_MS})")
    } else {
        "toUInt64(0)".to_owned()
    };
    let codes = ComponentStatus::ALL
        .iter()
        .map(|s| format!("to_status = {}, {}", quote(s.as_str()), status_code(*s)))
        .collect::<Vec<_>>()
        .join(", ");
    let w = |percent: f64| format!("{:?}", percent / 100.0);
    let (wm, wp, wd) = (
        w(query.weights.major_outage),
        w(query.weights.partial_outage),
        w(query.weights.degraded_performance),
    );
    format!(
        "SELECT component, toUInt64(bucket) AS bucket,
    toUInt64(sumIf(len, maint)) AS maintenance_ms,
    toUInt64(sumIf(len, NOT maint AND st = 0)) AS no_data_ms,
    toUInt64(sumIf(len, NOT maint AND st = 1)) AS operational_ms,
    toUInt64(sumIf(len, NOT maint AND st = 2)) AS degraded_ms,
    toUInt64(sumIf(len, NOT maint AND st = 3)) AS partial_ms,
    toUInt64(sumIf(len, NOT maint AND st = 4)) AS major_ms,
    1 - ({wm} * major_ms + {wp} * partial_ms + {wd} * degraded_ms)
        / (operational_ms + degraded_ms + partial_ms + major_ms) AS uptime
FROM (
    SELECT component, span.1 AS start, span.2 AS len, span.3 AS st,
        (span.4 > 0 OR span.3 = 5) AS maint, {bucket} AS bucket
    FROM (
        SELECT component,
            arraySort(arrayConcat(groupArrayArray(points), [{bounds}])) AS e,
            arrayMap(x -> x.1, e) AS et,
            arrayCumSum(arrayMap(x -> x.3, e)) AS est,
            arrayCumSum(arrayMap(x -> x.4, e)) AS edp,
            arrayMap((t, nt, s, d) -> (t, toInt64(nt) - toInt64(t), s, d),
                arrayPopBack(et), arrayPopFront(et), arrayPopBack(est), arrayPopBack(edp)) AS spans
        FROM (
            SELECT component,
                arrayMap((t, c, p) -> (t, toUInt8(0), toInt64(c) - toInt64(p), toInt64(0)),
                    ct, cs, arrayPushFront(arrayPopBack(cs), toUInt8(0))) AS points
            FROM (
                SELECT component, arrayMap(x -> x.1, s) AS ct, arrayMap(x -> x.4, s) AS cs
                FROM (
                    SELECT component,
                        arraySort(x -> x.3,
                            groupArray((at_ms, hlc, event_id, toUInt8(multiIf({codes}, 0))))) AS by_id,
                        arrayPushFront(arrayPopBack(arrayMap(x -> x.3, by_id)), '') AS prev_id,
                        arraySort(arrayFilter((x, p) -> x.3 != p, by_id, prev_id)) AS s
                    FROM {db}.{STATUS_TABLE}
                    WHERE page = {page} AND at_ms < {p1} {only}
                    GROUP BY component
                )
            )
            UNION ALL
            SELECT component,
                arrayConcat(
                    arrayMap(w -> (w.1, toUInt8(1), toInt64(0), toInt64(1)), ws),
                    arrayMap(w -> (w.2, toUInt8(1), toInt64(0), toInt64(-1)), ws)) AS points
            FROM (
                SELECT component, groupArray((m_start, m_end)) AS ws
                FROM (
                    SELECT maintenance,
                        argMax(components, (hlc, event_id)) AS comps,
                        minIf(at_ms, action = 'started') AS m_start,
                        if(countIf(action IN ('verifying', 'completed', 'cancelled')) = 0,
                            toUInt64({p1}),
                            minIf(at_ms, action IN ('verifying', 'completed', 'cancelled'))) AS m_end,
                        countIf(action = 'started') AS started
                    FROM {db}.{MAINTENANCE_TABLE}
                    WHERE page = {page}
                    GROUP BY maintenance
                )
                ARRAY JOIN comps AS component
                WHERE started > 0 AND m_start < {p1} AND m_end > m_start {only}
                GROUP BY component
            )
        )
        GROUP BY component
    )
    ARRAY JOIN spans AS span
    WHERE start >= {p0} AND start + len <= {p1} AND len > 0
)
GROUP BY component, bucket
ORDER BY component, bucket"
    )
}

// ---------------------------------------------------------------------------
// The reference: the same definition, written the obvious way.
// ---------------------------------------------------------------------------

/// One status change as the reference reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Event id; copies share it.
    pub id: String,
    /// HLC text.
    pub hlc: String,
    /// When it took effect.
    pub at_ms: u64,
    /// The new status.
    pub status: ComponentStatus,
}

/// Milliseconds per class in `[from_ms, to_ms)`, straight from the
/// definition: deduplicate, order, and walk the period between every point
/// where something changes. `windows` are maintenance intervals
/// `[start, end)`.
pub fn reference(changes: &[Change], windows: &[(u64, u64)], from_ms: u64, to_ms: u64) -> StatusMs {
    let mut unique: Vec<&Change> = Vec::new();
    for change in changes {
        if !unique.iter().any(|c| c.id == change.id) {
            unique.push(change);
        }
    }
    unique.sort_by(|a, b| (a.at_ms, &a.hlc, &a.id).cmp(&(b.at_ms, &b.hlc, &b.id)));
    let mut points = vec![from_ms, to_ms];
    points.extend(unique.iter().map(|c| c.at_ms));
    points.extend(windows.iter().flat_map(|(s, e)| [*s, *e]));
    points.retain(|p| (from_ms..=to_ms).contains(p));
    points.sort_unstable();
    points.dedup();
    let mut ms = StatusMs::default();
    for pair in points.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let status = unique
            .iter()
            .rev()
            .find(|c| c.at_ms <= start)
            .map(|c| c.status);
        let in_window = windows.iter().any(|(s, e)| *s <= start && start < *e);
        let len = end - start;
        match status {
            _ if in_window => ms.maintenance += len,
            Some(ComponentStatus::UnderMaintenance) => ms.maintenance += len,
            None => ms.no_data += len,
            Some(ComponentStatus::Operational) => ms.operational += len,
            Some(ComponentStatus::DegradedPerformance) => ms.degraded += len,
            Some(ComponentStatus::PartialOutage) => ms.partial += len,
            Some(ComponentStatus::MajorOutage) => ms.major += len,
        }
    }
    ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComponentStatus as S;

    fn change(id: &str, at_ms: u64, status: ComponentStatus) -> Change {
        Change {
            id: id.into(),
            hlc: format!("{at_ms:013}-00000"),
            at_ms,
            status,
        }
    }

    #[test]
    fn the_reference_counts_by_the_definition() {
        let changes = [
            change("a", 100, S::Operational),
            change("b", 200, S::MajorOutage),
            change("b", 200, S::MajorOutage),
            change("c", 300, S::PartialOutage),
            change("d", 400, S::Operational),
        ];
        // No data before 100; maintenance 350..450 hides part of the
        // partial outage and part of the recovery.
        let ms = reference(&changes, &[(350, 450)], 0, 500);
        assert_eq!(
            ms,
            StatusMs {
                operational: 100 + 50,
                degraded: 0,
                partial: 50,
                major: 100,
                maintenance: 100,
                no_data: 100,
            }
        );
        let weights = StatusWeights::default();
        // 100 ms major (100 %) + 50 ms partial (30 %) over 300 ms counted.
        let uptime = ms.uptime(&weights).expect("counted");
        assert!((uptime - (1.0 - 115.0 / 300.0)).abs() < 1e-12, "{uptime}");
        assert_eq!(StatusMs::default().uptime(&weights), None);
    }

    #[test]
    fn ties_go_to_the_later_hlc_and_status_carries_into_the_period() {
        let mut first = change("z", 50, S::MajorOutage);
        first.hlc = "0000000000050-00001".into();
        let second = change("a", 50, S::Operational);
        let ms = reference(&[first, second], &[], 100, 200);
        assert_eq!(ms.major, 100, "the later HLC wins at the same time");
    }

    #[test]
    fn quoting_cannot_end_the_literal() {
        assert_eq!(quote("a'b\\"), "'a\\'b\\\\'");
    }

    #[test]
    fn the_sql_names_its_period_and_filters() {
        let components = vec!["api".to_owned()];
        let sql = status_ms_sql(&UptimeQuery {
            database: "beacon",
            page: "demo",
            components: Some(&components),
            from_ms: 0,
            to_ms: 3 * DAY_MS,
            by_day: true,
            weights: StatusWeights::default(),
        });
        assert!(sql.contains("page = 'demo'"));
        assert!(sql.contains("component IN ('api')"));
        // Midnights split the spans into days.
        assert!(sql.contains(&format!("toUInt64({DAY_MS})")));
        assert!(sql.contains(&format!("toUInt64({})", 2 * DAY_MS)));
        assert!(sql.contains("0.3 * partial_ms"));
    }
}
