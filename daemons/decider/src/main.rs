//! `beacon-decider`: see the library crate for what it does.

use std::process::ExitCode;

use beacon_core::consume::BatchArgs;
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
    #[command(flatten)]
    batch: BatchArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut errors = Vec::new();
    if let Err(e) = beacon_core::names::check_token(&args.region) {
        errors.push(format!("--region: {e}"));
    }
    let spec = beacon_decider::consumer_spec(&args.batch).unwrap_or_else(|problems| {
        errors.extend(problems);
        beacon_decider::health_spec()
    });
    if !errors.is_empty() {
        return config_exit("decider", &errors);
    }
    Daemon::run_main("decider", &args.region, &args.common, |daemon| {
        beacon_decider::run(daemon, spec)
    })
    .await
}
