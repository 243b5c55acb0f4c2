//! `lease-takeover`: how long a role is without a leader after its holder
//! is killed with `kill -9`, against the 5 s bound the design sets.
//!
//! Two holder processes (this binary's hidden `lease-hold` subcommand, each
//! running core's [`Lease`] on role `loadtest`) contend for one lease on a
//! real nats-server. Each round: find the leader, `kill -9` it (SIGKILL,
//! no release), time until the standby says it leads, then start a fresh
//! standby. The report gives every takeover, p50, p99 and max, and p99 as a
//! ratio to the bound.

use std::process::Stdio;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use beacon_contract::topology::{ensure, Topology};
use beacon_runtime::lease::{Leadership, Lease, LeaseConfig, LeaseMetrics};
use beacon_runtime::shutdown::Shutdown;
use beacon_runtime::telemetry::Metrics;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::cli::{LeaseHoldArgs, LeaseTakeoverArgs};
use crate::error::LoadError;
use crate::progress;
use crate::report::ratio;

/// The bound the design sets for a takeover after `kill -9`.
pub const BOUND: Duration = Duration::from_secs(5);

/// Role the holders contend for.
const ROLE: &str = "loadtest";

/// The line a holder prints when it becomes leader.
const LEADER_LINE: &str = "LEADER";

/// The scenario's JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseTakeoverReport {
    /// Always `lease-takeover`.
    pub scenario: &'static str,
    /// Version of the server measured.
    pub nats_server_version: String,
    /// Lease TTL, seconds.
    pub ttl_s: u64,
    /// Renewal interval, milliseconds.
    pub renew_ms: u64,
    /// Every takeover, milliseconds, in order.
    pub takeovers_ms: Vec<u64>,
    /// Median takeover.
    pub p50_ms: u64,
    /// 99th percentile takeover (nearest rank).
    pub p99_ms: u64,
    /// Slowest takeover.
    pub max_ms: u64,
    /// The bound, milliseconds.
    pub bound_ms: u64,
    /// p99 / bound: under 1 meets it.
    pub p99_vs_bound: f64,
}

/// The value at percentile `p` (0–100) of `values`, nearest rank.
pub fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl LeaseTakeoverReport {
    fn new(version: String, config: &LeaseConfig, takeovers_ms: Vec<u64>) -> Self {
        let p99 = percentile(&takeovers_ms, 99.0);
        Self {
            scenario: "lease-takeover",
            nats_server_version: version,
            ttl_s: config.ttl.as_secs(),
            renew_ms: config.renew_every.as_millis() as u64,
            p50_ms: percentile(&takeovers_ms, 50.0),
            p99_ms: p99,
            max_ms: takeovers_ms.iter().copied().max().unwrap_or(0),
            takeovers_ms,
            bound_ms: BOUND.as_millis() as u64,
            p99_vs_bound: ratio(p99 as f64, BOUND.as_millis() as f64),
        }
    }
}

/// A holder process and which one it is.
struct Holder {
    id: usize,
    child: Child,
}

/// Runs the scenario and returns its report.
pub async fn run(args: &LeaseTakeoverArgs) -> Result<LeaseTakeoverReport, LoadError> {
    let config = LeaseConfig {
        ttl: args.ttl,
        renew_every: args.renew,
        partitions: 1,
    };
    config
        .validate()
        .map_err(|e| LoadError::Unexpected(e.join("; ")))?;
    let bus = crate::server::open(args.nats_url.as_deref()).await?;
    let version = bus.client.server_info().version;
    let js = jetstream::new(bus.client.clone());
    ensure(&js, &Topology::default())
        .await
        .map_err(|e| LoadError::bus("ensure topology", e))?;
    let nats_url = match &args.nats_url {
        Some(url) => url.clone(),
        None => bus.url.clone(),
    };

    let (leaders, mut led) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut next_id = 0;
    let mut spawn =
        |leaders: &mpsc::UnboundedSender<(usize, Instant)>| -> Result<Holder, LoadError> {
            let id = next_id;
            next_id += 1;
            spawn_holder(id, &nats_url, &config, leaders.clone())
        };
    let mut holders = vec![spawn(&leaders)?, spawn(&leaders)?];
    let mut leader = wait_leader(&mut led, Duration::from_secs(30)).await?.0;
    progress(&format!("Holder {leader} leads."));

    let mut takeovers = Vec::new();
    for round in 1..=args.kills {
        let index = holders
            .iter()
            .position(|h| h.id == leader)
            .ok_or_else(|| LoadError::Unexpected(format!("leader {leader} is not running")))?;
        let mut killed = holders.remove(index);
        killed
            .child
            .start_kill()
            .map_err(|e| LoadError::Unexpected(format!("kill -9 holder {leader}: {e}")))?;
        let at = Instant::now();
        let _ = killed.child.wait().await;
        let (next, when) = wait_leader(&mut led, BOUND * 4).await?;
        let took = when.saturating_duration_since(at);
        takeovers.push(took.as_millis() as u64);
        progress(&format!(
            "Round {round}/{}: holder {leader} killed, holder {next} led after {} ms.",
            args.kills,
            took.as_millis()
        ));
        leader = next;
        holders.push(spawn(&leaders)?);
        // Let the new standby start and find the lease taken.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for holder in &mut holders {
        let _ = holder.child.start_kill();
        let _ = holder.child.wait().await;
    }
    drop(bus);
    Ok(LeaseTakeoverReport::new(version, &config, takeovers))
}

async fn wait_leader(
    led: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
    within: Duration,
) -> Result<(usize, Instant), LoadError> {
    tokio::time::timeout(within, led.recv())
        .await
        .map_err(|_| LoadError::Timeout {
            step: "a holder to take the lease".to_owned(),
            after: within,
        })?
        .ok_or_else(|| LoadError::Unexpected("every holder is gone".to_owned()))
}

fn spawn_holder(
    id: usize,
    nats_url: &str,
    config: &LeaseConfig,
    leaders: mpsc::UnboundedSender<(usize, Instant)>,
) -> Result<Holder, LoadError> {
    let exe = std::env::current_exe()
        .map_err(|e| LoadError::Unexpected(format!("cannot find this program: {e}")))?;
    let mut child = Command::new(exe)
        .args([
            "lease-hold",
            "--nats-url",
            nats_url,
            "--ttl",
            &format!("{}s", config.ttl.as_secs()),
            "--renew",
            &format!("{}ms", config.renew_every.as_millis()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadError::Unexpected(format!("spawn holder {id}: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| LoadError::Unexpected(format!("holder {id} has no stdout")))?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with(LEADER_LINE) {
                let _ = leaders.send((id, Instant::now()));
            }
        }
    });
    Ok(Holder { id, child })
}

/// The hidden `lease-hold` subcommand: hold the lease when possible and
/// print `LEADER <term>` on stdout each time it is acquired. Runs until
/// killed.
pub async fn hold(args: &LeaseHoldArgs) -> Result<String, LoadError> {
    let client = async_nats::connect(&args.nats_url)
        .await
        .map_err(|e| LoadError::bus("connect", e))?;
    let js = jetstream::new(client);
    let config = LeaseConfig {
        ttl: args.ttl,
        renew_every: args.renew,
        partitions: 1,
    };
    let metrics = LeaseMetrics::register(&Metrics::new("loadtest"))
        .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    let lease = Lease::open(&js, ROLE, 0, config, metrics)
        .await
        .map_err(|e| LoadError::bus("open lease", e))?;
    let (sender, mut leadership) = tokio::sync::watch::channel(Leadership::Follower);
    let shutdown = Shutdown::new(Duration::from_secs(1));
    tokio::spawn(lease.run(shutdown, sender));
    loop {
        if leadership.changed().await.is_err() {
            return Ok(String::new());
        }
        if let Leadership::Leader { term } = *leadership.borrow() {
            println!("{LEADER_LINE} {term}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=20).map(|n| n * 100).collect();
        assert_eq!(percentile(&values, 50.0), 1000);
        assert_eq!(percentile(&values, 99.0), 2000);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn the_report_compares_p99_with_the_bound() {
        let report = LeaseTakeoverReport::new(
            "2.15.1".into(),
            &LeaseConfig::default(),
            vec![3000, 3500, 4000],
        );
        assert_eq!(report.p50_ms, 3500);
        assert_eq!(report.p99_ms, 4000);
        assert_eq!(report.p99_vs_bound, 0.8);
        assert_eq!(report.ttl_s, 3);
    }
}
