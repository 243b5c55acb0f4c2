//! `beacon-api`: see the library crate for what it does.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use beacon_runtime::daemon::{config_exit, CommonArgs, Daemon};
use clap::Parser;

/// Beacon's HTTP API: API keys, the operators' routes, Statuspage's
/// management routes, public sign-up.
#[derive(Debug, Parser)]
#[command(name = "beacon-api", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Region this daemon runs in, written as the origin of its events.
    #[arg(long, env = "BEACON_REGION", default_value = "global")]
    region: String,
    /// Where the HTTP API listens.
    #[arg(long, env = "BEACON_API_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// How long the owning daemon may take to answer, e.g. `5s`.
    #[arg(long, env = "BEACON_API_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Public sign-up requests per minute per client address.
    #[arg(long, env = "BEACON_API_PER_ADDRESS", default_value_t = 30)]
    per_address_per_minute: u32,
    /// A peer (CIDR) whose `X-Forwarded-For` names the client, e.g. the
    /// edge; repeat for several. Other peers are the client themselves.
    #[arg(long = "trusted-proxy", env = "BEACON_API_TRUSTED_PROXY", value_delimiter = ',',
        default_values = ["127.0.0.0/8", "::1/128"])]
    trusted_proxy: Vec<ipnet::IpNet>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut errors = Vec::new();
    if let Err(e) = beacon_contract::names::check_token(&args.region) {
        errors.push(format!("--region: {e}"));
    }
    if args.timeout.is_zero() || args.timeout > Duration::from_secs(60) {
        errors.push("--timeout must be above zero and at most 60s".to_owned());
    }
    if args.per_address_per_minute == 0 {
        errors.push("--per-address-per-minute must be at least 1".to_owned());
    }
    if !errors.is_empty() {
        return config_exit("api", &errors);
    }
    let settings = beacon_api::ApiSettings {
        listen: args.listen,
        timeout: args.timeout,
        per_address_per_minute: args.per_address_per_minute,
        trusted_proxies: args.trusted_proxy,
    };
    Daemon::run_main("api", &args.region, &args.common, |daemon| {
        beacon_api::run(daemon, settings)
    })
    .await
}
