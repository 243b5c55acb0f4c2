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
    Daemon::run_main("notifier", "global", &args.common, beacon_notifier::run).await
}
