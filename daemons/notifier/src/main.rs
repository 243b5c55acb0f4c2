//! `beacon-notifier`: see the library crate for what it does.

use std::process::ExitCode;

use beacon_notifier::settings::{NotifierArgs, Settings};
use beacon_runtime::daemon::{config_exit, CommonArgs, Daemon};
use clap::Parser;

/// A fan-out builds and drops a message per delivery; mimalloc keeps that
/// off the critical path (glibc's malloc took about a quarter of the time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tells subscribers about incidents, maintenance and status changes.
#[derive(Debug, Parser)]
#[command(name = "beacon-notifier", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    notifier: NotifierArgs,
    /// Region this notifier runs in, written as the origin of its events.
    #[arg(long, env = "BEACON_REGION", default_value = "global")]
    region: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut errors = Vec::new();
    if let Err(e) = beacon_contract::names::check_token(&args.region) {
        errors.push(format!("--region: {e}"));
    }
    let settings = match Settings::from_args(&args.notifier) {
        Ok(settings) => Some(settings),
        Err(problems) => {
            errors.extend(problems);
            None
        }
    };
    let Some(settings) = settings.filter(|_| errors.is_empty()) else {
        return config_exit("notifier", &errors);
    };
    Daemon::run_main("notifier", &args.region, &args.common, |daemon| {
        beacon_notifier::run(daemon, settings)
    })
    .await
}
