//! `beacon-loadtest`: parse the command line, run one scenario, print its
//! JSON report on stdout, exit with a code that says how it went.

use std::io::Write;
use std::process::ExitCode;

use beacon_loadtest::cli::Cli;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // A flag that cannot work is bad input: exit 64 (sysexits' EX_USAGE)
    // before anything starts, like every other Beacon command; help and
    // the version are not errors.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
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
