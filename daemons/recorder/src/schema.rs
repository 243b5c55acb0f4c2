//! The ClickHouse schema: ordered migrations from `schemas/clickhouse/`,
//! rendered for the single-server or the sharded layout.
//!
//! The SQL has to run unchanged on ClickHouse 18.16 (what the tests and
//! older deployments use) and on current releases, which rules out
//! `DateTime64`, `LowCardinality`, `Enum8` (a new status would need an
//! `ALTER` first), table `TTL`, `ADD COLUMN IF NOT EXISTS` and the old
//! `MergeTree(date, key, granularity)` engine form.
//!
//! Deliveries are at least once, so a row can arrive twice. Every table of
//! events is a `ReplacingMergeTree` with the event id last in the sorting
//! key: copies collapse when parts merge, and until then readers group by
//! event id.
//!
//! # Layouts
//!
//! - **Single**: each table is a plain table in the database.
//! - **Sharded**: each table holding rows is `name_local` on every shard,
//!   and `name` is a `Distributed` table over them on a named cluster
//!   (`remote_servers` in the servers' config). Every migration runs on
//!   every shard; the recorder writes and reads through the `Distributed`
//!   tables with `insert_distributed_sync`, so an insert has reached its
//!   shard before the message is acked.
//!
//! Each server records the migrations it ran in `schema_migrations`
//! (never distributed); a migration is recorded after its last statement,
//! and every statement can run twice, so a crash in between only repeats
//! work.

/// Table of probe results.
pub const HEALTH_TABLE: &str = "health_results";
/// Table of component status changes.
pub const STATUS_TABLE: &str = "status_changes";
/// Table of incident events.
pub const INCIDENT_TABLE: &str = "incident_events";
/// Table of incident timeline updates.
pub const INCIDENT_UPDATE_TABLE: &str = "incident_updates";
/// Table of maintenance events.
pub const MAINTENANCE_TABLE: &str = "maintenance_events";
/// Table of notification delivery receipts.
pub const DELIVERY_TABLE: &str = "delivery_receipts";
/// Per-minute rollup of probe results.
pub const HEALTH_MINUTELY_TABLE: &str = "health_minutely";
/// Per-day rollup of uptime.
pub const UPTIME_DAILY_TABLE: &str = "uptime_daily";
/// Table recording the migrations a server ran.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// One migration: a file of `schemas/clickhouse/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number; migrations run in this order.
    pub version: u32,
    /// Its file name.
    pub name: &'static str,
    /// The file's text, with placeholders.
    pub text: &'static str,
}

/// Every migration, in order. New ones go at the end; a migration that
/// ran somewhere is never edited.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_history.sql",
        text: include_str!("../../../schemas/clickhouse/0001_history.sql"),
    },
    Migration {
        version: 2,
        name: "0002_status_details.sql",
        text: include_str!("../../../schemas/clickhouse/0002_status_details.sql"),
    },
    Migration {
        version: 3,
        name: "0003_incidents_maintenance_deliveries.sql",
        text: include_str!("../../../schemas/clickhouse/0003_incidents_maintenance_deliveries.sql"),
    },
    Migration {
        version: 4,
        name: "0004_rollups.sql",
        text: include_str!("../../../schemas/clickhouse/0004_rollups.sql"),
    },
];

/// How the tables are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One server.
    Single,
    /// `name_local` tables on every shard of `cluster`, `Distributed`
    /// tables `name` over them.
    Sharded {
        /// The cluster's name in the servers' `remote_servers`.
        cluster: String,
    },
}

impl Layout {
    /// The suffix of tables that hold rows.
    pub fn local_suffix(&self) -> &'static str {
        match self {
            Layout::Single => "",
            Layout::Sharded { .. } => "_local",
        }
    }
}

/// One statement ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL.
    pub sql: String,
    /// Whether it adds a column: "already exists" then means an earlier,
    /// interrupted run got this far, and counts as done.
    pub adds_column: bool,
}

/// `CREATE DATABASE` for `database`, a no-op if it exists.
///
/// `database` must be a plain identifier (checked by config validation):
/// DDL cannot take bound parameters, so the name is written into the text.
pub fn create_database(database: &str) -> String {
    format!("CREATE DATABASE IF NOT EXISTS `{database}`")
}

/// The table each server records its migrations in.
pub fn create_migrations_table(database: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.`{MIGRATIONS_TABLE}` (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree()
ORDER BY version"
    )
}

/// The statements of `migration` for `database` in `layout`, in order.
pub fn render(migration: &Migration, database: &str, layout: &Layout) -> Vec<Statement> {
    // Comments go first, so a `;` in one cannot split a statement.
    let text: String = migration
        .text
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let db = format!("`{database}`");
    let mut statements = Vec::new();
    for raw in text.split(';') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("DISTRIBUTED ") {
            if let (Layout::Sharded { cluster }, Some((name, key))) =
                (layout, rest.split_once(" BY "))
            {
                let name = name.trim();
                statements.push(Statement {
                    sql: format!(
                        "CREATE TABLE IF NOT EXISTS {db}.{name} AS {db}.{name}_local \
                         ENGINE = Distributed({cluster}, {database}, {name}_local, {key})",
                        key = key.trim()
                    ),
                    adds_column: false,
                });
            }
            continue;
        }
        let adds_column = raw.contains(" ADD COLUMN ");
        let sql = raw
            .replace("{db}", &db)
            .replace("{local}", layout.local_suffix());
        if sql.contains("{all}") {
            // Local table first: a Distributed table with a column its
            // shards lack fails every read.
            statements.push(Statement {
                sql: sql.replace("{all}", layout.local_suffix()),
                adds_column,
            });
            if matches!(layout, Layout::Sharded { .. }) {
                statements.push(Statement {
                    sql: sql.replace("{all}", ""),
                    adds_column,
                });
            }
        } else {
            statements.push(Statement { sql, adds_column });
        }
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(layout: &Layout) -> Vec<String> {
        MIGRATIONS
            .iter()
            .flat_map(|m| render(m, "beacon", layout))
            .map(|s| s.sql)
            .collect()
    }

    #[test]
    fn migrations_are_numbered_in_order_and_named_by_their_files() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, i + 1);
            assert!(
                migration
                    .name
                    .starts_with(&format!("{:04}_", migration.version)),
                "{}",
                migration.name
            );
        }
    }

    #[test]
    fn sql_avoids_what_clickhouse_18_16_lacks() {
        for statement in all(&Layout::Single) {
            for missing in ["DateTime64", "LowCardinality", "Enum8", " TTL "] {
                assert!(!statement.contains(missing), "{missing} in {statement}");
            }
            assert!(!statement.contains('{'), "placeholder left in {statement}");
            if statement.starts_with("CREATE") {
                assert!(statement.contains("IF NOT EXISTS"), "{statement}");
            }
        }
    }

    #[test]
    fn every_event_table_collapses_copies_by_event_id() {
        for statement in all(&Layout::Single) {
            if statement.contains("ReplacingMergeTree()") {
                let order_by = statement.split("ORDER BY").nth(1).unwrap_or_default();
                let is_migrations = statement.contains(MIGRATIONS_TABLE);
                assert!(
                    is_migrations || order_by.contains("event_id"),
                    "{statement}"
                );
            }
        }
    }

    #[test]
    fn the_single_layout_has_plain_tables_and_no_distributed_ones() {
        let single = all(&Layout::Single);
        assert!(single.iter().all(|s| !s.contains("Distributed")));
        assert!(single
            .iter()
            .any(|s| s.starts_with("CREATE TABLE IF NOT EXISTS `beacon`.health_results (")));
        // Each ALTER runs once.
        let alters = single.iter().filter(|s| s.starts_with("ALTER")).count();
        assert_eq!(alters, 5);
    }

    #[test]
    fn the_sharded_layout_puts_distributed_tables_over_local_ones() {
        let sharded = all(&Layout::Sharded {
            cluster: "history".into(),
        });
        assert!(sharded
            .iter()
            .any(|s| s.starts_with("CREATE TABLE IF NOT EXISTS `beacon`.health_results_local (")));
        assert!(sharded.contains(
            &"CREATE TABLE IF NOT EXISTS `beacon`.health_results AS `beacon`.health_results_local \
              ENGINE = Distributed(history, beacon, health_results_local, cityHash64(page, component))"
                .to_owned()
        ));
        // Each ALTER runs on the local table, then on the Distributed one.
        let alters: Vec<&String> = sharded.iter().filter(|s| s.starts_with("ALTER")).collect();
        assert_eq!(alters.len(), 10);
        assert!(alters[0].contains("status_changes_local ADD"));
        assert!(alters[1].contains("status_changes ADD"));
        // The rollup view reads local rows; readers use the Distributed table.
        assert!(sharded
            .iter()
            .any(|s| s.contains("TO `beacon`.health_minutely_local")
                && s.contains("FROM `beacon`.health_results_local")));
    }
}
