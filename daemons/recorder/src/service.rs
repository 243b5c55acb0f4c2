//! ClickHouse I/O: migrations, inserts, queries, and what their errors mean.
//!
//! Talks to ClickHouse over HTTP with the `clickhouse` crate. Schema
//! validation is off because it needs the `RowBinaryWithNamesAndTypes`
//! format, which ClickHouse 18.16 does not have; rows go as plain
//! `RowBinary`, so the integration tests against a real server are what
//! keeps [`crate::rows`] in step with [`crate::schema`]. Compression is
//! off: the crate is built without `lz4`.
//!
//! Errors are classified by the server's error code ([`StoreError::class`]):
//! a code that means "these rows are wrong" is permanent, everything else
//! (no answer, a timeout, a server that is starting, overloaded or missing
//! a table) is retryable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clickhouse::{Client, RowOwned, RowRead, RowWrite};
use prometheus::{HistogramVec, IntCounterVec};
use serde::Deserialize;
use url::Url;

use beacon_runtime::retry::{Class, Classify};
use beacon_runtime::telemetry::{MetricError, Metrics};

use crate::config::RecorderConfig;
use crate::schema::{self, Layout, MIGRATIONS, MIGRATIONS_TABLE};

/// Longest one ClickHouse request may take. Kept well under the consumers'
/// ack wait (30 s), so a hung server turns into a retry, not a redelivery
/// of a message still being handled.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// ClickHouse error codes meaning the schema is gone (dropped, or a server
/// started on an empty data directory).
const UNKNOWN_TABLE: u32 = 60;
const UNKNOWN_DATABASE: u32 = 81;
/// "Cannot add column: column with this name already exists".
const COLUMN_EXISTS: u32 = 44;

/// Error codes the same rows will always get: the rows, not the server, are
/// wrong. A batch that gets one is split until the rows at fault are
/// found, and only those are dead-lettered.
///
/// Values that cannot be parsed or do not fit their column's type, and
/// rows a server-side check refuses (`throwIf` in a `MATERIALIZED` column
/// on 18.16, `CONSTRAINT` on current releases).
pub const PERMANENT_CODES: &[(u32, &str)] = &[
    (6, "CANNOT_PARSE_TEXT"),
    (26, "CANNOT_PARSE_QUOTED_STRING"),
    (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
    (32, "ATTEMPT_TO_READ_AFTER_EOF"),
    (33, "CANNOT_READ_ALL_DATA"),
    (38, "CANNOT_PARSE_DATE"),
    (41, "CANNOT_PARSE_DATETIME"),
    (53, "TYPE_MISMATCH"),
    (69, "ARGUMENT_OUT_OF_BOUND"),
    (70, "CANNOT_CONVERT_TYPE"),
    (72, "CANNOT_PARSE_NUMBER"),
    (117, "INCORRECT_DATA"),
    (131, "TOO_LARGE_STRING_SIZE"),
    (321, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"),
    (349, "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN"),
    (395, "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"),
    (469, "VIOLATED_CONSTRAINT"),
    (691, "UNKNOWN_ELEMENT_OF_ENUM"),
];

/// Error codes that say the server, not the rows, is the trouble: it is
/// busy, out of memory or disk, read-only, shutting down, or missing its
/// schema. An insert that gets one is retried whole. Any other code the
/// server answers with that is not in [`PERMANENT_CODES`] may be about the
/// rows (a new check, a function that fails on one value): such an insert
/// is split like a refused one, so the rows at fault are retried alone and
/// never hold up the rows around them (see [`StoreError::may_be_the_rows`]).
pub const SERVER_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE
    60,  // UNKNOWN_TABLE
    81,  // UNKNOWN_DATABASE
    159, // TIMEOUT_EXCEEDED
    173, // CANNOT_ALLOCATE_MEMORY
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    236, // ABORTED
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    243, // NOT_ENOUGH_SPACE
    252, // TOO_MANY_PARTS
    319, // UNKNOWN_STATUS_OF_INSERT
    394, // QUERY_WAS_CANCELLED
    425, // SYSTEM_ERROR
    439, // CANNOT_SCHEDULE_TASK
];

/// Why a ClickHouse operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within [`REQUEST_TIMEOUT`].
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        operation: String,
        /// How long it waited.
        after: Duration,
    },
    /// The request failed or ClickHouse answered with an error.
    #[error("{operation} failed: {source}")]
    ClickHouse {
        /// What was being done.
        operation: String,
        /// What the client reported.
        #[source]
        source: clickhouse::error::Error,
    },
}

impl StoreError {
    /// The ClickHouse error code in the server's answer, if there was one.
    ///
    /// 18.16 writes `Code: 60, e.displayText() = …` and current releases
    /// `Code: 60. DB::Exception: …`; both start with `Code: N`.
    pub fn server_code(&self) -> Option<u32> {
        let StoreError::ClickHouse { source, .. } = self else {
            return None;
        };
        let text = source.to_string();
        let rest = &text[text.find("Code: ")? + "Code: ".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    /// Whether the database or a table is missing.
    pub fn schema_missing(&self) -> bool {
        matches!(self.server_code(), Some(UNKNOWN_TABLE | UNKNOWN_DATABASE))
    }

    /// Whether the server answered with a code that is neither permanent
    /// nor known to be about the server ([`SERVER_CODES`]): the rows may be
    /// at fault, so a failed insert of many rows is split to find them,
    /// while a row alone is retried (the code may yet prove transient).
    pub fn may_be_the_rows(&self) -> bool {
        match self.server_code() {
            Some(code) => self.permanent_code().is_none() && !SERVER_CODES.contains(&code),
            None => false,
        }
    }

    /// The name of a permanent error's code, for logs and dead-letter reasons.
    pub fn permanent_code(&self) -> Option<&'static str> {
        let code = self.server_code()?;
        PERMANENT_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, name)| *name)
    }
}

impl Classify for StoreError {
    /// Permanent for the codes in [`PERMANENT_CODES`]; retryable for
    /// everything else, unknown codes included: retrying a row that can
    /// never land holds up its consumer and shows in the metrics, while
    /// dead-lettering a good row because of an outage would drop it from
    /// history.
    fn class(&self) -> Class {
        if self.permanent_code().is_some() {
            Class::Permanent
        } else {
            Class::Retryable
        }
    }
}

/// Metrics of the ClickHouse side, labelled by table.
#[derive(Debug, Clone)]
struct StoreMetrics {
    rows: IntCounterVec,
    batches: IntCounterVec,
    errors: IntCounterVec,
    seconds: HistogramVec,
    batch_rows: HistogramVec,
    migrations: IntCounterVec,
}

impl StoreMetrics {
    fn register(metrics: &Metrics) -> Result<Self, MetricError> {
        Ok(Self {
            rows: metrics.counter(
                "rows_inserted_total",
                "Rows inserted into ClickHouse, by table",
                &["table"],
            )?,
            batches: metrics.counter(
                "batches_inserted_total",
                "INSERTs that succeeded, by table",
                &["table"],
            )?,
            errors: metrics.counter(
                "insert_errors_total",
                "Failed ClickHouse inserts, by table and class (retryable, permanent)",
                &["table", "class"],
            )?,
            seconds: metrics.histogram(
                "insert_seconds",
                "Time one ClickHouse insert took, failures included, by table",
                &["table"],
            )?,
            batch_rows: metrics.histogram_with_buckets(
                "insert_rows",
                "Rows per successful INSERT, by table",
                &["table"],
                vec![
                    1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0,
                ],
            )?,
            migrations: metrics.counter(
                "migrations_applied_total",
                "Schema migrations applied, by server role (single, shard)",
                &["server"],
            )?,
        })
    }
}

/// One row of `schema_migrations`.
#[derive(Debug, Deserialize, clickhouse::Row)]
struct Applied {
    version: u32,
}

/// The recorder's connection to ClickHouse.
#[derive(Debug)]
pub struct ClickHouse {
    /// Client bound to the recorder's database, for inserts and reads.
    client: Client,
    /// One client per server migrations run on, without a database:
    /// `CREATE DATABASE` has to run before the database exists.
    shards: Vec<(Url, Client)>,
    database: String,
    layout: Layout,
    /// Cleared when an insert finds the schema gone, so the next attempt
    /// migrates again instead of failing until someone intervenes.
    schema_ready: AtomicBool,
    metrics: StoreMetrics,
}

fn client_for(url: &Url, config: &RecorderConfig) -> Client {
    let mut client = Client::default()
        .with_url(url.as_str())
        .with_validation(false);
    if let Some(user) = &config.user {
        client = client.with_user(user);
    }
    if let Some(password) = &config.password {
        client = client.with_password(password);
    }
    client
}

impl ClickHouse {
    /// A client for `config`; registers the insert metrics. Does no I/O.
    pub fn new(config: &RecorderConfig, metrics: &Metrics) -> Result<Self, MetricError> {
        let mut client = client_for(&config.url, config).with_database(&config.database);
        if let Layout::Sharded { .. } = config.layout {
            // An insert into a Distributed table returns only once every
            // shard has its rows: the ack after it must mean stored.
            client = client.with_setting("insert_distributed_sync", "1");
        }
        Ok(Self {
            client,
            shards: config
                .shards
                .iter()
                .map(|url| (url.clone(), client_for(url, config)))
                .collect(),
            database: config.database.clone(),
            layout: config.layout.clone(),
            schema_ready: AtomicBool::new(false),
            metrics: StoreMetrics::register(metrics)?,
        })
    }

    /// The database the tables live in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Creates the database and the migrations table, and runs every
    /// migration a server has not recorded, on every server. Idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let role = match self.layout {
            Layout::Single => "single",
            Layout::Sharded { .. } => "shard",
        };
        for (url, server) in &self.shards {
            execute(server, &schema::create_database(&self.database)).await?;
            execute(server, &schema::create_migrations_table(&self.database)).await?;
            let applied = self.applied(server).await?;
            for migration in MIGRATIONS {
                if applied.contains(&migration.version) {
                    continue;
                }
                for statement in schema::render(migration, &self.database, &self.layout) {
                    match execute(server, &statement.sql).await {
                        Ok(()) => {}
                        // A run that stopped between this statement and
                        // the migration's record added the column already.
                        Err(e)
                            if statement.adds_column && e.server_code() == Some(COLUMN_EXISTS) => {}
                        Err(e) => return Err(e),
                    }
                }
                let record = format!(
                    "INSERT INTO `{}`.`{MIGRATIONS_TABLE}` (version, name, applied_at) VALUES ({}, '{}', now())",
                    self.database, migration.version, migration.name
                );
                execute(server, &record).await?;
                self.metrics.migrations.with_label_values(&[role]).inc();
                tracing::info!(server = %url, migration = migration.name, "ClickHouse migration applied.");
            }
        }
        self.schema_ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn applied(&self, server: &Client) -> Result<Vec<u32>, StoreError> {
        let sql = format!(
            "SELECT version FROM `{}`.`{MIGRATIONS_TABLE}` FINAL",
            self.database
        );
        let rows: Vec<Applied> = fetch(server, &sql).await?;
        Ok(rows.into_iter().map(|r| r.version).collect())
    }

    /// Inserts `rows` into `table` in one `INSERT` and returns once
    /// ClickHouse has stored them all (an insert is atomic per block, so a
    /// failure stores none).
    pub async fn insert<T>(&self, table: &'static str, rows: &[T]) -> Result<(), StoreError>
    where
        T: RowOwned + RowWrite,
    {
        self.insert_parts(table, &[rows]).await
    }

    /// Inserts the rows of every part into `table` in one `INSERT`, as
    /// [`ClickHouse::insert`] does for one slice: the group insert sends
    /// several batches together without copying their rows into one.
    pub async fn insert_parts<T, P>(
        &self,
        table: &'static str,
        parts: &[P],
    ) -> Result<(), StoreError>
    where
        T: RowOwned + RowWrite,
        P: AsRef<[T]>,
    {
        let count: usize = parts.iter().map(|p| p.as_ref().len()).sum();
        if count == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let result = self.try_insert(table, parts).await;
        self.metrics
            .seconds
            .with_label_values(&[table])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {
                self.metrics
                    .rows
                    .with_label_values(&[table])
                    .inc_by(count as u64);
                self.metrics.batches.with_label_values(&[table]).inc();
                self.metrics
                    .batch_rows
                    .with_label_values(&[table])
                    .observe(count as f64);
            }
            Err(e) => {
                let class = match e.class() {
                    Class::Permanent => "permanent",
                    Class::Retryable => "retryable",
                };
                self.metrics.errors.with_label_values(&[table, class]).inc();
                if e.schema_missing() {
                    tracing::warn!(table, database = %self.database, error = %e,
                        "ClickHouse schema is missing, will migrate before the next insert.");
                    self.schema_ready.store(false, Ordering::SeqCst);
                }
            }
        }
        result
    }

    async fn try_insert<T, P>(&self, table: &'static str, parts: &[P]) -> Result<(), StoreError>
    where
        T: RowOwned + RowWrite,
        P: AsRef<[T]>,
    {
        if !self.schema_ready.load(Ordering::SeqCst) {
            self.migrate().await?;
        }
        with_timeout(&format!("insert into {table}"), async {
            let mut insert = self.client.insert::<T>(table).await?;
            for row in parts.iter().flat_map(|p| p.as_ref()) {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await
    }

    /// Runs a statement that returns nothing (e.g. `INSERT … SELECT`) in the
    /// recorder's database.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        execute(&self.client, sql).await
    }

    /// Runs a query and reads every row.
    pub async fn fetch<T>(&self, sql: &str) -> Result<Vec<T>, StoreError>
    where
        T: RowOwned + RowRead,
    {
        fetch(&self.client, sql).await
    }
}

/// Sends `sql` as is: DDL has no bind parameters, and a `?` inside must not
/// be taken for one.
async fn execute(client: &Client, sql: &str) -> Result<(), StoreError> {
    let operation = first_line(sql);
    with_timeout(&operation, async { client.query_raw(sql).execute().await }).await
}

async fn fetch<T>(client: &Client, sql: &str) -> Result<Vec<T>, StoreError>
where
    T: RowOwned + RowRead,
{
    let operation = first_line(sql);
    match tokio::time::timeout(REQUEST_TIMEOUT, client.query_raw(sql).fetch_all::<T>()).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(source)) => Err(StoreError::ClickHouse { operation, source }),
        Err(_) => Err(StoreError::Timeout {
            operation,
            after: REQUEST_TIMEOUT,
        }),
    }
}

async fn with_timeout<F>(operation: &str, request: F) -> Result<(), StoreError>
where
    F: std::future::Future<Output = Result<(), clickhouse::error::Error>>,
{
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(StoreError::ClickHouse {
            operation: operation.to_owned(),
            source,
        }),
        Err(_) => Err(StoreError::Timeout {
            operation: operation.to_owned(),
            after: REQUEST_TIMEOUT,
        }),
    }
}

/// The first line of a statement, to name it in errors.
fn first_line(statement: &str) -> String {
    statement
        .trim_start()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches(" (")
        .chars()
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(text: &str) -> StoreError {
        StoreError::ClickHouse {
            operation: "insert".into(),
            source: clickhouse::error::Error::BadResponse(text.into()),
        }
    }

    #[test]
    fn server_codes_are_read_from_old_and_new_messages() {
        let old = server_error("Code: 60, e.displayText() = DB::Exception: Table beacon.x doesn't exist., e.what() = DB::Exception");
        let new = server_error(
            "Code: 81. DB::Exception: Database beacon does not exist. (UNKNOWN_DATABASE)",
        );
        let other = server_error("Code: 241. DB::Exception: Memory limit exceeded");
        assert_eq!(old.server_code(), Some(60));
        assert!(old.schema_missing() && new.schema_missing());
        assert!(!other.schema_missing());
        assert_eq!(server_error("connection refused").server_code(), None);
        let timeout = StoreError::Timeout {
            operation: "x".into(),
            after: REQUEST_TIMEOUT,
        };
        assert_eq!(timeout.server_code(), None);
    }

    #[test]
    fn errors_are_classified_by_code() {
        let table: &[(&str, Class)] = &[
            // The rows are wrong: a server-side check or a value that does
            // not fit its column.
            ("Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero", Class::Permanent),
            ("Code: 469. DB::Exception: Constraint `ok` for table beacon.x is violated", Class::Permanent),
            ("Code: 27, e.displayText() = DB::Exception: Cannot parse input", Class::Permanent),
            ("Code: 53. DB::Exception: Type mismatch", Class::Permanent),
            // The server is away, busy or missing its schema.
            ("Code: 241. DB::Exception: Memory limit (total) exceeded", Class::Retryable),
            ("Code: 252, e.displayText() = DB::Exception: Too many parts", Class::Retryable),
            ("Code: 60, e.displayText() = DB::Exception: Table beacon.x doesn't exist.", Class::Retryable),
            ("Code: 202. DB::Exception: Too many simultaneous queries", Class::Retryable),
            ("Code: 9999. DB::Exception: something new", Class::Retryable),
            ("error trying to connect: tcp connect error: Connection refused", Class::Retryable),
        ];
        for (text, class) in table {
            assert_eq!(server_error(text).class(), *class, "{text}");
        }
        // Unknown codes are retried, but split first: they may be the rows'.
        for (text, may_be_the_rows) in [
            ("Code: 9999. DB::Exception: something new", true),
            ("Code: 153. DB::Exception: Division by zero", true),
            (
                "Code: 241. DB::Exception: Memory limit (total) exceeded",
                false,
            ),
            ("Code: 395, e.displayText() = DB::Exception: throwIf", false),
            (
                "error trying to connect: tcp connect error: Connection refused",
                false,
            ),
        ] {
            assert_eq!(
                server_error(text).may_be_the_rows(),
                may_be_the_rows,
                "{text}"
            );
        }
        let timeout = StoreError::Timeout {
            operation: "x".into(),
            after: REQUEST_TIMEOUT,
        };
        assert_eq!(timeout.class(), Class::Retryable);
        assert_eq!(
            server_error("Code: 395, e.displayText() = …").permanent_code(),
            Some("FUNCTION_THROW_IF_VALUE_IS_NON_ZERO")
        );
    }

    #[test]
    fn statements_are_named_by_their_first_line() {
        assert_eq!(
            first_line(&schema::create_migrations_table("beacon")),
            "CREATE TABLE IF NOT EXISTS `beacon`.`schema_migrations`"
        );
    }
}
