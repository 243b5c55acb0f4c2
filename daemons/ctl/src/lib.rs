//! `beaconctl`: the operator CLI. It talks to Beacon only over NATS: writes
//! go to the owners' request/reply endpoints (`beacon.api.…`), reads come
//! from KV buckets and live subjects.
//!
//! Exit codes follow `sysexits.h`: 0 ok, 1 the server failed, 64 bad input
//! or usage, 69 NATS or the answering daemon is unavailable, 75 someone
//! else changed it first (read again, then retry).
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap derive): global flags and subcommands.
//! - [`commands`]: one module per subcommand, each an async function that
//!   does the I/O and hands data to [`output`].
//! - [`request`]: one typed request/reply call to an owner's API endpoint.
//! - [`output`]: pure rendering of tables, JSON and tail lines, plus the
//!   stdout/stderr writers.
//! - [`exit`]: the error enum every command returns, its exit code and the
//!   text printed for it.

pub mod cli;
pub mod commands;
pub mod exit;
pub mod output;
pub mod request;

use cli::{Cli, Command, OutputFormat, SlaCommand};
use exit::CtlError;

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> Result<(), CtlError> {
    let format = cli.output;
    // CSV is rows and columns; only tabular results have them.
    let tabular = matches!(cli.command, Command::Status { .. } | Command::Sla { .. });
    if format == OutputFormat::Csv && !tabular {
        return Err(CtlError::BadArgument {
            flag: "--output",
            reason: "csv is for `status` and `sla report`; use table or json".into(),
        });
    }
    match cli.command {
        Command::Validate { file } => commands::validate::run(&file, format),
        Command::Apply { file } => {
            commands::apply::run(&cli.nats, &file, format, cli.timeout).await
        }
        Command::Status { page } => {
            commands::status::run(&cli.nats, page.as_deref(), format, cli.timeout).await
        }
        Command::Tail { subject, count } => {
            commands::tail::run(&cli.nats, &subject, count, format).await
        }
        Command::Bus { command } => {
            commands::bus::run(&cli.nats, &command, format, cli.timeout).await
        }
        Command::Component { command } => {
            commands::component::run(&cli.nats, command, format, cli.timeout).await
        }
        Command::Incident { command } => {
            commands::incident::run(&cli.nats, command, format, cli.timeout).await
        }
        Command::Maintenance { command } => {
            commands::maintenance::run(&cli.nats, command, format, cli.timeout).await
        }
        Command::Apikey { command } => {
            commands::apikey::run(&cli.nats, command, format, cli.timeout).await
        }
        Command::Subscriber { command } => {
            commands::subscriber::run(&cli.nats, command, format, cli.timeout).await
        }
        Command::Changelog { command } => {
            commands::changelog::run(&cli.nats, command, format, cli.timeout).await
        }
        Command::Emergency { command } => {
            commands::emergency::run(&cli.nats, command, format, cli.timeout).await
        }
        Command::Sla {
            command: SlaCommand::Report { page, month, year },
        } => {
            commands::sla::report(
                &cli.nats,
                &page,
                month.as_deref(),
                year.as_deref(),
                format,
                cli.timeout,
            )
            .await
        }
    }
}
