//! `beacon-probe`: see the library crate for what it does.

use std::process::ExitCode;

use beacon_core::daemon::{config_exit, CommonArgs, Daemon};
use beacon_probe::ProbeConfig;
use clap::Parser;

/// Runs the checks of one region and publishes their results.
#[derive(Debug, Parser)]
#[command(name = "beacon-probe", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Region this probe reports as, e.g. `eu`.
    #[arg(long, env = "BEACON_REGION")]
    region: String,
    /// Results kept in memory while NATS is unreachable.
    #[arg(long, env = "BEACON_OUTBOX_CAPACITY", default_value_t = 100_000)]
    outbox_capacity: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut errors = Vec::new();
    if let Err(e) = beacon_core::names::check_token(&args.region) {
        errors.push(format!("  - --region: {e}"));
    }
    if args.outbox_capacity == 0 {
        errors.push("  - --outbox-capacity: must be at least 1".to_owned());
    }
    if !errors.is_empty() {
        return config_exit("probe", &errors.join("\n"));
    }
    let daemon = match Daemon::start("probe", &args.region, &args.common).await {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("beacon-probe: {e}");
            return e.exit_code();
        }
    };
    let config = ProbeConfig {
        region: args.region,
        outbox_capacity: args.outbox_capacity,
    };
    if let Err(e) = beacon_probe::run(daemon.clone(), config).await {
        tracing::error!(error = %e, "Probe failed.");
    }
    daemon.finish().await
}
