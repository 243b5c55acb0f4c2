//! `beacon-loadtest`: parse the command line, run one scenario, print its
//! JSON report on stdout, exit with a code that says how it went.

use std::io::Write;
use std::process::ExitCode;

use beacon_loadtest::cli::Cli;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match beacon_loadtest::run(cli).await {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{report}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    beacon_loadtest::progress(&format!("cannot write the report: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            if let beacon_loadtest::error::LoadError::Broken { report, .. } = &e {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{report}").and_then(|()| stdout.flush());
            }
            beacon_loadtest::progress(&format!("error: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}
