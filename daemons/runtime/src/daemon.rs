//! The life of a daemon: flags every daemon shares, start-up, and shutdown.
//!
//! `main` parses flags and validates its own config (exit 64 with every
//! error, via [`config_exit`]), then hands its library's `run` to
//! [`Daemon::run_main`], which starts, runs, shuts down and picks the exit
//! code. The edge serves without the bus, so it uses the same path one level
//! down, [`Process::run_main`]. Tests drive the same code through the real
//! binaries.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::connect::{connect, ConnectError, NatsArgs};
use crate::degradation::Degradation;
use crate::retry::{until_ok, Class, Classify, RetryPolicy};
use crate::shutdown::Shutdown;
use crate::telemetry::{init_tracing, serve_admin, LogFormat, MetricError, Metrics, Readiness};
use beacon_contract::hlc::HlcClock;
use beacon_contract::topology::{ensure, not_ready, verify, EnsureError, Topology};

/// Exit code when `run` failed after a successful start.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for invalid flags or config (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when the daemon could not start (e.g. admin port taken).
pub const EXIT_START: u8 = 69;
/// Exit code when shutdown ran out of grace time.
pub const EXIT_UNCLEAN: u8 = 70;

/// Flags every process takes, with or without the bus.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ProcessArgs {
    /// Address of the admin port (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "BEACON_ADMIN_ADDR", default_value = "127.0.0.1:0")]
    pub admin_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "BEACON_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Longest time shutdown waits for in-flight work, e.g. `10s`.
    #[arg(long, env = "BEACON_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// Flags every daemon on the bus takes.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// Admin port, logs, shutdown.
    #[command(flatten)]
    pub process: ProcessArgs,
    /// How to reach NATS.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Replicas for streams and buckets (3 in a NATS cluster).
    #[arg(long, env = "BEACON_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    /// What to do about the bus topology at start: `auto` verifies and
    /// applies it only when something is missing or older, `ensure` always
    /// applies it, `verify` only checks (for NATS users without stream
    /// rights; an operator runs `beaconctl bus ensure`).
    #[arg(long, env = "BEACON_TOPOLOGY", value_enum, default_value = "auto")]
    pub topology: TopologyMode,
}

impl CommonArgs {
    /// The flags of a process run in-process (by a test or a load
    /// generator) against the NATS server at `nats_url`: no credentials, an
    /// admin port the OS picks, text logs, one replica, `--topology auto`,
    /// and `shutdown_grace`.
    pub fn in_process(nats_url: String, shutdown_grace: Duration) -> Self {
        Self {
            process: ProcessArgs {
                admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                log_format: LogFormat::Text,
                shutdown_grace,
            },
            nats: NatsArgs {
                url: nats_url,
                creds: None,
                user: None,
                password: None,
            },
            replicas: 1,
            topology: TopologyMode::Auto,
        }
    }
}

/// How a daemon treats the bus topology at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopologyMode {
    /// Verify; apply only when something is missing or older.
    Auto,
    /// Always apply (create, update what an older build configured).
    Ensure,
    /// Only check; wait (not ready) until an operator has applied it.
    Verify,
}

/// A started process: telemetry, the admin port and the shutdown path.
#[derive(Debug, Clone)]
pub struct Process {
    /// Process name, e.g. `decider`.
    pub name: &'static str,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Readiness flag behind `/readyz`.
    pub readiness: Readiness,
    /// The degradation level this process sees, from its causes.
    pub degradation: Degradation,
    /// Shutdown path.
    pub shutdown: Shutdown,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
}

/// A started daemon: a [`Process`] plus its bus handles.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Telemetry and shutdown.
    pub process: Process,
    /// Region or `global`; written as the origin of every event.
    pub origin: String,
    /// NATS client.
    pub client: async_nats::Client,
    /// JetStream context.
    pub js: jetstream::Context,
    /// Hybrid logical clock for event timestamps.
    pub clock: Arc<HlcClock>,
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
    /// A metric could not be registered (a bug).
    #[error(transparent)]
    Metric(#[from] MetricError),
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

impl Process {
    /// Starts logging, signal handling and the admin port.
    pub async fn start(name: &'static str, args: &ProcessArgs) -> Result<Process, StartError> {
        init_tracing(args.log_format);
        let shutdown = Shutdown::new(args.shutdown_grace);
        shutdown.cancel_on_signals();
        let metrics = Metrics::new(name);
        let degradation = Degradation::new(&metrics)?;
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
        tracing::info!(process = name, admin = %admin_addr, "Starting.");
        Ok(Process {
            name,
            metrics,
            readiness,
            degradation,
            shutdown,
            admin_addr,
        })
    }

    /// Begins shutdown and waits for tracked tasks, bounded by the grace
    /// period; true when they all finished.
    async fn stop(&self) -> bool {
        self.shutdown.cancel();
        self.readiness.set(false);
        self.shutdown.wait_for_tasks().await
    }

    /// Stops the process and returns its exit code.
    pub async fn finish(self) -> ExitCode {
        let clean = self.stop().await;
        stopped(self.name, clean)
    }

    /// Starts the process, runs `run` until it returns, stops, and returns
    /// the exit code. For processes that do not use the bus.
    pub async fn run_main<F, Fut, E>(name: &'static str, args: &ProcessArgs, run: F) -> ExitCode
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let process = match Process::start(name, args).await {
            Ok(process) => process,
            Err(e) => return start_failed(name, &e),
        };
        let result = run(process.clone()).await;
        outcome(name, result, process.finish().await)
    }
}

impl Daemon {
    /// Starts the [`Process`], connects to NATS (retrying until it works or
    /// a signal arrives) and ensures the bus topology.
    pub async fn start(
        name: &'static str,
        origin: &str,
        args: &CommonArgs,
    ) -> Result<Daemon, StartError> {
        let process = Process::start(name, &args.process).await?;
        let shutdown = &process.shutdown;
        let client = connect(&args.nats, &format!("beacon-{name}"), shutdown).await?;
        let js = jetstream::new(client.clone());
        let topology = Topology {
            replicas: args.replicas,
            ..Topology::default()
        };
        let policy = RetryPolicy::new(Duration::from_millis(250), Duration::from_secs(10));
        let prepared = until_ok(shutdown, policy, "set up the bus topology", || {
            prepare_topology(&js, &topology, args.topology)
        })
        .await;
        if prepared.is_err() {
            return Err(StartError::Cancelled);
        }
        shutdown.spawn(crate::degradation::watch_bus(
            client.clone(),
            process.degradation.clone(),
            shutdown.clone(),
        ));
        Ok(Daemon {
            process,
            origin: origin.to_owned(),
            client,
            js,
            clock: Arc::new(HlcClock::new()),
        })
    }

    /// Waits for tracked tasks (bounded by the grace period), drains the NATS
    /// client so buffered publishes go out, and returns the exit code.
    pub async fn finish(self) -> ExitCode {
        let clean = self.process.stop().await;
        if let Err(e) = self.client.drain().await {
            tracing::warn!(error = %e, "Draining the NATS connection failed.");
        }
        stopped(self.process.name, clean)
    }

    /// Starts the daemon, runs `run` until it returns (at shutdown), stops,
    /// and returns the exit code.
    pub async fn run_main<F, Fut, E>(
        name: &'static str,
        origin: &str,
        args: &CommonArgs,
        run: F,
    ) -> ExitCode
    where
        F: FnOnce(Daemon) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let daemon = match Daemon::start(name, origin, args).await {
            Ok(daemon) => daemon,
            Err(e) => return start_failed(name, &e),
        };
        let result = run(daemon.clone()).await;
        outcome(name, result, daemon.finish().await)
    }
}

/// Why the topology is not usable yet.
#[derive(Debug, thiserror::Error)]
enum TopologyError {
    #[error(transparent)]
    Bus(#[from] EnsureError),
    #[error("the bus topology is not in place: {}; an operator runs `beaconctl bus ensure`", .0.join("; "))]
    NotReady(Vec<String>),
}

impl Classify for TopologyError {
    fn class(&self) -> Class {
        Class::Retryable
    }
}

/// Verifies and/or applies the topology as `mode` says.
async fn prepare_topology(
    js: &jetstream::Context,
    topology: &Topology,
    mode: TopologyMode,
) -> Result<(), TopologyError> {
    if mode == TopologyMode::Ensure {
        ensure(js, topology).await?;
        return Ok(());
    }
    let missing = not_ready(&verify(js, topology).await?);
    match (mode, missing.is_empty()) {
        (_, true) => Ok(()),
        (TopologyMode::Verify, false) => Err(TopologyError::NotReady(missing)),
        (_, false) => {
            ensure(js, topology).await?;
            Ok(())
        }
    }
}

fn start_failed(name: &str, error: &StartError) -> ExitCode {
    eprintln!("beacon-{name}: {error}");
    error.exit_code()
}

fn stopped(name: &str, clean: bool) -> ExitCode {
    if clean {
        tracing::info!(process = name, "Stopped.");
        ExitCode::SUCCESS
    } else {
        tracing::error!(
            process = name,
            "Shutdown grace period ran out with work in flight."
        );
        ExitCode::from(EXIT_UNCLEAN)
    }
}

/// A failed `run` is a failed process, whatever the shutdown did.
fn outcome<E: Display>(name: &str, result: Result<(), E>, stopped: ExitCode) -> ExitCode {
    match result {
        Ok(()) => stopped,
        Err(e) => {
            tracing::error!(process = name, error = %e, "Failed.");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Prints every config error to stderr, one per line, and returns exit code 64.
pub fn config_exit(name: &str, errors: &[String]) -> ExitCode {
    let mut text = format!(
        "beacon-{name}: invalid configuration ({} error(s))",
        errors.len()
    );
    for error in errors {
        text.push_str("\n  - ");
        text.push_str(error);
    }
    eprintln!("{text}");
    ExitCode::from(EXIT_CONFIG)
}
