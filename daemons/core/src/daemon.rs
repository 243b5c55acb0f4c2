//! The life of a daemon: flags every daemon shares, start-up, and shutdown.
//!
//! `main` parses flags and validates its own config (exit 64 on bad input),
//! then calls [`Daemon::start`], hands the [`Daemon`] to the library's `run`,
//! and finally calls [`Daemon::finish`]. Tests drive the same path through
//! the real binaries.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::connect::{connect, ConnectError, NatsArgs};
use crate::hlc::HlcClock;
use crate::shutdown::{Backoff, Shutdown};
use crate::telemetry::{init_tracing, serve_admin, LogFormat, Metrics, Readiness};
use crate::topology::{ensure, Topology};

/// Exit code for invalid flags or config (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when the daemon could not start (e.g. admin port taken).
pub const EXIT_START: u8 = 69;
/// Exit code when shutdown ran out of grace time.
pub const EXIT_UNCLEAN: u8 = 70;

/// Flags every daemon takes.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// How to reach NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address of the admin port (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "BEACON_ADMIN_ADDR", default_value = "127.0.0.1:0")]
    pub admin_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "BEACON_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Longest time shutdown waits for in-flight work, e.g. `10s`.
    #[arg(long, env = "BEACON_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Replicas for streams and buckets (3 in a NATS cluster).
    #[arg(long, env = "BEACON_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

/// A started daemon: bus handles, telemetry and the shutdown path.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Daemon name, e.g. `decider`.
    pub name: &'static str,
    /// Region or `global`; written as the origin of every event.
    pub origin: String,
    /// NATS client.
    pub client: async_nats::Client,
    /// JetStream context.
    pub js: jetstream::Context,
    /// Hybrid logical clock for event timestamps.
    pub clock: Arc<HlcClock>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Readiness flag behind `/readyz`.
    pub readiness: Readiness,
    /// Shutdown path.
    pub shutdown: Shutdown,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
}

/// Why a daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The admin port could not be bound.
    #[error("cannot bind admin port {addr}: {reason}")]
    Admin {
        /// Address asked for.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// NATS could not be set up.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Shutdown began while the topology was being created.
    #[error("shutdown began before the bus topology was ready")]
    Cancelled,
}

impl StartError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            StartError::Connect(
                ConnectError::Credentials { .. } | ConnectError::HalfUserPassword,
            ) => ExitCode::from(EXIT_CONFIG),
            StartError::Connect(ConnectError::Cancelled) | StartError::Cancelled => {
                ExitCode::SUCCESS
            }
            _ => ExitCode::from(EXIT_START),
        }
    }
}

impl Daemon {
    /// Starts logging, the admin port, the NATS connection (retrying until it
    /// works or a signal arrives) and ensures the bus topology.
    pub async fn start(
        name: &'static str,
        origin: &str,
        args: &CommonArgs,
    ) -> Result<Daemon, StartError> {
        init_tracing(args.log_format);
        let shutdown = Shutdown::new(args.shutdown_grace);
        shutdown.cancel_on_signals();
        let metrics = Metrics::new(name);
        let readiness = Readiness::default();
        let admin_addr = serve_admin(
            args.admin_addr,
            metrics.clone(),
            readiness.clone(),
            &shutdown,
        )
        .await
        .map_err(|e| StartError::Admin {
            addr: args.admin_addr,
            reason: e.to_string(),
        })?;
        tracing::info!(daemon = name, admin = %admin_addr, nats = %args.nats.url, "Starting.");

        let client = connect(&args.nats, &format!("beacon-{name}"), &shutdown).await?;
        let js = jetstream::new(client.clone());
        let topology = Topology {
            replicas: args.replicas,
            ..Topology::default()
        };
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        loop {
            match ensure(&js, &topology).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "Cannot set up streams and buckets, retrying.");
                    if !shutdown.sleep(delay).await {
                        return Err(StartError::Cancelled);
                    }
                }
            }
        }
        Ok(Daemon {
            name,
            origin: origin.to_owned(),
            client,
            js,
            clock: Arc::new(HlcClock::new()),
            metrics,
            readiness,
            shutdown,
            admin_addr,
        })
    }

    /// Waits for tracked tasks (bounded by the grace period), drains the NATS
    /// client so buffered publishes go out, and returns the exit code.
    pub async fn finish(self) -> ExitCode {
        self.shutdown.cancel();
        self.readiness.set(false);
        let clean = self.shutdown.wait_for_tasks().await;
        if let Err(e) = self.client.drain().await {
            tracing::warn!(error = %e, "Draining the NATS connection failed.");
        }
        if clean {
            tracing::info!(daemon = self.name, "Stopped.");
            ExitCode::SUCCESS
        } else {
            tracing::error!(
                daemon = self.name,
                "Shutdown grace period ran out with work in flight."
            );
            ExitCode::from(EXIT_UNCLEAN)
        }
    }
}

/// Prints every config error to stderr and returns exit code 64.
pub fn config_exit(daemon: &str, errors: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("beacon-{daemon}: invalid configuration\n{errors}");
    ExitCode::from(EXIT_CONFIG)
}
