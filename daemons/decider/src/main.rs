//! `beacon-decider`: see the library crate for what it does.

use std::process::ExitCode;

use beacon_core::daemon::{config_exit, CommonArgs, Daemon};
use clap::Parser;

/// Turns probe evidence into component status; owns page configs.
#[derive(Debug, Parser)]
#[command(name = "beacon-decider", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Region this decider runs in, written as the origin of its events.
    #[arg(long, env = "BEACON_REGION", default_value = "global")]
    region: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = beacon_core::names::check_token(&args.region) {
        return config_exit("decider", &[format!("--region: {e}")]);
    }
    Daemon::run_main("decider", &args.region, &args.common, beacon_decider::run).await
}
