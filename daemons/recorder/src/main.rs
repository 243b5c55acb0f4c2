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
        Err(errors) => {
            let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            return config_exit("recorder", &errors);
        }
    };
    Daemon::run_main("recorder", "global", &cli.common, |daemon| async move {
        beacon_recorder::run(&daemon, config).await
    })
    .await
}
