//! `beacon-publisher`: see the library crate for what it does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use beacon_publisher::PublisherConfig;
use beacon_runtime::daemon::{config_exit, CommonArgs, Daemon};
use clap::Parser;

/// Renders status pages and publishes them atomically to origin directories
/// and the `pages` object store; serves the changelog API.
#[derive(Debug, Parser)]
#[command(name = "beacon-publisher", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Origin directory to publish to; repeat for several.
    #[arg(long = "origin", env = "BEACON_ORIGINS", value_delimiter = ',')]
    origins: Vec<PathBuf>,
    /// Also publish every page to the `pages` object store, which edges
    /// in other places mirror.
    #[arg(long, env = "BEACON_OBJECT_STORE", default_value_t = true, action = clap::ArgAction::Set)]
    object_store: bool,
    /// Quiet time after a change before rendering, e.g. `200ms`; at most 5s.
    #[arg(long, env = "BEACON_DEBOUNCE", default_value = "200ms", value_parser = humantime::parse_duration)]
    debounce: Duration,
    /// Region this publisher runs in (with its own leaf server, see
    /// deploy/nats/regions/leaf.conf): its page also shows what the
    /// region wrote while cut off from the others.
    #[arg(long, env = "BEACON_REGION")]
    region: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = PublisherConfig {
        origins: args.origins,
        object_store: args.object_store,
        debounce: args.debounce,
        region: args.region,
    };
    if let Err(errors) = config.validate() {
        return config_exit("publisher", &errors);
    }
    let origin = config.region.clone().unwrap_or_else(|| "global".to_owned());
    Daemon::run_main("publisher", &origin, &args.common, |daemon| {
        beacon_publisher::run(daemon, config)
    })
    .await
}
