//! `beacon-edge`: see the library crate for what it does. The edge needs
//! no bus to serve, so it starts without NATS; with `--mirror` it also
//! mirrors the `pages` object store, connecting in the background.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use beacon_edge::{parse_host, EdgeConfig};
use beacon_runtime::connect::NatsArgs;
use beacon_runtime::daemon::{config_exit, Process, ProcessArgs};
use clap::Parser;

/// Serves published status pages to users.
#[derive(Debug, Parser)]
#[command(name = "beacon-edge", version)]
struct Args {
    /// Address to serve users on.
    #[arg(long, env = "BEACON_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Origin directory the publisher writes to (or the mirror fills).
    #[arg(long, env = "BEACON_ORIGIN")]
    origin: PathBuf,
    /// Page served at `/`; every page is also served at `/{page}/`.
    #[arg(long, env = "BEACON_PAGE")]
    page: Option<String>,
    /// A custom domain: `status.example.com=demo`; repeat for several.
    /// A page's config `url` names its domain too.
    #[arg(long = "host", value_parser = parse_host)]
    hosts: Vec<(String, String)>,
    /// How often the origin directory is looked at for new versions.
    #[arg(long, env = "BEACON_SCAN_INTERVAL", default_value = "100ms", value_parser = humantime::parse_duration)]
    scan_interval: Duration,
    /// Most connections at once; more are closed at once.
    #[arg(long, env = "BEACON_MAX_CONNECTIONS", default_value_t = 50_000)]
    max_connections: usize,
    /// Most live-update clients at once; more get 503 and poll instead.
    #[arg(long, env = "BEACON_MAX_SSE_CLIENTS", default_value_t = 40_000)]
    max_sse_clients: usize,
    /// Mirror the `pages` object store into --origin (needs --nats-url).
    #[arg(long, env = "BEACON_MIRROR")]
    mirror: bool,
    /// The HTTP API (`http://host:port`) that answers public sign-up:
    /// `POST /api/v2/subscribers.json` and the confirm and unsubscribe
    /// links are forwarded there; without it they are 404.
    #[arg(long, env = "BEACON_API_URL")]
    api_url: Option<String>,
    /// How long a client whose socket is full has to take the next 16 KiB
    /// of its responses before its connection is closed.
    #[arg(long, env = "BEACON_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    write_timeout: Duration,
    /// How to reach NATS for --mirror.
    #[command(flatten)]
    nats: NatsArgs,
    /// Admin port, logs, shutdown.
    #[command(flatten)]
    process: ProcessArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = EdgeConfig {
        listen: args.listen,
        origin: args.origin,
        page: args.page,
        hosts: args.hosts,
        scan_interval: args.scan_interval,
        max_connections: args.max_connections,
        max_sse_clients: args.max_sse_clients,
        mirror: args.mirror.then_some(args.nats),
        api_url: args.api_url,
        write_timeout: args.write_timeout,
    };
    if let Err(errors) = config.validate() {
        return config_exit("edge", &errors);
    }
    Process::run_main("edge", &args.process, |process| {
        beacon_edge::run(process, config)
    })
    .await
}
