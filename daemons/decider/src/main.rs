//! `beacon-decider`: see the library crate for what it does.

use std::process::ExitCode;

use beacon_core::daemon::{CommonArgs, Daemon};
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
        return beacon_core::daemon::config_exit("decider", &format!("  - --region: {e}"));
    }
    let daemon = match Daemon::start("decider", &args.region, &args.common).await {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("beacon-decider: {e}");
            return e.exit_code();
        }
    };
    if let Err(e) = beacon_decider::run(daemon.clone()).await {
        tracing::error!(error = %e, "Decider failed.");
    }
    daemon.finish().await
}
