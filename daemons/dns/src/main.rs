//! `beacon-dns`: see the library crate for what it does. It answers
//! without NATS (from the statuses it keeps on disk), so it starts without
//! it and connects in the background.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use beacon_dns::config::DnsConfig;
use beacon_dns::Settings;
use beacon_runtime::connect::NatsArgs;
use beacon_runtime::daemon::{config_exit, Process, ProcessArgs};
use clap::Parser;

/// Answers DNS for status pages: healthy edges, and status in TXT.
#[derive(Debug, Parser)]
#[command(name = "beacon-dns", version)]
struct Args {
    /// Address to answer DNS on, UDP and TCP.
    #[arg(long, env = "BEACON_DNS_LISTEN", default_value = "127.0.0.1:5353")]
    listen: SocketAddr,
    /// The responder's configuration: edges and host names
    /// (`deploy/dns/beacon-dns.toml`).
    #[arg(long, env = "BEACON_DNS_CONFIG")]
    config: PathBuf,
    /// Where the last known statuses are kept.
    #[arg(long, env = "BEACON_STATE_DIR", default_value = "/var/lib/beacon-dns")]
    state_dir: PathBuf,
    /// How to reach NATS for KV `status`.
    #[command(flatten)]
    nats: NatsArgs,
    /// Admin port, logs, shutdown.
    #[command(flatten)]
    process: ProcessArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match DnsConfig::load(&args.config) {
        Ok(config) => config,
        Err(errors) => return config_exit("dns", &errors),
    };
    let settings = Settings {
        listen: args.listen,
        config,
        state_dir: args.state_dir,
        nats: args.nats,
    };
    Process::run_main("dns", &args.process, |process| {
        beacon_dns::run(process, settings)
    })
    .await
}
