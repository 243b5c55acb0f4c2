//! The command line: one subcommand per scenario.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Beacon load tests; each prints one JSON object on stdout.
#[derive(Debug, Parser)]
#[command(name = "beacon-loadtest", version, about)]
pub struct Cli {
    /// Also write a plot of the report here (SVG): latency and throughput
    /// over the run, and the distribution of the key latency.
    #[arg(long, global = true)]
    pub plot: Option<std::path::PathBuf>,
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// What the bus itself can do: core publish, JetStream publish with
    /// async and awaited acks, and consume-and-ack.
    BusBaseline(BaselineArgs),
    /// Core's pipelined publisher and batch consumer against the raw bus
    /// doing the same work, in the same run.
    CoreBus(CoreBusArgs),
    /// Time from `kill -9` of a lease holder to its standby leading, over
    /// repeated kills, against the 5 s bound.
    LeaseTakeover(LeaseTakeoverArgs),
    /// Probe results through one real decider process against raw
    /// consume-and-ack in the same run, and result-to-status-change latency.
    Decider(DeciderArgs),
    /// The recorder: rows/s into ClickHouse against raw consume and
    /// clickhouse-client in the same run, publish-to-queryable latency, and
    /// the SLA report time for a large page.
    Recorder(RecorderArgs),
    /// Authenticated incident updates through the HTTP API against the
    /// decider's own bus API in the same run.
    Api(ApiArgs),
    /// One incident update fanned out by a real notifier to a million
    /// subscribers with mixed channels, to loopback receivers (Postfix's
    /// smtp-sink for email); deliveries/s per channel against each
    /// receiver's raw capacity measured in the same run, and peak RSS.
    Notifier(NotifierArgs),
    /// Internal: hold a lease and print `LEADER <term>` when acquired (the
    /// processes `lease-takeover` kills).
    #[command(hide = true)]
    LeaseHold(LeaseHoldArgs),
    /// One probe process against local HTTP targets: checks/s with
    /// keep-alive and with a new connection per check, scheduling
    /// lateness, RSS with 500,000 checks scheduled, and Prometheus
    /// blackbox_exporter probing the same target in the same run.
    ProbeFleet(ProbeFleetArgs),
    /// Internal: an HTTP target answering `200 ok` on every path, printing
    /// `LISTENING <addr>` (the target `probe-fleet` checks).
    #[command(hide = true)]
    HttpTarget,
    /// Rendering a 50-component page with 90-day uptime bars (every file
    /// of the site), against serializing its inputs in the same run.
    Render(RenderArgs),
    /// The release edge against nginx (one worker) serving the same files
    /// in the same run, under wrk on loopback.
    Edge(EdgeBenchArgs),
    /// 10,000 concurrent SSE clients on one edge receiving a change.
    Sse(SseArgs),
    /// The whole stack under status flips, operator incidents, maintenance
    /// and a fan-out to `--subscribers`, while a seeded schedule kills,
    /// pauses and cuts off daemons and restarts NATS and ClickHouse; then
    /// every invariant is checked. Exits 3 when one is broken, 64 when the
    /// schedule cannot run.
    Chaos(ChaosArgs),
    /// Three regions on this machine (the lab of `beacon-lab`), round after
    /// round: lose a region (kill -9, NATS servers included) and cut one
    /// off, with operators writing on every side; takeover times per
    /// singleton role, failed page requests, convergence after the heal.
    Regions(RegionsArgs),
    /// The DNS responder with the shipped check settings and two edges:
    /// one dies round after round; how long until it is no longer handed
    /// out, and handed out again after it returns.
    DnsFailover(DnsFailoverArgs),
    /// Queries per second answered by the DNS responder against NSD
    /// serving the same records from a static zone, same load, same run.
    DnsRate(DnsRateArgs),
    /// The end-to-end detection time: a target taken down and brought back
    /// each round; from its change to the STATUS event, the edge's JSON, a
    /// live-update client, the first email and the first webhook, against
    /// the configured detection bound.
    Detect(DetectArgs),
    /// Plots a report written before (`results/*.json`) as SVG, as
    /// `--plot` does for a run.
    Plot(PlotArgs),
}

/// Flags of `plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// The report (one scenario's JSON).
    pub report: std::path::PathBuf,
    /// Where the SVG goes.
    pub out: std::path::PathBuf,
}

/// Flags of `detect`.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// Rounds; each takes the target down and brings it back.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
}

/// Flags of `dns-failover`.
#[derive(Debug, Clone, Args)]
pub struct DnsFailoverArgs {
    /// How many times the edge dies.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub kills: u64,
}

/// Flags of `dns-rate`.
#[derive(Debug, Clone, Args)]
pub struct DnsRateArgs {
    /// Queries in flight at once (one socket each).
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub concurrency: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Runs per server, alternating; the report gives each and the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub runs: u64,
}

/// Flags of `regions`.
#[derive(Debug, Clone, Args)]
pub struct RegionsArgs {
    /// Rounds; each loses a region and then cuts one off.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
}

/// Flags of `chaos`. The schedule's flags are taken as written and checked
/// together, so every problem is reported at once (exit 64).
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Seed of the fault schedule and the workload.
    #[arg(long, default_value = "1")]
    pub seed: String,
    /// Length of the run (faults and workload), e.g. `10m`; at least 30s.
    #[arg(long, default_value = "10m")]
    pub duration: String,
    /// Fault kinds, separated by commas.
    #[arg(
        long,
        default_value = "kill,pause,cut,partition,nats-restart,clickhouse-restart"
    )]
    pub faults: String,
    /// Mean time between one fault's repair and the next fault.
    #[arg(long, default_value = "15s")]
    pub fault_every: String,
    /// Mean time between incidents opened.
    #[arg(long, default_value = "45s")]
    pub incident_every: String,
    /// Subscribers following component `core`: every incident there fans
    /// out to all of them.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub subscribers: u64,
    /// Subscribers following the whole page or component `side`.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub few: u64,
    /// Longest wait after the run for the stack to catch up before checking.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Write each daemon's log into this directory at the end.
    #[arg(long)]
    pub logs: Option<std::path::PathBuf>,
}

/// Flags of `render`.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// Components on the page.
    #[arg(long, default_value_t = 50)]
    pub components: usize,
    /// Renders measured.
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
}

/// Flags of `edge`.
#[derive(Debug, Clone, Args)]
pub struct EdgeBenchArgs {
    /// Components on the page served.
    #[arg(long, default_value_t = 50)]
    pub components: usize,
    /// Runs of every case (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// wrk duration of each measurement.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// wrk connections.
    #[arg(long, default_value_t = 50)]
    pub connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// The edge's worker threads (`TOKIO_WORKER_THREADS`): 1 is like for
    /// like with nginx's one worker.
    #[arg(long, default_value_t = 1)]
    pub edge_threads: usize,
    /// wrk binary (Debian's `wrk`).
    #[arg(long, default_value = "wrk")]
    pub wrk: String,
    /// nginx binary (Debian's `nginx`).
    #[arg(long, default_value = "nginx")]
    pub nginx: String,
}

/// Flags of `sse`.
#[derive(Debug, Clone, Args)]
pub struct SseArgs {
    /// Concurrent clients (each needs a file descriptor here and one in the
    /// edge: raise `ulimit -n` above this).
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
}

/// Flags of `probe-fleet`.
#[derive(Debug, Clone, Args)]
pub struct ProbeFleetArgs {
    /// NATS server to use; without it a private nats-server is started.
    #[arg(long = "nats-url")]
    pub nats_url: Option<String>,
    /// Checks per second scheduled with keep-alive.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keepalive_rate: u64,
    /// Checks per second scheduled with a new connection per check.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub new_connection_rate: u64,
    /// Interval of every check in the rate phases (checks = rate × interval).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Time the probe runs before measuring.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Time measured in each phase.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub measure: Duration,
    /// The probe's `--concurrency`.
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Checks scheduled in the memory phase (0 skips it).
    #[arg(long, default_value_t = 500_000)]
    pub memory_checks: u64,
    /// blackbox_exporter binary (Debian's `prometheus-blackbox-exporter`);
    /// the phase is skipped when it is not found.
    #[arg(long, default_value = "prometheus-blackbox-exporter")]
    pub blackbox: String,
    /// Concurrent `/probe` requests driving blackbox_exporter.
    #[arg(long, default_value_t = 64)]
    pub blackbox_workers: usize,
    /// Longest any wait (checks scheduled, a process ready) may take.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
}

/// Flags of `lease-takeover`.
#[derive(Debug, Clone, Args)]
pub struct LeaseTakeoverArgs {
    /// NATS server to use; without it a private nats-server is started.
    #[arg(long = "nats-url")]
    pub nats_url: Option<String>,
    /// How many times the leader is killed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub kills: u64,
    /// Lease TTL (whole seconds).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Lease renewal interval.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub renew: Duration,
}

/// Flags of `decider`.
#[derive(Debug, Clone, Args)]
pub struct DeciderArgs {
    /// NATS server to use; without it a private nats-server is started.
    #[arg(long = "nats-url")]
    pub nats_url: Option<String>,
    /// Components, each checked from every region.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    pub components: u64,
    /// Regions (at most 8).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub regions: u64,
    /// Pages the components are spread over.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub pages: u64,
    /// Results per (component, region) in each throughput run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub rounds: u64,
    /// Throughput runs; the report gives each and the medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub runs: u64,
    /// Waves of components that fail and recover in the latency phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub latency_waves: u64,
    /// Components per wave.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub latency_components: u64,
    /// Write the decider's log to this file at the end, for looking into a
    /// slow run.
    #[arg(long)]
    pub decider_log: Option<std::path::PathBuf>,
    /// Results per second of other components during the latency phase.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    pub background_rate: u64,
    /// Longest any phase may take.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
}

/// Flags of `notifier`.
#[derive(Debug, Clone, Args)]
pub struct NotifierArgs {
    /// NATS server to use; without it a private nats-server is started.
    #[arg(long = "nats-url")]
    pub nats_url: Option<String>,
    /// Subscribers of the page.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub subscribers: u64,
    /// Share of subscribers per channel, in percent:
    /// `email=70,webhook=12,slack=6,teams=6,sms=6`.
    #[arg(long, default_value = "email=70,webhook=12,slack=6,teams=6,sms=6")]
    pub mix: String,
    /// Messages each raw-capacity baseline sends.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub raw_messages: u64,
    /// Connections (SMTP) or requests in flight (HTTP) of the raw baselines.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub raw_concurrency: u64,
    /// Path of the smtp-sink binary (Postfix; `scripts/install-deps --bench`).
    #[arg(long, default_value = "/usr/sbin/smtp-sink")]
    pub smtp_sink: std::path::PathBuf,
    /// The notifier's `--notify-batch`.
    #[arg(long, default_value_t = 1000)]
    pub notify_batch: u64,
    /// The notifier's `--send-concurrency`.
    #[arg(long, default_value_t = 256)]
    pub send_concurrency: u64,
    /// The notifier's `--sender-batches`.
    #[arg(long, default_value_t = 4)]
    pub sender_batches: u64,
    /// The email account's `concurrency` in the bench page: SMTP
    /// connections the notifier keeps open to the sink (the raw baseline
    /// uses `--raw-concurrency`). More is not faster here: 128 delivered
    /// 14,235/s and 32 13,333/s (load average 3.4) against 15,398/s with 64
    /// (2.5), email alone, 300,000.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub email_concurrency: u64,
    /// Write the notifier's log to this file at the end.
    #[arg(long)]
    pub notifier_log: Option<std::path::PathBuf>,
    /// Longest any phase may take.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
}

/// Flags of `recorder`.
#[derive(Debug, Clone, Args)]
pub struct RecorderArgs {
    /// Probe results per throughput run.
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1_000..))]
    pub results: u64,
    /// Throughput runs; the report gives each and the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub runs: u64,
    /// Results per second in the latency phase.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub latency_rate: u64,
    /// Seconds the latency phase publishes for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub latency_seconds: u64,
    /// Components of the SLA report's page.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sla_components: u64,
    /// Days of history behind the SLA report.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=365))]
    pub sla_days: u64,
    /// Longest any single phase may take.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
}

/// Flags of `api`.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// NATS server to use; without it a private nats-server is started.
    #[arg(long = "nats-url")]
    pub nats_url: Option<String>,
    /// Updates per path.
    #[arg(long, default_value_t = 4_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub requests: u64,
    /// Clients at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub workers: u64,
    /// Incidents each client owns (updates spread over them).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub incidents_per_worker: u64,
    /// Longest any phase may take.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
}

/// Flags of the internal `lease-hold`.
#[derive(Debug, Clone, Args)]
pub struct LeaseHoldArgs {
    /// NATS server.
    #[arg(long = "nats-url")]
    pub nats_url: String,
    /// Lease TTL.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Lease renewal interval.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub renew: Duration,
}

/// Flags of `core-bus`: the baseline's, plus the batch consumer's settings.
#[derive(Debug, Clone, Args)]
pub struct CoreBusArgs {
    /// Server, message count, payload, runs, in-flight acks and timeouts.
    #[command(flatten)]
    pub bus: BaselineArgs,
    /// Most messages per batch for the batch consumer.
    #[arg(long, default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub batch_size: usize,
    /// Batches the batch consumer handles at once.
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub batch_concurrency: usize,
}

/// Flags of `bus-baseline`.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    /// NATS server to measure; without it a private nats-server is started
    /// (and stopped) for the run.
    #[arg(long = "nats-url")]
    pub nats_url: Option<String>,
    /// Messages per measurement (core, JetStream async, consume).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Repetitions; the report gives each run and the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub runs: u64,
    /// Most JetStream publish acks awaited at once in the async measurement.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub max_in_flight: u64,
    /// Divisor for the awaited-ack measurement, which is much slower:
    /// it publishes `messages / sync-divisor` messages (at least one).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub sync_divisor: u64,
    /// Longest any single measurement may take before the run is abandoned.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
}

impl BaselineArgs {
    /// Messages published one awaited ack at a time.
    pub fn sync_messages(&self) -> u64 {
        (self.messages / self.sync_divisor).max(1)
    }
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
    fn defaults_match_the_documented_scenario() {
        let cli = Cli::try_parse_from(["beacon-loadtest", "bus-baseline"]).expect("parses");
        let Scenario::BusBaseline(args) = cli.scenario else {
            panic!("parsed bus-baseline")
        };
        assert_eq!(args.nats_url, None);
        assert_eq!(
            (args.messages, args.payload_bytes, args.runs),
            (100_000, 256, 3)
        );
        assert_eq!(args.sync_messages(), 5_000);
        assert_eq!(args.max_in_flight, 1024);
    }

    #[test]
    fn sync_count_is_at_least_one() {
        let cli = Cli::try_parse_from(["beacon-loadtest", "bus-baseline", "--messages", "5"])
            .expect("parses");
        let Scenario::BusBaseline(args) = cli.scenario else {
            panic!("parsed bus-baseline")
        };
        assert_eq!(args.sync_messages(), 1);
        assert!(Cli::try_parse_from(["beacon-loadtest", "bus-baseline", "--runs", "0"]).is_err());
    }
}
