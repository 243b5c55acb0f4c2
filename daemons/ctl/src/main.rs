//! `beaconctl`: parse the command line, run it, exit with its code.

use std::io::Write;
use std::process::ExitCode;

use beaconctl::cli::Cli;
use beaconctl::exit::{EXIT_OK, EXIT_USAGE};
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits with 2 on usage errors; Beacon uses 64 (EX_USAGE).
            // `--help` and `--version` also arrive here and are not errors.
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match beaconctl::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not `eprint!`: it panics when stderr is closed.
            let _ = std::io::stderr().write_all(e.report().as_bytes());
            ExitCode::from(e.exit_code())
        }
    }
}
