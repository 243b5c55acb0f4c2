//! The command line: global flags and one variant per subcommand.

use std::path::PathBuf;
use std::time::Duration;

use beacon_core::connect::NatsArgs;
use clap::{Parser, Subcommand, ValueEnum};

/// Operate Beacon over NATS.
#[derive(Debug, Parser)]
#[command(name = "beaconctl", version, about = "Operate Beacon over NATS")]
pub struct Cli {
    /// How to reach NATS.
    #[command(flatten)]
    pub nats: NatsArgs,

    /// How to print results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,

    /// How long to wait for a reply or a bus operation, e.g. `5s`, `500ms`.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format for results. Errors and warnings always go to stderr as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns and short sentences, for people.
    Table,
    /// JSON, for scripts.
    Json,
    /// Comma-separated values with a header line, for spreadsheets
    /// (`status` and `sla report`).
    Csv,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a page config locally, then store it through the decider.
    Apply {
        /// The page config TOML file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Validate a page config locally; does not connect to NATS.
    Validate {
        /// The page config TOML file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Show the current status of every component (KV bucket `status`).
    Status {
        /// Only components of this page.
        #[arg(long)]
        page: Option<String>,
    },
    /// Print live messages as they are published (core NATS, not a replay).
    Tail {
        /// Subject to subscribe to; wildcards allowed.
        #[arg(long, default_value = "beacon.>")]
        subject: String,
        /// Stop after this many messages; by default run until Ctrl-C.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// The bus topology: streams, KV buckets and the object store.
    Bus {
        /// What to do with it.
        #[command(subcommand)]
        command: BusCommand,
    },
    /// SLA reports, computed by the recorder.
    Sla {
        /// What to do.
        #[command(subcommand)]
        command: SlaCommand,
    },
}

/// `beaconctl sla …`.
#[derive(Debug, Subcommand)]
pub enum SlaCommand {
    /// Uptime per component against its target, error budgets, incidents
    /// and MTTR for one month or one year (UTC).
    Report {
        /// The page.
        #[arg(long)]
        page: String,
        /// A month, `YYYY-MM`.
        #[arg(long, conflicts_with = "year", required_unless_present = "year")]
        month: Option<String>,
        /// A year, `YYYY`.
        #[arg(long)]
        year: Option<String>,
    },
}

/// `beaconctl bus …`.
#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Create what is missing and update what an older version configured;
    /// what a newer version configured is left alone. Needs a NATS user
    /// with stream rights (the `admin` user of deploy/nats).
    Ensure {
        /// Replicas of every stream and bucket (3 in a NATS cluster).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// Check that everything exists at this topology version or newer;
    /// exits 69 naming what is missing or older. Changes nothing.
    Verify {
        /// Replicas the topology is expected to have.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "beaconctl",
            "status",
            "--page",
            "demo",
            "--output",
            "json",
            "--timeout",
            "2s",
        ])
        .expect("parses");
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.timeout, Duration::from_secs(2));
        assert!(matches!(cli.command, Command::Status { page: Some(ref p) } if p == "demo"));
    }

    #[test]
    fn sla_report_takes_a_month_or_a_year() {
        let cli = Cli::try_parse_from([
            "beaconctl",
            "sla",
            "report",
            "--page",
            "demo",
            "--month",
            "2026-10",
            "--output",
            "csv",
        ])
        .expect("parses");
        assert_eq!(cli.output, OutputFormat::Csv);
        assert!(
            matches!(cli.command, Command::Sla { command: SlaCommand::Report { ref month, .. } } if month.as_deref() == Some("2026-10"))
        );
        for bad in [
            vec!["beaconctl", "sla", "report", "--page", "demo"],
            vec![
                "beaconctl",
                "sla",
                "report",
                "--page",
                "demo",
                "--month",
                "2026-10",
                "--year",
                "2026",
            ],
        ] {
            assert!(Cli::try_parse_from(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tail_count_must_be_positive() {
        assert!(Cli::try_parse_from(["beaconctl", "tail", "--count", "0"]).is_err());
        let cli = Cli::try_parse_from(["beaconctl", "tail", "--count", "3"]).expect("parses");
        assert!(
            matches!(cli.command, Command::Tail { count: Some(3), ref subject } if subject == "beacon.>")
        );
    }
}
