-- Incidents, their timeline updates, maintenance windows and notification
-- receipts. Every table holds events, one row per event id
-- (ReplacingMergeTree with the event id last in the key), so a redelivered
-- event is one row once parts merge and readers group by event id before.
-- The envelope column keeps each event whole: SLA reports fold incidents
-- and windows with the same code the decider uses.

CREATE TABLE IF NOT EXISTS {db}.incident_events{local} (
    event_id String,
    hlc String,
    origin String,
    page String,
    incident String,
    action String,
    actor String,
    at_ms UInt64,
    lifecycle String,
    title String,
    impact String,
    state String,
    components Array(String),
    component_statuses Array(String),
    update_id String,
    postmortem String,
    reason String,
    envelope String,
    day Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (page, incident, event_id);

DISTRIBUTED incident_events BY cityHash64(page);

-- One row per timeline entry and event that wrote it; an update id written
-- twice keeps the later write: argMax(…, (hlc, event_id)) per update_id.
CREATE TABLE IF NOT EXISTS {db}.incident_updates{local} (
    event_id String,
    hlc String,
    page String,
    incident String,
    update_id String,
    state String,
    body String,
    components Array(String),
    component_statuses Array(String),
    at_ms UInt64,
    actor String,
    day Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (page, incident, update_id, event_id);

DISTRIBUTED incident_updates BY cityHash64(page);

-- Each maintenance event carries the window's whole state after it.
CREATE TABLE IF NOT EXISTS {db}.maintenance_events{local} (
    event_id String,
    hlc String,
    origin String,
    page String,
    maintenance String,
    action String,
    actor String,
    at_ms UInt64,
    phase String,
    title String,
    body String,
    starts_at_ms UInt64,
    ends_at_ms UInt64,
    components Array(String),
    recurrence String,
    series String,
    remind_before_ms UInt64,
    verify_ms UInt64,
    envelope String,
    day Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (page, maintenance, event_id);

DISTRIBUTED maintenance_events BY cityHash64(page);

CREATE TABLE IF NOT EXISTS {db}.delivery_receipts{local} (
    event_id String,
    hlc String,
    origin String,
    page String,
    channel String,
    subscriber String,
    idempotency_key String,
    outcome String,
    attempts UInt32,
    detail String,
    at_ms UInt64,
    day Date
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (page, channel, idempotency_key, event_id);

DISTRIBUTED delivery_receipts BY cityHash64(page);
