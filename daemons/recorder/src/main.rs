//! `beacon-recorder`: records probe results and status changes in ClickHouse.

use std::process::ExitCode;

use beacon_recorder::config::ClickHouseArgs;
use beacon_runtime::consume::BatchArgs;
use beacon_runtime::daemon::{config_exit, CommonArgs, Daemon};
use clap::Parser;

/// Records probe results and status changes in ClickHouse.
#[derive(Parser)]
#[command(name = "beacon-recorder", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    #[command(flatten)]
    batch: BatchArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.clickhouse.validate();
    let specs = beacon_recorder::consumer_specs(&cli.batch);
    let (config, specs) = match (config, specs) {
        (Ok(config), Ok(specs)) => (config, specs),
        (config, specs) => {
            let mut errors: Vec<String> = Vec::new();
            if let Err(e) = config {
                errors.extend(e.0.iter().map(ToString::to_string));
            }
            if let Err(e) = specs {
                errors.extend(e);
            }
            return config_exit("recorder", &errors);
        }
    };
    Daemon::run_main("recorder", "global", &cli.common, |daemon| async move {
        beacon_recorder::run_with(&daemon, config, specs).await
    })
    .await
}
