//! The command line: global flags and one variant per subcommand.

use std::path::PathBuf;
use std::time::Duration;

use beacon_runtime::connect::NatsArgs;
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
    /// Components: override a status, hand it back to automation, explain it.
    Component {
        /// What to do.
        #[command(subcommand)]
        command: ComponentCommand,
    },
    /// Incidents: proposed ones included.
    Incident {
        /// What to do.
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Maintenance windows, one-off and recurring.
    Maintenance {
        /// What to do.
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// HTTP API keys (served by the api daemon).
    Apikey {
        /// What to do.
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Subscribers of a page (served by the notifier).
    Subscriber {
        /// What to do.
        #[command(subcommand)]
        command: SubscriberCommand,
    },
    /// The changelog: entries with markdown, categories and images,
    /// through the publisher.
    Changelog {
        /// What to do.
        #[command(subcommand)]
        command: ChangelogCommand,
    },
    /// A static notice written straight into origin directories, without
    /// NATS or any daemon; `down` takes it away again.
    Emergency {
        /// What to do.
        #[command(subcommand)]
        command: EmergencyCommand,
    },
    /// SLA reports, computed by the recorder.
    Sla {
        /// What to do.
        #[command(subcommand)]
        command: SlaCommand,
    },
}

/// Who a write is recorded as: `--actor`, `BEACON_ACTOR`, else `$USER`.
#[derive(Debug, Clone, clap::Args)]
pub struct ActorArgs {
    /// Who is making the change (recorded in the event).
    #[arg(long, env = "BEACON_ACTOR")]
    pub actor: Option<String>,
}

impl ActorArgs {
    /// The actor to record.
    pub fn name(&self) -> String {
        self.actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| "operator".to_owned())
    }
}

/// `beaconctl component …`.
#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Override a component's status; it wins over automation until it is
    /// cleared or expires.
    Set {
        /// Page id.
        page: String,
        /// Component id.
        component: String,
        /// operational, degraded_performance, partial_outage, major_outage or under_maintenance.
        status: String,
        /// How long it applies, e.g. `30m`; by default until cleared.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Clear a component's override: automation decides again.
    Clear {
        /// Page id.
        page: String,
        /// Component id.
        component: String,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Why a component has its status: rule, regions, sample results,
    /// override, maintenance and incidents.
    Explain {
        /// Page id.
        page: String,
        /// Component id.
        component: String,
    },
    /// Every component of a page with its status.
    List {
        /// Page id.
        page: String,
    },
}

/// What an incident change says besides its id.
#[derive(Debug, Clone, clap::Args)]
pub struct IncidentChangeArgs {
    /// Page id.
    pub page: String,
    /// Incident id.
    pub incident: String,
    /// The revision you saw (from `incident show`); refused if it changed since.
    #[arg(long)]
    pub revision: Option<u64>,
    /// Text for users (markdown).
    #[arg(long, short = 'm', default_value = "")]
    pub message: String,
    /// Who.
    #[command(flatten)]
    pub actor: ActorArgs,
}

/// `beaconctl incident …`.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open and proposed incidents of a page (with `--all`, every one).
    List {
        /// Page id.
        page: String,
        /// Include resolved and dismissed incidents.
        #[arg(long)]
        all: bool,
    },
    /// One incident with its timeline.
    Show {
        /// Page id.
        page: String,
        /// Incident id.
        incident: String,
    },
    /// Open an incident.
    Create {
        /// Page id.
        page: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// none, minor, major or critical.
        #[arg(long, default_value = "minor")]
        impact: String,
        /// investigating, identified or monitoring.
        #[arg(long)]
        state: Option<String>,
        /// The first update's text.
        #[arg(long, short = 'm', default_value = "")]
        message: String,
        /// An affected component and the status it shows, `api=major_outage`; repeat for more.
        #[arg(long = "component")]
        components: Vec<String>,
        /// A key of yours: retrying with it never opens a second incident.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Add an update to the timeline.
    Update {
        /// The incident and the update text.
        #[command(flatten)]
        change: IncidentChangeArgs,
        /// investigating, identified, monitoring or resolved.
        #[arg(long)]
        state: Option<String>,
        /// Affected components from now on, `api=partial_outage`; repeat for more.
        #[arg(long = "component")]
        components: Vec<String>,
        /// A new title.
        #[arg(long)]
        title: Option<String>,
        /// A new impact.
        #[arg(long)]
        impact: Option<String>,
    },
    /// Correct the title, impact or affected components without a
    /// timeline entry.
    Edit {
        /// The incident.
        #[command(flatten)]
        change: IncidentChangeArgs,
        /// A new title.
        #[arg(long)]
        title: Option<String>,
        /// A new impact.
        #[arg(long)]
        impact: Option<String>,
        /// Affected components from now on, `api=partial_outage`; repeat for more.
        #[arg(long = "component")]
        components: Vec<String>,
    },
    /// Resolve it; its components go back to operational unless named.
    Resolve {
        /// The incident and the closing text.
        #[command(flatten)]
        change: IncidentChangeArgs,
    },
    /// Confirm a proposed incident: it goes on the page and notifies.
    Confirm {
        /// The incident and an optional first update.
        #[command(flatten)]
        change: IncidentChangeArgs,
        /// A better title.
        #[arg(long)]
        title: Option<String>,
        /// A different impact.
        #[arg(long)]
        impact: Option<String>,
    },
    /// Dismiss a proposed incident (the message is the reason).
    Dismiss {
        /// The incident and the reason.
        #[command(flatten)]
        change: IncidentChangeArgs,
    },
    /// Publish the postmortem of a resolved incident (the message is its text).
    Postmortem {
        /// The incident and the postmortem.
        #[command(flatten)]
        change: IncidentChangeArgs,
    },
}

/// What a maintenance change says besides its id.
#[derive(Debug, Clone, clap::Args)]
pub struct MaintenanceChangeArgs {
    /// Page id.
    pub page: String,
    /// Maintenance id.
    pub maintenance: String,
    /// The revision you saw; refused if it changed since.
    #[arg(long)]
    pub revision: Option<u64>,
    /// Text for users.
    #[arg(long, short = 'm', default_value = "")]
    pub message: String,
    /// Who.
    #[command(flatten)]
    pub actor: ActorArgs,
}

/// `beaconctl maintenance …`.
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Schedule a window, or a recurring series with `--recurrence`.
    Schedule {
        /// Page id.
        page: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Start: RFC 3339 (`2026-12-01T03:00:00Z`), `now`, or `+DURATION` from now (`+2h`).
        #[arg(long)]
        start: String,
        /// End, as `--start`; or give `--duration`.
        #[arg(long, conflicts_with = "duration")]
        end: Option<String>,
        /// Length of the window, e.g. `1h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// A component under maintenance; repeat for more.
        #[arg(long = "component", required = true)]
        components: Vec<String>,
        /// `RRULE:FREQ=WEEKLY;BYDAY=TU` or a cron expression (`0 3 * * TUE`), in UTC.
        #[arg(long)]
        recurrence: Option<String>,
        /// Reminder before the start, e.g. `1h` (the default); `0s` for none.
        #[arg(long, value_parser = humantime::parse_duration)]
        remind_before: Option<Duration>,
        /// How long it stays verifying after its end, e.g. `10m`.
        #[arg(long, value_parser = humantime::parse_duration)]
        verify_for: Option<Duration>,
        /// Text for users.
        #[arg(long, short = 'm', default_value = "")]
        message: String,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Start a scheduled window now.
    Start {
        /// The window.
        #[command(flatten)]
        change: MaintenanceChangeArgs,
    },
    /// Move a running window to verifying.
    Verify {
        /// The window.
        #[command(flatten)]
        change: MaintenanceChangeArgs,
    },
    /// Complete a running window now.
    Complete {
        /// The window.
        #[command(flatten)]
        change: MaintenanceChangeArgs,
    },
    /// Cancel a window, or a series and its occurrences not yet begun.
    Cancel {
        /// The window.
        #[command(flatten)]
        change: MaintenanceChangeArgs,
    },
    /// Windows of a page not yet over (with `--all`, every one).
    List {
        /// Page id.
        page: String,
        /// Include completed and cancelled windows.
        #[arg(long)]
        all: bool,
    },
}

/// `beaconctl apikey …`.
#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; it is shown this once (only its hash is stored).
    Create {
        /// The page the key may act on.
        #[arg(long)]
        page: String,
        /// A name for people, e.g. "ci deploys".
        #[arg(long)]
        name: String,
        /// What it may do, e.g. incidents:write; repeat for more.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Requests per minute (default 600).
        #[arg(long)]
        rate_per_minute: Option<u32>,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// List keys (never their secrets).
    List {
        /// Only the keys of this page.
        #[arg(long)]
        page: Option<String>,
    },
    /// Revoke a key: it is refused from now on.
    Revoke {
        /// Key id (the part after `bk_`, before the second `_`).
        id: String,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
}

/// Where a new subscriber is told.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EndpointArgs {
    /// Email address.
    #[arg(long)]
    pub email: Option<String>,
    /// Phone number for SMS, E.164 (`+15551234567`).
    #[arg(long)]
    pub sms: Option<String>,
    /// Webhook URL.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Slack incoming-webhook URL.
    #[arg(long)]
    pub slack: Option<String>,
    /// Teams incoming-webhook URL.
    #[arg(long)]
    pub teams: Option<String>,
}

/// `beaconctl subscriber …`.
#[derive(Debug, Subcommand)]
pub enum SubscriberCommand {
    /// Subscribe someone who agreed (or, with `--double-opt-in`, send them a
    /// confirmation link first).
    Add {
        /// Page id.
        page: String,
        /// Endpoints, in order of preference: email, sms, webhook, slack, teams.
        #[command(flatten)]
        endpoints: EndpointArgs,
        /// A component of interest; repeat for more (none: the whole page).
        #[arg(long = "component")]
        components: Vec<String>,
        /// A component whose updates go at once, never batched; repeat for more.
        #[arg(long = "instant")]
        instant: Vec<String>,
        /// `every` endpoint (default) or the `first` one only.
        #[arg(long, default_value = "every")]
        dedup: String,
        /// Also send the weekly changelog digest (email).
        #[arg(long)]
        digest: bool,
        /// Send email endpoints a confirmation link; they get nothing else
        /// until it is followed.
        #[arg(long)]
        double_opt_in: bool,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Every subscriber of a page (addresses included).
    List {
        /// Page id.
        page: String,
    },
    /// One subscriber, with its webhook secret.
    Show {
        /// Page id.
        page: String,
        /// Subscriber id.
        subscriber: String,
    },
    /// Remove a subscriber.
    Remove {
        /// Page id.
        page: String,
        /// Subscriber id.
        subscriber: String,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Import subscribers from CSV (header: email,sms,webhook,slack,teams,
    /// components,instant,dedup,digest; any subset; lists separated by `|`).
    Import {
        /// Page id.
        page: String,
        /// The CSV file (`-` for stdin).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Send email endpoints a confirmation link instead of treating the
        /// people as having agreed.
        #[arg(long)]
        double_opt_in: bool,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Export a page's subscribers as CSV (the import format, with `id` and
    /// each endpoint's state).
    Export {
        /// Page id.
        page: String,
        /// Write here instead of stdout.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
    },
    /// Erase an address, or a subscriber, everywhere (GDPR); only a keyed
    /// hash stays, so it is not imported again.
    Erase {
        /// Page id.
        page: String,
        /// The email address, phone number or URL.
        #[arg(
            long,
            conflicts_with = "subscriber",
            required_unless_present = "subscriber"
        )]
        address: Option<String>,
        /// Or the subscriber id.
        #[arg(long)]
        subscriber: Option<String>,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
}

/// `beaconctl changelog …`.
#[derive(Debug, Subcommand)]
pub enum ChangelogCommand {
    /// Publish a new entry.
    Publish {
        /// Page id.
        page: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// `new_feature`, `improvement`, `fix` or `announcement`.
        #[arg(long)]
        category: String,
        /// A component the entry is about; repeat for more.
        #[arg(long = "component")]
        components: Vec<String>,
        /// The text, markdown.
        #[arg(long, short = 'm', conflicts_with = "body_file")]
        message: Option<String>,
        /// Read the text (markdown) from a file.
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// An image to upload (png, jpg, gif, webp, at most 512 KiB); the
        /// text shows it with `![alt](assets/NAME)`. Repeat for more.
        #[arg(long = "image")]
        images: Vec<PathBuf>,
        /// Publication date: RFC 3339, `now` or `+DURATION`; default now.
        #[arg(long)]
        published_at: Option<String>,
        /// Makes a retried publish the same entry.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Change an entry; what is not given stays.
    Edit {
        /// Page id.
        page: String,
        /// Entry id.
        entry: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New category.
        #[arg(long)]
        category: Option<String>,
        /// New components (replace the old ones); repeat for more.
        #[arg(long = "component")]
        components: Vec<String>,
        /// New text, markdown.
        #[arg(long, short = 'm', conflicts_with = "body_file")]
        message: Option<String>,
        /// Read the new text from a file.
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// An image to add; repeat for more.
        #[arg(long = "image")]
        images: Vec<PathBuf>,
        /// New publication date.
        #[arg(long)]
        published_at: Option<String>,
        /// The revision you saw; refused if it changed since.
        #[arg(long)]
        revision: Option<u64>,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Withdraw an entry from the page and the feeds.
    Delete {
        /// Page id.
        page: String,
        /// Entry id.
        entry: String,
        /// The revision you saw; refused if it changed since.
        #[arg(long)]
        revision: Option<u64>,
        /// Who.
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// Entries of a page, newest first (with `--all`, withdrawn ones too).
    List {
        /// Page id.
        page: String,
        /// Include withdrawn entries.
        #[arg(long)]
        all: bool,
    },
}

/// Where `beaconctl emergency` puts or takes down its notice.
#[derive(Debug, Clone, clap::Args)]
pub struct EmergencyTargets {
    /// Page id.
    #[arg(long)]
    pub page: String,
    /// An origin directory the edges serve; repeat for several.
    #[arg(long = "origin")]
    pub origins: Vec<PathBuf>,
    /// Also the `pages` object store mirroring edges follow (needs NATS,
    /// no daemon).
    #[arg(long)]
    pub object_store: bool,
    /// Also an S3-compatible bucket mirroring edges follow
    /// (`https://s3.example.com/<bucket>`); repeat for several. Keys from
    /// BEACON_S3_ACCESS_KEY and BEACON_S3_SECRET_KEY.
    #[arg(long = "s3-origin")]
    pub s3_origins: Vec<String>,
    /// The region S3 requests are signed for.
    #[arg(long, env = "BEACON_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// A DNS responder's state directory on this machine (its
    /// `--state-dir`): its `TXT _status.<host>` answers the title first
    /// until `down`; repeat for several.
    #[arg(long = "dns-state-dir")]
    pub dns_state_dirs: Vec<PathBuf>,
}

/// `beaconctl emergency …`.
#[derive(Debug, Subcommand)]
pub enum EmergencyCommand {
    /// Put a notice up: it replaces the page's `index.html` on every edge
    /// serving or mirroring these origins until `down`.
    Up {
        /// Where.
        #[command(flatten)]
        targets: EmergencyTargets,
        /// Headline.
        #[arg(long)]
        title: String,
        /// Text (plain; blank lines separate paragraphs).
        #[arg(long, short = 'm')]
        message: String,
    },
    /// Take the notice down; the last published page shows again.
    Down {
        /// Where.
        #[command(flatten)]
        targets: EmergencyTargets,
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
        /// Regions with a leaf server of their own (deploy/nats/regions/
        /// leaf.conf), comma-separated: each gets its regional stream in its
        /// own JetStream domain, and INCIDENTS and MAINTENANCE source them.
        #[arg(long, value_delimiter = ',')]
        regions: Vec<String>,
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
