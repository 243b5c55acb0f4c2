//! `beacon-edge`: see the library crate for what it does. The edge needs
//! no bus to serve, so it starts without NATS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use beacon_core::daemon::{config_exit, EXIT_START};
use beacon_core::shutdown::Shutdown;
use beacon_core::telemetry::{init_tracing, serve_admin, LogFormat, Metrics, Readiness};
use beacon_edge::EdgeConfig;
use clap::Parser;

/// Serves published status pages to users.
#[derive(Debug, Parser)]
#[command(name = "beacon-edge", version)]
struct Args {
    /// Address to serve users on.
    #[arg(long, env = "BEACON_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Origin directory the publisher writes to.
    #[arg(long, env = "BEACON_ORIGIN")]
    origin: PathBuf,
    /// Page served at `/`.
    #[arg(long, env = "BEACON_PAGE")]
    page: String,
    /// Address of the admin port (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "BEACON_ADMIN_ADDR", default_value = "127.0.0.1:0")]
    admin_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "BEACON_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Longest time shutdown waits for in-flight requests.
    #[arg(long, env = "BEACON_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = EdgeConfig {
        listen: args.listen,
        origin: args.origin,
        page: args.page,
    };
    if let Err(errors) = config.validate() {
        let text: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        return config_exit("edge", &text.join("\n"));
    }
    init_tracing(args.log_format);
    let shutdown = Shutdown::new(args.shutdown_grace);
    shutdown.cancel_on_signals();
    let metrics = Metrics::new("edge");
    let readiness = Readiness::default();
    if let Err(e) = serve_admin(
        args.admin_addr,
        metrics.clone(),
        readiness.clone(),
        &shutdown,
    )
    .await
    {
        eprintln!(
            "beacon-edge: cannot bind admin port {}: {e}",
            args.admin_addr
        );
        return ExitCode::from(EXIT_START);
    }
    if let Err(e) = beacon_edge::start(&config, &metrics, &readiness, &shutdown).await {
        eprintln!("beacon-edge: {e}");
        return ExitCode::from(EXIT_START);
    }
    shutdown.cancelled().await;
    readiness.set(false);
    if shutdown.wait_for_tasks().await {
        tracing::info!("Edge stopped.");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(beacon_core::daemon::EXIT_UNCLEAN)
    }
}
