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
    let config = ProbeConfig {
        region: args.region,
        outbox_capacity: args.outbox_capacity,
    };
    if let Err(errors) = config.validate() {
        return config_exit("probe", &errors);
    }
    let origin = config.region.clone();
    Daemon::run_main("probe", &origin, &args.common, |daemon| {
        beacon_probe::run(daemon, config)
    })
    .await
}
