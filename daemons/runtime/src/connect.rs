//! Connecting to NATS: credentials, a client name, reconnect logging, and a
//! start-up loop that retries with backoff instead of failing or panicking.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};

use crate::retry::{until_ok, Class, Classify, GaveUp, RetryPolicy};
use crate::shutdown::Shutdown;

/// How to reach and authenticate to NATS.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats-url",
        env = "BEACON_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// NATS credentials file (JWT + NKey seed).
    #[arg(long = "nats-creds", env = "BEACON_NATS_CREDS")]
    pub creds: Option<PathBuf>,
    /// NATS user name (with --nats-password).
    #[arg(long = "nats-user", env = "BEACON_NATS_USER")]
    pub user: Option<String>,
    /// NATS password.
    #[arg(
        long = "nats-password",
        env = "BEACON_NATS_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

/// Why a connection could not be set up at all (retrying will not help).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The credentials file is missing or malformed.
    #[error("cannot read NATS credentials {path}: {reason}")]
    Credentials {
        /// Path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `--nats-user` without `--nats-password` or the other way round.
    #[error("--nats-user and --nats-password must be given together")]
    HalfUserPassword,
    /// Shutdown began before a connection was made.
    #[error("shutdown began before NATS was reachable")]
    Cancelled,
    /// A single attempt failed (only from [`connect_once`]).
    #[error("cannot connect to NATS at {url}: {reason}")]
    Unreachable {
        /// URL tried.
        url: String,
        /// What the client said.
        reason: String,
    },
}

async fn options(args: &NatsArgs, name: &str) -> Result<ConnectOptions, ConnectError> {
    let mut options = match (&args.creds, &args.user, &args.password) {
        (Some(path), _, _) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|e| ConnectError::Credentials {
                path: path.clone(),
                reason: e.to_string(),
            })?,
        (None, Some(user), Some(password)) => {
            ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        (None, None, None) => ConnectOptions::new(),
        (None, _, _) => return Err(ConnectError::HalfUserPassword),
    };
    let client_name = name.to_owned();
    options = options
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let client_name = client_name.clone();
            async move {
                match event {
                    Event::Connected => tracing::info!(client = %client_name, "Connected to NATS."),
                    Event::Disconnected => tracing::warn!(client = %client_name, "Disconnected from NATS, reconnecting."),
                    Event::ClientError(e) => tracing::warn!(client = %client_name, error = %e, "NATS client error."),
                    other => tracing::debug!(client = %client_name, event = %other, "NATS event."),
                }
            }
        });
    Ok(options)
}

/// One connection attempt; for the CLI, which should fail fast with a clear message.
pub async fn connect_once(args: &NatsArgs, name: &str) -> Result<Client, ConnectError> {
    options(args, name)
        .await?
        .connect(args.url.as_str())
        .await
        .map_err(|e| ConnectError::Unreachable {
            url: args.url.clone(),
            reason: e.to_string(),
        })
}

/// Connects, retrying with backoff and a log line per attempt until it
/// works or shutdown begins. Once connected, the client reconnects by itself.
pub async fn connect(
    args: &NatsArgs,
    name: &str,
    shutdown: &Shutdown,
) -> Result<Client, ConnectError> {
    let policy = RetryPolicy::new(Duration::from_millis(250), Duration::from_secs(10));
    let what = format!("connect to NATS at {}", args.url);
    until_ok(shutdown, policy, &what, || connect_once(args, name))
        .await
        .map_err(|e| match e {
            GaveUp::Permanent(e) => e,
            GaveUp::Shutdown => ConnectError::Cancelled,
        })
}

impl Classify for ConnectError {
    fn class(&self) -> Class {
        match self {
            ConnectError::Unreachable { .. } => Class::Retryable,
            ConnectError::Credentials { .. }
            | ConnectError::HalfUserPassword
            | ConnectError::Cancelled => Class::Permanent,
        }
    }
}
