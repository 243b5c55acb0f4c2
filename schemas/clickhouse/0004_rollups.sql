-- Rollups.
--
-- health_minutely: probe results per minute, check and region, filled by
-- a materialized view as rows are inserted. A redelivered result is
-- inserted twice, so every count is a set of event ids (uniqExact) and
-- latency keeps only its extremes: duplicates change none of them. Read
-- with uniqExactMerge(results), uniqExactIfMerge(up), minMerge(latency_min)…
--
-- uptime_daily: milliseconds in each status per component and UTC day,
-- maintenance and time before the first status kept apart. The recorder
-- recomputes a day from status_changes and maintenance_events whenever
-- they change it (late events included) and on a timer for today; the
-- newest computation wins (ReplacingMergeTree on computed_at_ms, read with
-- FINAL).
--
-- status_intervals: status changes as intervals [start_ms, end_ms), one
-- per change (copies of an event counted once; end_ms 0 while current).

CREATE TABLE IF NOT EXISTS {db}.health_minutely{local} (
    page String,
    component String,
    check_id String,
    region String,
    minute DateTime,
    results AggregateFunction(uniqExact, String),
    up AggregateFunction(uniqExactIf, String, UInt8),
    degraded AggregateFunction(uniqExactIf, String, UInt8),
    down AggregateFunction(uniqExactIf, String, UInt8),
    latency_min AggregateFunction(min, UInt64),
    latency_max AggregateFunction(max, UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (page, component, check_id, region, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.health_minutely_mv{local}
TO {db}.health_minutely{local} AS
SELECT
    page,
    component,
    check_id,
    region,
    toStartOfMinute(started_at) AS minute,
    uniqExactState(event_id) AS results,
    uniqExactIfState(event_id, outcome = 'up') AS up,
    uniqExactIfState(event_id, outcome = 'degraded') AS degraded,
    uniqExactIfState(event_id, outcome = 'down') AS down,
    minState(latency_ms) AS latency_min,
    maxState(latency_ms) AS latency_max
FROM {db}.health_results{local}
GROUP BY page, component, check_id, region, minute;

DISTRIBUTED health_minutely BY cityHash64(page, component);

CREATE TABLE IF NOT EXISTS {db}.uptime_daily{local} (
    page String,
    component String,
    day Date,
    operational_ms UInt64,
    degraded_ms UInt64,
    partial_ms UInt64,
    major_ms UInt64,
    maintenance_ms UInt64,
    no_data_ms UInt64,
    computed_at_ms UInt64
) ENGINE = ReplacingMergeTree(computed_at_ms)
PARTITION BY toYYYYMM(day)
ORDER BY (page, component, day);

DISTRIBUTED uptime_daily BY cityHash64(page, component);

CREATE VIEW IF NOT EXISTS {db}.status_intervals AS
SELECT
    page,
    component,
    change.3 AS event_id,
    change.4 AS status,
    change.5 AS source,
    change.1 AS start_ms,
    end_ms
FROM (
    SELECT
        page,
        component,
        arraySort(groupArray((at_ms, hlc, event_id, to_status, source))) AS changes,
        arrayPushBack(arrayPopFront(arrayMap(c -> c.1, changes)), toUInt64(0)) AS ends
    FROM (
        SELECT page, component, event_id, any(at_ms) AS at_ms, any(hlc) AS hlc,
               any(to_status) AS to_status, any(source) AS source
        FROM {db}.status_changes
        GROUP BY page, component, event_id
    )
    GROUP BY page, component
)
ARRAY JOIN changes AS change, ends AS end_ms;
