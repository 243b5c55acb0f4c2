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
        let text: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        return config_exit("publisher", &text.join("\n"));
    }
    let daemon = match Daemon::start("publisher", "global", &args.common).await {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("beacon-publisher: {e}");
            return e.exit_code();
        }
    };
    if let Err(e) = beacon_publisher::run(daemon.clone(), config).await {
        tracing::error!(error = %e, "Publisher failed.");
    }
    daemon.finish().await
}
