//! `probe-fleet`: what one probe process does against local HTTP targets,
//! next to Prometheus blackbox_exporter probing the same target in the
//! same run.
//!
//! Phases, each with a fresh `beacon-probe` process (the release build
//! next to this binary) on a private nats-server, and one HTTP target
//! process (this binary's hidden `http-target`, keep-alive, `200 ok`):
//!
//! 1. **keep-alive**: `--keepalive-rate` × `--interval` HTTP checks with
//!    `keep_alive = true` (pooled connections).
//! 2. **new connection**: `--new-connection-rate` × `--interval` checks
//!    with `keep_alive = false` (connect and close every run).
//!
//!    Each writes its page configs into KV `config` (500 checks a page, as
//!    the decider would store them), waits until the probe has scheduled
//!    them all, runs `--warmup`, then measures `--measure`: checks/s from
//!    the probe's `beacon_probe_checks_total`, results stored/s from the
//!    HEALTH stream, scheduling lateness p50/p99 from
//!    `beacon_probe_schedule_lateness_seconds` (upper bounds of the
//!    histogram buckets), and the probe's CPU time from `/proc`.
//! 3. **blackbox**: blackbox_exporter (`--blackbox`) with an `http_2xx`
//!    module, driven by `--blackbox-workers` concurrent `/probe` requests
//!    for `--measure`: probes/s, and its CPU time. It opens a connection
//!    per probe, like phase 2.
//! 4. **memory**: `--memory-checks` checks (interval 1h) scheduled in one
//!    probe; its resident memory once they are all scheduled.
//!
//! Ratios: each Beacon phase's checks/s over blackbox_exporter's probes/s,
//! and checks per CPU-second over probes per CPU-second for the
//! like-for-like phase 2.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use beacon_contract::event::Envelope;
use beacon_contract::hlc::HlcClock;
use beacon_contract::names::{KV_CONFIG, STREAM_HEALTH};
use beacon_contract::topology::{ensure, Topology};
use beacon_page::config::{
    Check, CheckTarget, Component, HttpMethod, HttpTarget, PageConfig, Quorum,
};
use beacon_testkit::DaemonProcess;
use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::ProbeFleetArgs;
use crate::error::LoadError;
use crate::progress;
use crate::report::ratio;

/// Region the benchmark's probe runs as.
const REGION: &str = "bench";
/// Checks per page config (a page stays well under NATS's 1 MiB payload).
const PER_PAGE: u64 = 500;
/// The line the target prints once it listens.
const LISTENING: &str = "LISTENING";

/// One Beacon rate phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatePhase {
    /// `keep_alive` of every check.
    pub keep_alive: bool,
    /// Checks scheduled.
    pub scheduled_checks: u64,
    /// Checks per second the schedule asks for.
    pub target_rate: f64,
    /// Checks run per second.
    pub checks_per_s: f64,
    /// Results stored in HEALTH per second.
    pub stored_per_s: f64,
    /// Checks that did not pass (should be 0 against the local target).
    pub failed: u64,
    /// Median scheduling lateness, upper bound of its histogram bucket (ms).
    pub lateness_p50_ms_at_most: f64,
    /// 99th percentile lateness, upper bound of its bucket (ms).
    pub lateness_p99_ms_at_most: f64,
    /// Mean lateness (ms).
    pub lateness_mean_ms: f64,
    /// Runs skipped (overlap or behind).
    pub skipped: u64,
    /// Results dropped by the outbox.
    pub dropped: u64,
    /// CPU seconds the probe used while measured.
    pub probe_cpu_s: f64,
    /// Checks per CPU-second of the probe.
    pub checks_per_cpu_s: f64,
}

/// The blackbox_exporter phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlackboxPhase {
    /// `prometheus-blackbox-exporter --version`, first line.
    pub version: String,
    /// Concurrent `/probe` requests.
    pub workers: usize,
    /// Successful probes per second.
    pub probes_per_s: f64,
    /// Probes that failed.
    pub failed: u64,
    /// CPU seconds blackbox_exporter used while measured.
    pub cpu_s: f64,
    /// Probes per CPU-second.
    pub probes_per_cpu_s: f64,
}

/// The memory phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPhase {
    /// Checks scheduled.
    pub scheduled_checks: u64,
    /// Resident memory once scheduled and settled (MiB).
    pub rss_mib: f64,
    /// Peak resident memory (MiB), including reading the configs.
    pub peak_rss_mib: f64,
    /// Seconds from the probe's start until every check was scheduled.
    pub schedule_s: f64,
}

/// Ratios to blackbox_exporter and goals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetRatios {
    /// Keep-alive checks/s over blackbox probes/s.
    pub keepalive_vs_blackbox: Option<f64>,
    /// New-connection checks/s over blackbox probes/s.
    pub new_connection_vs_blackbox: Option<f64>,
    /// New-connection checks per CPU-second over blackbox probes per CPU-second.
    pub new_connection_per_cpu_vs_blackbox: Option<f64>,
}

/// Whether each goal of the issue was met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetGoals {
    /// ≥ 10,000 checks/s with keep-alive.
    pub keepalive_10k_per_s: bool,
    /// ≥ 5,000 checks/s with a new connection each.
    pub new_connection_5k_per_s: bool,
    /// Lateness p99 under 100 ms in both rate phases.
    pub lateness_p99_under_100ms: bool,
    /// 500,000 checks in under 1 GiB.
    pub memory_under_1gib: Option<bool>,
    /// At least 5× blackbox_exporter's rate (keep-alive phase).
    pub five_times_blackbox: Option<bool>,
}

/// The scenario's JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeFleetReport {
    /// `probe-fleet`.
    pub scenario: &'static str,
    /// Check interval in the rate phases (ms).
    pub interval_ms: u64,
    /// Measured window per phase (s).
    pub measure_s: f64,
    /// The probe's `--concurrency`.
    pub concurrency: usize,
    /// Phase 1.
    pub keepalive: RatePhase,
    /// Phase 2.
    pub new_connection: RatePhase,
    /// Phase 3, when blackbox_exporter is installed.
    pub blackbox: Option<BlackboxPhase>,
    /// Why phase 3 did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blackbox_skipped: Option<String>,
    /// Phase 4, unless skipped.
    pub memory: Option<MemoryPhase>,
    /// Ratios.
    pub ratios: FleetRatios,
    /// Goals.
    pub goals: FleetGoals,
}

/// Runs the scenario.
pub async fn run(args: &ProbeFleetArgs) -> Result<ProbeFleetReport, LoadError> {
    let bus = crate::server::open(args.nats_url.as_deref()).await?;
    let js = jetstream::new(bus.client.clone());
    ensure(&js, &Topology::default())
        .await
        .map_err(|e| LoadError::bus("apply the topology", e))?;
    let store = js
        .get_key_value(KV_CONFIG)
        .await
        .map_err(|e| LoadError::bus("open KV config", e))?;
    let (mut target, target_addr) = start_target().await?;
    progress(&format!("HTTP target listening on {target_addr}."));
    let url = format!("http://{target_addr}/ok");

    let keepalive =
        rate_phase(args, &bus.url, &js, &store, &url, args.keepalive_rate, true).await?;
    progress(&format!("keep-alive: {keepalive:?}"));
    let new_connection = rate_phase(
        args,
        &bus.url,
        &js,
        &store,
        &url,
        args.new_connection_rate,
        false,
    )
    .await?;
    progress(&format!("new connection: {new_connection:?}"));
    let (blackbox, blackbox_skipped) = match blackbox_phase(args, &url).await {
        Ok(phase) => {
            progress(&format!("blackbox_exporter: {phase:?}"));
            (Some(phase), None)
        }
        Err(reason) => {
            progress(&format!("blackbox_exporter phase skipped: {reason}"));
            (None, Some(reason))
        }
    };
    let memory = if args.memory_checks > 0 {
        let phase = memory_phase(args, &bus.url, &store, &url).await?;
        progress(&format!("memory: {phase:?}"));
        Some(phase)
    } else {
        None
    };
    let _ = target.kill().await;

    let vs = |beacon: f64| blackbox.as_ref().map(|b| ratio(beacon, b.probes_per_s));
    let ratios = FleetRatios {
        keepalive_vs_blackbox: vs(keepalive.checks_per_s),
        new_connection_vs_blackbox: vs(new_connection.checks_per_s),
        new_connection_per_cpu_vs_blackbox: blackbox
            .as_ref()
            .map(|b| ratio(new_connection.checks_per_cpu_s, b.probes_per_cpu_s)),
    };
    let goals = FleetGoals {
        keepalive_10k_per_s: keepalive.checks_per_s >= 10_000.0,
        new_connection_5k_per_s: new_connection.checks_per_s >= 5_000.0,
        lateness_p99_under_100ms: keepalive.lateness_p99_ms_at_most < 100.0
            && new_connection.lateness_p99_ms_at_most < 100.0,
        memory_under_1gib: memory
            .as_ref()
            .map(|m| m.scheduled_checks >= 500_000 && m.rss_mib < 1024.0),
        five_times_blackbox: ratios.keepalive_vs_blackbox.map(|r| r >= 5.0),
    };
    Ok(ProbeFleetReport {
        scenario: "probe-fleet",
        interval_ms: u64::try_from(args.interval.as_millis()).unwrap_or(u64::MAX),
        measure_s: args.measure.as_secs_f64(),
        concurrency: args.concurrency,
        keepalive,
        new_connection,
        blackbox,
        blackbox_skipped,
        memory,
        ratios,
        goals,
    })
}

// ---------------------------------------------------------------------------
// The target.
// ---------------------------------------------------------------------------

/// The hidden `http-target` subcommand: `200 ok` on every path, keep-alive,
/// until killed.
pub async fn serve_target() -> Result<String, LoadError> {
    let app = axum::Router::new().fallback(|| async { "ok" });
    // A deep accept queue (tokio's default is 1024): at thousands of new
    // connections a second a shallow one drops SYNs, and the client's
    // one-second retransmit would be measured as the probe's lateness.
    let socket = tokio::net::TcpSocket::new_v4()
        .map_err(|e| LoadError::Unexpected(format!("target socket: {e}")))?;
    socket
        .bind(
            "127.0.0.1:0"
                .parse()
                .map_err(|_| LoadError::Unexpected("address".to_owned()))?,
        )
        .map_err(|e| LoadError::Unexpected(format!("bind the target: {e}")))?;
    let listener = socket
        .listen(8192)
        .map_err(|e| LoadError::Unexpected(format!("listen: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| LoadError::Unexpected(e.to_string()))?;
    println!("{LISTENING} {addr}");
    axum::serve(listener, app)
        .await
        .map_err(|e| LoadError::Unexpected(format!("target: {e}")))?;
    Ok(String::new())
}

async fn start_target() -> Result<(Child, String), LoadError> {
    let exe = std::env::current_exe()
        .map_err(|e| LoadError::Unexpected(format!("cannot find this program: {e}")))?;
    let mut child = Command::new(exe)
        .arg("http-target")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadError::Unexpected(format!("spawn the target: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| LoadError::Unexpected("the target has no stdout".to_owned()))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| LoadError::Unexpected("the target did not start".to_owned()))?
        .map_err(|e| LoadError::Unexpected(e.to_string()))?
        .unwrap_or_default();
    let addr = line
        .strip_prefix(LISTENING)
        .map(str::trim)
        .ok_or_else(|| LoadError::Unexpected(format!("the target said {line:?}")))?
        .to_owned();
    Ok((child, addr))
}

// ---------------------------------------------------------------------------
// Page configs.
// ---------------------------------------------------------------------------

fn check(url: &str, n: u64, interval: Duration, keep_alive: bool) -> Check {
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    Check {
        id: "http".to_owned(),
        target: CheckTarget::Http(HttpTarget {
            url: format!("{url}?c={n}"),
            method: HttpMethod::Get,
            headers: Vec::new(),
            body: None,
            follow_redirects: true,
            max_redirects: 5,
            expect_status: Vec::new(),
            body_contains: None,
            max_body_bytes: 64 * 1024,
            tls_skip_verify: false,
            keep_alive,
            conditions: Vec::new(),
            degraded_if: Vec::new(),
        }),
        regions: vec![REGION.to_owned()],
        interval_ms,
        timeout_ms: interval_ms.min(5_000),
        failure_threshold: 2,
        recovery_threshold: 2,
        failure_window: None,
        recovery_window: None,
        degraded_latency_ms: None,
    }
}

/// Stores `checks` checks as pages of [`PER_PAGE`]; returns the page ids.
async fn write_pages(
    store: &kv::Store,
    url: &str,
    checks: u64,
    interval: Duration,
    keep_alive: bool,
) -> Result<Vec<String>, LoadError> {
    let clock = HlcClock::new();
    let mut pages = Vec::new();
    let mut n = 0;
    while n < checks {
        let id = format!("fleet-{}", pages.len());
        let components = (n..(n + PER_PAGE).min(checks))
            .map(|c| Component {
                id: format!("c{c}"),
                name: format!("Component {c}"),
                description: String::new(),
                group: None,
                checks: vec![check(url, c, interval, keep_alive)],
                quorum: Quorum::Majority,
                depends_on: Vec::new(),
                flap_transitions: 6,
                flap_window_ms: 15 * 60 * 1000,
                sla_target: beacon_page::config::sla::DEFAULT_TARGET,
            })
            .collect::<Vec<_>>();
        n += components.len() as u64;
        let config = PageConfig {
            id: id.clone(),
            name: id.clone(),
            description: String::new(),
            url: None,
            groups: Vec::new(),
            components,
            channels: Vec::new(),
            sla: Default::default(),
            notifications: Default::default(),
        };
        let payload = Envelope::new(&clock, "global", config)
            .encode()
            .map_err(|e| LoadError::Report(e.to_string()))?;
        store
            .put(&id, payload.into())
            .await
            .map_err(|e| LoadError::bus(format!("store page {id}"), e))?;
        pages.push(id);
    }
    Ok(pages)
}

async fn delete_pages(store: &kv::Store, pages: &[String]) -> Result<(), LoadError> {
    for page in pages {
        store
            .purge(page)
            .await
            .map_err(|e| LoadError::bus(format!("purge page {page}"), e))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The probe and its metrics.
// ---------------------------------------------------------------------------

fn spawn_probe(nats_url: &str, concurrency: usize) -> DaemonProcess {
    DaemonProcess::spawn_with_admin(
        "beacon-probe",
        vec![
            "--nats-url".into(),
            nats_url.into(),
            "--region".into(),
            REGION.into(),
            "--concurrency".into(),
            concurrency.to_string(),
            "--outbox-capacity".into(),
            "1000000".into(),
        ],
    )
}

async fn metrics(probe: &DaemonProcess) -> Result<String, LoadError> {
    reqwest::get(format!("{}/metrics", probe.admin_url()))
        .await
        .map_err(|e| LoadError::Unexpected(format!("probe metrics: {e}")))?
        .text()
        .await
        .map_err(|e| LoadError::Unexpected(format!("probe metrics: {e}")))
}

/// Sum of every sample of `name` whose labels contain `labels`.
fn sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let matches_name = series == name || series.starts_with(&format!("{name}{{"));
            (matches_name && series.contains(labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Cumulative `(le, count)` of histogram `name`.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, rest) = rest.split_once('"')?;
            let count = rest.rsplit_once(' ')?.1.parse::<f64>().ok()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count))
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of the observations
/// between two snapshots, in milliseconds. Pure.
pub fn quantile_upper_ms(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, count - earlier)
        })
        .collect();
    let total = deltas.last().map_or(0.0, |(_, c)| *c);
    if total <= 0.0 {
        return 0.0;
    }
    deltas
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or(f64::INFINITY, |(le, _)| le * 1000.0)
}

/// CPU seconds (user + system) process `pid` used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at state.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0)
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn health_messages(js: &jetstream::Context) -> u64 {
    match js.get_stream(STREAM_HEALTH).await {
        Ok(mut stream) => stream.info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}

async fn wait_scheduled(
    probe: &DaemonProcess,
    checks: u64,
    within: Duration,
) -> Result<(), LoadError> {
    let deadline = Instant::now() + within;
    loop {
        let text = metrics(probe).await.unwrap_or_default();
        let scheduled = sum(&text, "beacon_probe_checks_scheduled", "");
        if scheduled as u64 >= checks {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LoadError::Timeout {
                step: format!("the probe to schedule {checks} checks (has {scheduled})"),
                after: within,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Snapshot {
    at: Instant,
    text: String,
    cpu: f64,
    stored: u64,
}

async fn snapshot(probe: &DaemonProcess, js: &jetstream::Context) -> Result<Snapshot, LoadError> {
    let pid = probe
        .pid()
        .ok_or_else(|| LoadError::Unexpected(format!("the probe exited:\n{}", probe.logs())))?;
    Ok(Snapshot {
        at: Instant::now(),
        text: metrics(probe).await?,
        cpu: cpu_seconds(pid),
        stored: health_messages(js).await,
    })
}

async fn rate_phase(
    args: &ProbeFleetArgs,
    nats_url: &str,
    js: &jetstream::Context,
    store: &kv::Store,
    url: &str,
    rate: u64,
    keep_alive: bool,
) -> Result<RatePhase, LoadError> {
    let checks = (rate as f64 * args.interval.as_secs_f64()).round() as u64;
    progress(&format!(
        "Phase keep_alive={keep_alive}: {checks} checks every {:?} ({rate}/s).",
        args.interval
    ));
    let pages = write_pages(store, url, checks, args.interval, keep_alive).await?;
    let mut probe = spawn_probe(nats_url, args.concurrency);
    probe.wait_ready(args.phase_timeout).await;
    wait_scheduled(&probe, checks, args.phase_timeout).await?;
    tokio::time::sleep(args.warmup).await;
    let before = snapshot(&probe, js).await?;
    tokio::time::sleep(args.measure).await;
    let after = snapshot(&probe, js).await?;
    delete_pages(store, &pages).await?;
    let _ = tokio::task::spawn_blocking(move || {
        probe.terminate();
    })
    .await;

    let elapsed = after.at.duration_since(before.at).as_secs_f64();
    let delta =
        |name: &str, labels: &str| sum(&after.text, name, labels) - sum(&before.text, name, labels);
    let ran = delta("beacon_probe_checks_total", "");
    let passed = delta("beacon_probe_checks_total", "outcome=\"up\"");
    let cpu = after.cpu - before.cpu;
    let lateness_before = buckets(&before.text, "beacon_probe_schedule_lateness_seconds");
    let lateness_after = buckets(&after.text, "beacon_probe_schedule_lateness_seconds");
    Ok(RatePhase {
        keep_alive,
        scheduled_checks: checks,
        target_rate: rate as f64,
        checks_per_s: round(ran / elapsed),
        stored_per_s: round(after.stored.saturating_sub(before.stored) as f64 / elapsed),
        failed: (ran - passed).max(0.0) as u64,
        lateness_p50_ms_at_most: quantile_upper_ms(&lateness_before, &lateness_after, 0.5),
        lateness_p99_ms_at_most: quantile_upper_ms(&lateness_before, &lateness_after, 0.99),
        lateness_mean_ms: round(
            ratio(
                delta("beacon_probe_schedule_lateness_seconds_sum", ""),
                delta("beacon_probe_schedule_lateness_seconds_count", ""),
            ) * 1000.0,
        ),
        skipped: delta("beacon_probe_checks_skipped_total", "") as u64,
        dropped: delta("beacon_probe_outbox_dropped_total", "") as u64,
        probe_cpu_s: round(cpu),
        checks_per_cpu_s: round(ratio(ran, cpu)),
    })
}

async fn memory_phase(
    args: &ProbeFleetArgs,
    nats_url: &str,
    store: &kv::Store,
    url: &str,
) -> Result<MemoryPhase, LoadError> {
    progress(&format!(
        "Memory phase: {} checks every hour.",
        args.memory_checks
    ));
    let pages = write_pages(
        store,
        url,
        args.memory_checks,
        Duration::from_secs(3600),
        true,
    )
    .await?;
    let started = Instant::now();
    let mut probe = spawn_probe(nats_url, args.concurrency);
    probe.wait_ready(args.phase_timeout).await;
    wait_scheduled(&probe, args.memory_checks, args.phase_timeout).await?;
    let schedule_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pid = probe
        .pid()
        .ok_or_else(|| LoadError::Unexpected(format!("the probe exited:\n{}", probe.logs())))?;
    let (rss, peak) = rss_mib(pid);
    delete_pages(store, &pages).await?;
    let _ = tokio::task::spawn_blocking(move || {
        probe.terminate();
    })
    .await;
    Ok(MemoryPhase {
        scheduled_checks: args.memory_checks,
        rss_mib: round(rss),
        peak_rss_mib: round(peak),
        schedule_s: round(schedule_s),
    })
}

// ---------------------------------------------------------------------------
// blackbox_exporter.
// ---------------------------------------------------------------------------

async fn blackbox_phase(args: &ProbeFleetArgs, url: &str) -> Result<BlackboxPhase, String> {
    let program = find_program(&args.blackbox).ok_or_else(|| {
        format!(
            "{} is not installed (Debian package prometheus-blackbox-exporter)",
            args.blackbox
        )
    })?;
    let version = std::process::Command::new(&program)
        .arg("--version")
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("blackbox.yml");
    std::fs::write(
        &config,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
    )
    .map_err(|e| e.to_string())?;
    let port = beacon_testkit::free_port();
    let mut child = Command::new(&program)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", program.display()))?;
    let pid = child.id().ok_or("blackbox_exporter exited at once")?;
    let probe_url = format!("http://127.0.0.1:{port}/probe?module=http_2xx&target={url}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.blackbox_workers)
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.get(&probe_url).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if Instant::now() > deadline => {
                return Err("blackbox_exporter did not answer".to_owned())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    progress(&format!(
        "blackbox_exporter ({version}) on port {port}, {} workers.",
        args.blackbox_workers
    ));
    // Warm up, then measure.
    let _ = drive(
        &client,
        &probe_url,
        args.blackbox_workers,
        Duration::from_secs(3),
    )
    .await;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let (ok, failed) = drive(&client, &probe_url, args.blackbox_workers, args.measure).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let _ = child.kill().await;
    Ok(BlackboxPhase {
        version,
        workers: args.blackbox_workers,
        probes_per_s: round(ok as f64 / elapsed),
        failed,
        cpu_s: round(cpu),
        probes_per_cpu_s: round(ratio(ok as f64, cpu)),
    })
}

/// `workers` loops requesting `url` for `window`: (succeeded, failed).
async fn drive(
    client: &reqwest::Client,
    url: &str,
    workers: usize,
    window: Duration,
) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let mut tasks = futures::stream::FuturesUnordered::new();
    for _ in 0..workers {
        let (client, url, ok, failed) =
            (client.clone(), url.to_owned(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let passed = match client.get(&url).send().await {
                    Ok(response) => response
                        .text()
                        .await
                        .is_ok_and(|body| body.contains("probe_success 1")),
                    Err(_) => false,
                };
                if passed {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    while tasks.next().await.is_some() {}
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

/// `name` as given when it is a path, else the first on `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(name);
    if path.components().count() > 1 {
        return path.is_file().then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_bucket_deltas() {
        let before = [
            (0.001, 10.0),
            (0.01, 10.0),
            (0.1, 10.0),
            (f64::INFINITY, 10.0),
        ];
        let after = [
            (0.001, 60.0),
            (0.01, 108.0),
            (0.1, 110.0),
            (f64::INFINITY, 110.0),
        ];
        // 100 new observations: 50 under 1 ms, 48 under 10 ms, 2 under 100 ms.
        assert_eq!(quantile_upper_ms(&before, &after, 0.5), 1.0);
        assert_eq!(quantile_upper_ms(&before, &after, 0.98), 10.0);
        assert_eq!(quantile_upper_ms(&before, &after, 0.99), 100.0);
        assert_eq!(quantile_upper_ms(&after, &after, 0.99), 0.0);
    }

    #[test]
    fn metric_lines_are_summed_by_name_and_labels() {
        let text = "# HELP x\nbeacon_probe_checks_total{kind=\"http\",outcome=\"up\"} 7\nbeacon_probe_checks_total{kind=\"http\",outcome=\"down\"} 2\nbeacon_probe_checks_scheduled 9\n";
        assert_eq!(sum(text, "beacon_probe_checks_total", ""), 9.0);
        assert_eq!(
            sum(text, "beacon_probe_checks_total", "outcome=\"up\""),
            7.0
        );
        assert_eq!(sum(text, "beacon_probe_checks_scheduled", ""), 9.0);
    }
}
