//! `beacon-notifier`: see the library crate for what it does.

use std::process::ExitCode;

use beacon_core::daemon::{CommonArgs, Daemon};
use clap::Parser;

/// Delivers incident updates to subscribers.
#[derive(Debug, Parser)]
#[command(name = "beacon-notifier", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let daemon = match Daemon::start("notifier", "global", &args.common).await {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("beacon-notifier: {e}");
            return e.exit_code();
        }
    };
    beacon_notifier::run(daemon.clone()).await;
    daemon.finish().await
}
