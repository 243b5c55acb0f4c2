//! `beacon-edge`: see the library crate for what it does. The edge needs
//! no bus to serve, so it starts without NATS; with `--mirror` it also
//! mirrors the `pages` object store, connecting in the background.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use beacon_bucket::S3Settings;
use beacon_edge::mirror::Source;
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
    /// Mirror the `pages` object store into --origin (needs --nats-url);
    /// it is preferred over --mirror-s3 while it answers.
    #[arg(long, env = "BEACON_MIRROR")]
    mirror: bool,
    /// Also mirror an S3-compatible bucket the publisher writes to
    /// (`https://s3.example.com/<bucket>`); repeat for several, in order of
    /// preference. Keys from BEACON_S3_ACCESS_KEY and BEACON_S3_SECRET_KEY.
    #[arg(long = "mirror-s3", env = "BEACON_MIRROR_S3", value_delimiter = ',')]
    mirror_s3: Vec<String>,
    /// The region S3 requests are signed for.
    #[arg(long, env = "BEACON_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// How often a bucket is read for new versions.
    #[arg(long, env = "BEACON_MIRROR_POLL", default_value = "2s", value_parser = humantime::parse_duration)]
    mirror_poll: Duration,
    /// A page whose newest version is older than this is served as stale
    /// ("live updates are paused", degradation level 2). Keep it above the
    /// publisher's --refresh.
    #[arg(long, env = "BEACON_STALE_AFTER", default_value = "3m", value_parser = humantime::parse_duration)]
    stale_after: Duration,
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
    let mut errors = Vec::new();
    let mut mirror = Vec::new();
    if args.mirror {
        mirror.push(Source::ObjectStore(args.nats.clone()));
    }
    let (access_key, secret_key) = (
        std::env::var("BEACON_S3_ACCESS_KEY").unwrap_or_default(),
        std::env::var("BEACON_S3_SECRET_KEY").unwrap_or_default(),
    );
    for text in &args.mirror_s3 {
        match S3Settings::parse(text, &args.s3_region, &access_key, &secret_key) {
            Ok(settings) => mirror.push(Source::S3(settings)),
            Err(e) => errors.push(format!("--mirror-s3: {e}")),
        }
    }
    let config = EdgeConfig {
        listen: args.listen,
        origin: args.origin,
        page: args.page,
        hosts: args.hosts,
        scan_interval: args.scan_interval,
        max_connections: args.max_connections,
        max_sse_clients: args.max_sse_clients,
        mirror,
        mirror_poll: args.mirror_poll,
        stale_after: args.stale_after,
        api_url: args.api_url,
        write_timeout: args.write_timeout,
    };
    if let Err(more) = config.validate() {
        errors.extend(more);
    }
    if !errors.is_empty() {
        return config_exit("edge", &errors);
    }
    Process::run_main("edge", &args.process, |process| {
        beacon_edge::run(process, config)
    })
    .await
}
