//! ClickHouse I/O: creating the schema and inserting rows.
//!
//! Talks to ClickHouse over HTTP with the `clickhouse` crate. Schema
//! validation is off because it needs the `RowBinaryWithNamesAndTypes`
//! format, which ClickHouse 18.16 does not have; rows go as plain
//! `RowBinary`, so the integration tests against a real server are what
//! keeps [`crate::rows`] in step with [`crate::schema`].
//! Compression is off: the crate is built without `lz4`, and rows are
//! small.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clickhouse::{Client, RowOwned, RowWrite};
use prometheus::{HistogramVec, IntCounterVec};

use beacon_core::retry::{Class, Classify};
use beacon_core::telemetry::{MetricError, Metrics};

use crate::config::RecorderConfig;
use crate::schema;

/// Longest one ClickHouse request may take. Kept well under the consumers'
/// ack wait (30 s), so a hung server turns into a retry, not a redelivery
/// of a message still being handled.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// ClickHouse error codes meaning the schema is gone (dropped, or a server
/// started on an empty data directory).
const UNKNOWN_TABLE: u32 = 60;
const UNKNOWN_DATABASE: u32 = 81;

/// Why a ClickHouse operation failed. Every kind is worth retrying: the
/// server may be down, restarting, overloaded or being repaired.
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
}

impl Classify for StoreError {
    /// Every store error is worth retrying: the server may be down,
    /// restarting, overloaded or being repaired, and a dropped schema is
    /// created again before the next insert.
    fn class(&self) -> Class {
        Class::Retryable
    }
}

/// Metrics of the ClickHouse side, labelled by table.
#[derive(Debug, Clone)]
struct StoreMetrics {
    rows: IntCounterVec,
    errors: IntCounterVec,
    seconds: HistogramVec,
}

impl StoreMetrics {
    fn register(metrics: &Metrics) -> Result<Self, MetricError> {
        Ok(Self {
            rows: metrics.counter(
                "rows_inserted_total",
                "Rows inserted into ClickHouse, by table",
                &["table"],
            )?,
            errors: metrics.counter(
                "insert_errors_total",
                "Failed ClickHouse inserts, by table",
                &["table"],
            )?,
            seconds: metrics.histogram(
                "insert_seconds",
                "Time one ClickHouse insert took, failures included, by table",
                &["table"],
            )?,
        })
    }
}

/// The recorder's connection to ClickHouse.
#[derive(Debug)]
pub struct ClickHouse {
    /// Client bound to the recorder's database, for inserts.
    client: Client,
    /// Client without a database: `CREATE DATABASE` has to run before the
    /// database exists, and ClickHouse refuses every request that names a
    /// missing database.
    server: Client,
    database: String,
    /// Cleared when an insert finds the schema gone, so the next attempt
    /// creates it again instead of failing until someone intervenes.
    schema_ready: AtomicBool,
    metrics: StoreMetrics,
}

impl ClickHouse {
    /// A client for `config`; registers the insert metrics. Does no I/O.
    pub fn new(config: &RecorderConfig, metrics: &Metrics) -> Result<Self, MetricError> {
        let mut server = Client::default()
            .with_url(config.url.as_str())
            .with_validation(false);
        if let Some(user) = &config.user {
            server = server.with_user(user);
        }
        if let Some(password) = &config.password {
            server = server.with_password(password);
        }
        Ok(Self {
            client: server.clone().with_database(&config.database),
            server,
            database: config.database.clone(),
            schema_ready: AtomicBool::new(false),
            metrics: StoreMetrics::register(metrics)?,
        })
    }

    /// The database the tables live in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Creates the database and tables if they are missing. Idempotent.
    pub async fn ensure_schema(&self) -> Result<(), StoreError> {
        for statement in schema::statements(&self.database) {
            let operation = first_line(&statement);
            // `query_raw` sends the text as is: DDL has no bind parameters,
            // and `?` inside it must not be taken for one.
            with_timeout(&operation, async {
                self.server.query_raw(&statement).execute().await
            })
            .await?;
        }
        self.schema_ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Inserts `rows` into `table` in one `INSERT` and returns once
    /// ClickHouse has stored them all (an insert is atomic per block, so a
    /// failure stores none and the whole batch is retried).
    pub async fn insert<T>(&self, table: &'static str, rows: &[T]) -> Result<(), StoreError>
    where
        T: RowOwned + RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let result = self.try_insert(table, rows).await;
        self.metrics
            .seconds
            .with_label_values(&[table])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => self
                .metrics
                .rows
                .with_label_values(&[table])
                .inc_by(rows.len() as u64),
            Err(e) => {
                self.metrics.errors.with_label_values(&[table]).inc();
                if e.schema_missing() {
                    tracing::warn!(table, database = %self.database, error = %e,
                        "ClickHouse schema is missing, will create it before the next insert.");
                    self.schema_ready.store(false, Ordering::SeqCst);
                }
            }
        }
        result
    }

    async fn try_insert<T>(&self, table: &'static str, rows: &[T]) -> Result<(), StoreError>
    where
        T: RowOwned + RowWrite,
    {
        if !self.schema_ready.load(Ordering::SeqCst) {
            self.ensure_schema().await?;
        }
        with_timeout(&format!("insert into {table}"), async {
            let mut insert = self.client.insert::<T>(table).await?;
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        })
        .await
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
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches(" (")
        .to_owned()
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
    fn statements_are_named_by_their_first_line() {
        assert_eq!(
            first_line(&schema::create_health_table("beacon")),
            "CREATE TABLE IF NOT EXISTS `beacon`.`health_results`"
        );
    }
}
