//! `beacon-publisher`: see the library crate for what it does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use beacon_core::daemon::{config_exit, CommonArgs, Daemon};
use beacon_publisher::PublisherConfig;
use clap::Parser;

/// Renders status pages and publishes them atomically to origin directories.
#[derive(Debug, Parser)]
#[command(name = "beacon-publisher", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Origin directory to publish to; repeat for several.
    #[arg(
        long = "origin",
        env = "BEACON_ORIGINS",
        value_delimiter = ',',
        required = true
    )]
    origins: Vec<PathBuf>,
    /// Quiet time after a change before rendering, e.g. `200ms`.
    #[arg(long, env = "BEACON_DEBOUNCE", default_value = "200ms", value_parser = humantime::parse_duration)]
    debounce: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = PublisherConfig {
        origins: args.origins,
        debounce: args.debounce,
    };
    if let Err(errors) = config.validate() {
        return config_exit("publisher", &errors);
    }
    Daemon::run_main("publisher", "global", &args.common, |daemon| {
        beacon_publisher::run(daemon, config)
    })
    .await
}
