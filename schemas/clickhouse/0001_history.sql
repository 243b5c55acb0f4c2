-- Probe results and status changes, as the first recorder created them.
--
-- Placeholders (see README.md): {db} the database; {local} the suffix of
-- tables that hold rows (`_local` in the sharded layout, nothing in the
-- single-server one); a `DISTRIBUTED name BY key` statement creates the
-- Distributed table `name` over `name{local}` in the sharded layout and
-- nothing in the single one.

CREATE TABLE IF NOT EXISTS {db}.health_results{local} (
    event_id String,
    hlc String,
    origin String,
    page String,
    component String,
    check_id String,
    region String,
    kind String,
    outcome String,
    started_at DateTime,
    started_at_ms UInt64,
    latency_ms UInt64,
    http_status UInt16,
    error String,
    day Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (page, component, started_at, event_id);

DISTRIBUTED health_results BY cityHash64(page, component);

CREATE TABLE IF NOT EXISTS {db}.status_changes{local} (
    event_id String,
    hlc String,
    page String,
    component String,
    from_status String,
    to_status String,
    rule String,
    trigger String,
    evidence String,
    changed_at DateTime,
    changed_at_ms UInt64,
    day Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (page, component, changed_at, event_id);

DISTRIBUTED status_changes BY cityHash64(page, component);
