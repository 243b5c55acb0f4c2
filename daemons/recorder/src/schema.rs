//! The recorder's ClickHouse schema: one database and two tables.
//!
//! The DDL has to run unchanged on ClickHouse 18.16 (what the tests and
//! older deployments use) and on current releases, which rules out:
//!
//! - `DateTime64`: times are `DateTime` (seconds) plus a `UInt64` of
//!   milliseconds, so sub-second order is kept without it.
//! - `LowCardinality`: experimental in 18.16 and refused in a table
//!   without a setting. Plain `String` works everywhere.
//! - `Enum8`: a new check kind or status would need an `ALTER` before the
//!   first insert; a `String` accepts it.
//! - Table `TTL` (19.6 and later): old rows will be dropped by partition
//!   (`toYYYYMM(day)`) when retention is added.
//! - The old `MergeTree(date, key, granularity)` engine form, deprecated in
//!   current releases. The `PARTITION BY … ORDER BY …` form works in both.
//!
//! Deliveries are at least once, so a row can arrive twice. The tables are
//! `ReplacingMergeTree` with the event id last in the sorting key: copies of
//! one event are identical rows with one key and collapse when parts merge.
//! Until then, readers use `FINAL` or `uniqExact(event_id)`.

/// Table of probe results.
pub const HEALTH_TABLE: &str = "health_results";

/// Table of component status changes.
pub const STATUS_TABLE: &str = "status_changes";

/// `CREATE DATABASE` for `database`, a no-op if it exists.
///
/// `database` must be a plain identifier (checked by config validation):
/// DDL cannot take bound parameters, so the name is written into the text.
pub fn create_database(database: &str) -> String {
    format!("CREATE DATABASE IF NOT EXISTS `{database}`")
}

/// `CREATE TABLE` for probe results in `database`, a no-op if it exists.
///
/// Sorted by page, component and time, because history and uptime queries
/// read one component over a time range.
pub fn create_health_table(database: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.`{HEALTH_TABLE}` (
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
ORDER BY (page, component, started_at, event_id)"
    )
}

/// `CREATE TABLE` for status changes in `database`, a no-op if it exists.
pub fn create_status_table(database: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.`{STATUS_TABLE}` (
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
ORDER BY (page, component, changed_at, event_id)"
    )
}

/// Every statement, in the order they must run.
pub fn statements(database: &str) -> Vec<String> {
    vec![
        create_database(database),
        create_health_table(database),
        create_status_table(database),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_avoids_what_clickhouse_18_16_lacks() {
        for statement in statements("beacon") {
            for missing in ["DateTime64", "LowCardinality", "Enum8", "TTL"] {
                assert!(!statement.contains(missing), "{missing} in {statement}");
            }
            assert!(statement.contains("IF NOT EXISTS"), "{statement}");
        }
    }

    #[test]
    fn event_id_is_in_every_sorting_key() {
        for statement in [create_health_table("beacon"), create_status_table("beacon")] {
            let order_by = statement.split("ORDER BY").nth(1).unwrap();
            assert!(order_by.contains("event_id"), "{statement}");
            assert!(statement.contains("ReplacingMergeTree()"), "{statement}");
        }
    }

    #[test]
    fn database_name_is_quoted() {
        assert_eq!(
            create_database("b_1"),
            "CREATE DATABASE IF NOT EXISTS `b_1`"
        );
        assert!(create_health_table("b_1")
            .starts_with("CREATE TABLE IF NOT EXISTS `b_1`.`health_results`"));
    }
}
