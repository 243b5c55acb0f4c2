//! `beacon-recorder`: records probe results and status changes in ClickHouse.

use std::process::ExitCode;

use beacon_core::daemon::{config_exit, CommonArgs, Daemon};
use beacon_recorder::config::ClickHouseArgs;
use clap::Parser;

/// Records probe results and status changes in ClickHouse.
#[derive(Parser)]
#[command(name = "beacon-recorder", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.clickhouse.validate() {
        Ok(config) => config,
        Err(errors) => return config_exit("recorder", &errors),
    };
    let daemon = match Daemon::start("recorder", "global", &cli.common).await {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("beacon-recorder: {e}");
            return e.exit_code();
        }
    };
    let result = beacon_recorder::run(&daemon, config).await;
    let code = daemon.finish().await;
    match result {
        Ok(()) => code,
        Err(e) => {
            tracing::error!(error = %e, "Recorder failed.");
            e.exit_code()
        }
    }
}
