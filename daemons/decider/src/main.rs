//! `beacon-decider`: see the library crate for what it does.

use std::process::ExitCode;

use beacon_runtime::consume::BatchArgs;
use beacon_runtime::daemon::{config_exit, CommonArgs, Daemon};
use beacon_runtime::lease::LeaseArgs;
use clap::Parser;

/// Turns probe evidence into component status; owns page configs,
/// overrides, incidents and maintenance.
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
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    engine: beacon_decider::EngineArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut errors = Vec::new();
    if let Err(e) = beacon_contract::names::check_token(&args.region) {
        errors.push(format!("--region: {e}"));
    }
    let settings =
        match beacon_decider::DeciderSettings::from_args(&args.batch, &args.lease, &args.engine) {
            Ok(settings) => Some(settings),
            Err(problems) => {
                errors.extend(problems);
                None
            }
        };
    let Some(settings) = settings.filter(|_| errors.is_empty()) else {
        return config_exit("decider", &errors);
    };
    Daemon::run_main("decider", &args.region, &args.common, |daemon| {
        beacon_decider::run(daemon, settings)
    })
    .await
}
