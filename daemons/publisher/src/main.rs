//! `beacon-publisher`: see the library crate for what it does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use beacon_publisher::s3::S3Settings;
use beacon_publisher::PublisherConfig;
use beacon_runtime::daemon::{config_exit, CommonArgs, Daemon};
use clap::Parser;

/// Renders status pages and publishes them atomically to origin
/// directories, the `pages` object store and S3-compatible buckets; serves
/// the changelog API.
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
    /// An S3-compatible bucket to publish to as well, path style:
    /// `https://s3.example.com/<bucket>`; repeat for several. Keys from
    /// BEACON_S3_ACCESS_KEY and BEACON_S3_SECRET_KEY.
    #[arg(long = "s3-origin", env = "BEACON_S3_ORIGINS", value_delimiter = ',')]
    s3_origins: Vec<String>,
    /// The region S3 requests are signed for.
    #[arg(long, env = "BEACON_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Longest one origin may take to take one version before it is left
    /// behind (and retried with the newest version).
    #[arg(long, env = "BEACON_ORIGIN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    origin_timeout: Duration,
    /// Render every page again at least this often, so its time shows the
    /// pipeline is alive; keep it below the edges' --stale-after.
    #[arg(long, env = "BEACON_REFRESH", default_value = "60s", value_parser = humantime::parse_duration)]
    refresh: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (access_key, secret_key) = (
        std::env::var("BEACON_S3_ACCESS_KEY").unwrap_or_default(),
        std::env::var("BEACON_S3_SECRET_KEY").unwrap_or_default(),
    );
    let mut errors = Vec::new();
    let mut s3_origins = Vec::new();
    for text in &args.s3_origins {
        match S3Settings::parse(text, &args.s3_region, &access_key, &secret_key) {
            Ok(settings) => s3_origins.push(settings),
            Err(e) => errors.push(format!("--s3-origin: {e}")),
        }
    }
    let config = PublisherConfig {
        origins: args.origins,
        object_store: args.object_store,
        debounce: args.debounce,
        region: args.region,
        s3_origins,
        origin_timeout: args.origin_timeout,
        refresh: args.refresh,
    };
    if let Err(more) = config.validate() {
        errors.extend(more);
    }
    if !errors.is_empty() {
        return config_exit("publisher", &errors);
    }
    let origin = config.region.clone().unwrap_or_else(|| "global".to_owned());
    Daemon::run_main("publisher", &origin, &args.common, |daemon| {
        beacon_publisher::run(daemon, config)
    })
    .await
}
