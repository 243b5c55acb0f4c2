//! Why a scenario did not produce a report.

use std::time::Duration;

use beacon_runtime::connect::ConnectError;

/// Why a scenario stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The private nats-server did not start.
    #[error("cannot start a private nats-server: {0}")]
    StartServer(String),
    /// No connection to NATS.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A bus operation failed.
    #[error("{step}: {reason}")]
    Bus {
        /// What was being done.
        step: String,
        /// What the client said.
        reason: String,
    },
    /// A measurement took longer than `--phase-timeout`.
    #[error("{step} did not finish within {}", humantime::format_duration(*after))]
    Timeout {
        /// What was being done.
        step: String,
        /// The limit.
        after: Duration,
    },
    /// The server did something the measurement cannot account for.
    #[error("{0}")]
    Unexpected(String),
    /// The scenario's flags cannot run (a chaos schedule that cannot).
    #[error("{0}")]
    Usage(String),
    /// A run finished and broke invariants; `report` is its JSON report,
    /// printed on stdout all the same.
    #[error("{invariants} invariant(s) broken")]
    Broken {
        /// How many.
        invariants: u64,
        /// The report.
        report: String,
    },
    /// The report could not be serialized (a bug).
    #[error("cannot build the report: {0}")]
    Report(String),
}

impl LoadError {
    /// Exit code: 64 for flags that cannot run, 69 when the bus is
    /// unavailable, 3 when a run broke invariants, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Usage(_) => 64,
            LoadError::Broken { .. } => 3,
            LoadError::StartServer(_) | LoadError::Connect(_) => 69,
            LoadError::Bus { .. }
            | LoadError::Timeout { .. }
            | LoadError::Unexpected(_)
            | LoadError::Report(_) => 1,
        }
    }

    /// A [`LoadError::Bus`] for `step`.
    pub fn bus(step: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        LoadError::Bus {
            step: step.into(),
            reason: reason.to_string(),
        }
    }
}
