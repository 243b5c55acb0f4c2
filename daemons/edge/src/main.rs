//! `beacon-edge`: see the library crate for what it does. The edge needs
//! no bus to serve, so it starts without NATS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use beacon_core::daemon::{config_exit, Process, ProcessArgs};
use beacon_edge::EdgeConfig;
use clap::Parser;

/// Serves published status pages to users.
#[derive(Debug, Parser)]
#[command(name = "beacon-edge", version)]
struct Args {
    /// Address to serve users on.
    #[arg(long, env = "BEACON_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Origin directory the publisher writes to.
    #[arg(long, env = "BEACON_ORIGIN")]
    origin: PathBuf,
    /// Page served at `/`.
    #[arg(long, env = "BEACON_PAGE")]
    page: String,
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
    };
    if let Err(errors) = config.validate() {
        return config_exit("edge", &errors);
    }
    Process::run_main("edge", &args.process, |process| {
        beacon_edge::run(process, config)
    })
    .await
}
