//! `beacon-probe`: see the library crate for what it does.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use beacon_probe::ProbeConfig;
use beacon_runtime::daemon::{config_exit, CommonArgs, Daemon};
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
    /// This process's name within its region, in heartbeats; default
    /// `{region}-{pid}`.
    #[arg(long, env = "BEACON_PROBE_ID")]
    probe_id: Option<String>,
    /// Results kept in memory while NATS is unreachable.
    #[arg(long, env = "BEACON_OUTBOX_CAPACITY", default_value_t = 100_000)]
    outbox_capacity: usize,
    /// Most checks running at once; later checks wait (and start late).
    #[arg(long, env = "BEACON_CONCURRENCY", default_value_t = 1024)]
    concurrency: usize,
    /// Time between heartbeats on `beacon.probe.{region}.heartbeat`.
    #[arg(long, env = "BEACON_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// URL of something known to work, checked before every heartbeat: when
    /// it fails, the probe's own network is suspect.
    #[arg(long, env = "BEACON_CANARY_URL")]
    canary_url: Option<String>,
    /// Address to serve the push ingest endpoint on (`/push/{page}/{component}/{check}`),
    /// e.g. `0.0.0.0:8090`; none by default.
    #[arg(long, env = "BEACON_PUSH_LISTEN")]
    push_listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = ProbeConfig {
        probe_id: args
            .probe_id
            .unwrap_or_else(|| format!("{}-{}", args.region, std::process::id())),
        region: args.region,
        outbox_capacity: args.outbox_capacity,
        concurrency: args.concurrency,
        heartbeat_interval: args.heartbeat_interval,
        canary_url: args.canary_url,
        push_listen: args.push_listen,
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
